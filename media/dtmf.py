"""RFC 4733 telephone-events (DTMF): payload format, a de-duplicating receiver, a sender."""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from media.errors import RtpParseError

DIGITS = "0123456789*#ABCD"
_PAYLOAD = struct.Struct("!BBH")
END_REPEATS = 3  # RFC 4733 section 2.5.1.4: the final packet is sent three times


def digit_code(digit: str) -> int:
    code = DIGITS.find(digit.upper())
    if len(digit) != 1 or code < 0:
        raise ValueError(f"{digit!r} is not a DTMF digit (one of {DIGITS})")
    return code


def code_digit(code: int) -> str:
    """The digit for an event code; other events (flash, tones) read as ``event-N``."""
    return DIGITS[code] if code < len(DIGITS) else f"event-{code}"


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One telephone-event payload (RFC 4733 section 2.3)."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        if len(data) < 4:
            raise RtpParseError(f"telephone-event payload of {len(data)} bytes, needs 4")
        event, flags, duration = _PAYLOAD.unpack_from(data)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        flags = (0x80 if self.end else 0) | (self.volume & 0x3F)
        return _PAYLOAD.pack(self.event, flags, min(self.duration, 0xFFFF))


@dataclass(frozen=True, slots=True)
class DtmfNotice:
    """What the receiver saw: a digit began, or ended after ``duration_ms``."""

    digit: str
    ended: bool
    duration_ms: int = 0


class DtmfReceiver:
    """Turns a stream of telephone-event packets into one begin and one end per event.

    Retransmitted packets (same RTP timestamp) and the repeated end packets are
    suppressed; an event whose end packets were all lost is ended when the next event
    begins or when :meth:`expire` finds it silent too long.
    """

    def __init__(self, clock_rate: int = 8000, timeout: float = 0.5) -> None:
        self.clock_rate = clock_rate
        self.timeout = timeout
        self.events = 0
        self._ts: int | None = None
        self._code = 0
        self._duration = 0
        self._ended = True
        self._last_arrival = 0.0

    def feed(self, timestamp: int, payload: bytes, arrival: float) -> list[DtmfNotice]:
        event = TelephoneEvent.parse(payload)
        notices: list[DtmfNotice] = []
        if timestamp != self._ts:
            if not self._ended:
                notices.append(self._end())
            self._ts, self._code, self._ended = timestamp, event.event, False
            self._duration = 0
            self.events += 1
            notices.append(DtmfNotice(code_digit(event.event), ended=False))
        elif self._ended:
            return notices  # a retransmitted end packet
        self._last_arrival = arrival
        self._duration = max(self._duration, event.duration)
        if event.end:
            notices.append(self._end())
        return notices

    def expire(self, now: float) -> DtmfNotice | None:
        if not self._ended and now - self._last_arrival > self.timeout:
            return self._end()
        return None

    def _end(self) -> DtmfNotice:
        self._ended = True
        return DtmfNotice(
            code_digit(self._code), ended=True, duration_ms=self._duration * 1000 // self.clock_rate
        )


@dataclass(frozen=True, slots=True)
class EventPacket:
    """One packet the sender wants on the wire; a ``new_event`` fixes the event's RTP timestamp."""

    payload: bytes
    marker: bool
    new_event: bool


class DtmfSender:
    """Plans telephone-event packets for queued digits, one call to :meth:`next` per packet time."""

    def __init__(self, clock_rate: int = 8000, packet_samples: int = 160, volume: int = 10) -> None:
        self.clock_rate = clock_rate
        self.packet_samples = packet_samples
        self.volume = volume
        self.sent_events = 0
        self._queue: deque[tuple[int, int]] = deque()
        self._code = -1
        self._elapsed = 0
        self._length = 0
        self._ends_left = 0
        self._gap = 0

    @property
    def active(self) -> bool:
        """True while an event (or the gap after it) owns the leg's outgoing stream."""
        return self._code >= 0 or self._gap > 0 or bool(self._queue)

    def queue(self, digits: str, duration_ms: int = 100, gap_ms: int = 60) -> None:
        codes = [digit_code(d) for d in digits]  # validate all before queueing any
        samples = max(self.packet_samples, duration_ms * self.clock_rate // 1000)
        gap = gap_ms * self.clock_rate // 1000
        for code in codes:
            self._queue.append((code, samples))
            self._queue.append((-1, gap))

    def next(self) -> EventPacket | None:
        """The packet for this packet time, or None when audio should be sent instead."""
        if self._code < 0:
            if self._gap > 0:
                self._gap -= self.packet_samples
                return None
            if not self._queue:
                return None
            code, length = self._queue.popleft()
            if code < 0:
                self._gap = length - self.packet_samples
                return None
            self._code, self._length, self._elapsed = code, length, 0
            self._ends_left = END_REPEATS
            self.sent_events += 1
            self._elapsed = self.packet_samples
            return EventPacket(self._payload(end=False), marker=True, new_event=True)
        if self._elapsed < self._length:
            self._elapsed = min(self._length, self._elapsed + self.packet_samples)
            if self._elapsed < self._length:
                return EventPacket(self._payload(end=False), marker=False, new_event=False)
        packet = EventPacket(self._payload(end=True), marker=False, new_event=False)
        self._ends_left -= 1
        if self._ends_left <= 0:
            self._code = -1
        return packet

    def _payload(self, end: bool) -> bytes:
        return bytes(TelephoneEvent(self._code, end, self.volume, self._elapsed))
