"""A test peer for the media engine: an RTP "phone" on a real UDP socket on 127.0.0.1.

It sends a tone (or silence) every 20 ms on a deadline schedule, can send RFC 4733 events,
and keeps every packet it receives so a test can decode them and look for tones.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from media import LegInfo, LegSpec, MediaEngine, dsp
from media.codecs import CodecState, codec_info
from media.dtmf import DtmfReceiver, DtmfSender
from media.rtp import RtpPacket, is_rtcp

Shaper = Callable[[list[bytes]], list[bytes]]
TONES = [400.0, 700.0, 1100.0, 1500.0, 900.0]


async def eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``predicate()`` holds; generous, the machine is shared."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {within:.1f} s")
        await asyncio.sleep(0.02)


async def listen(phones: list[RtpPhone], seconds: float = 0.4) -> None:
    """Forget what the phones heard so far, then wait until each heard ``seconds`` more."""
    for phone in phones:
        phone.clear()
    need = int(seconds * 50)
    await eventually(lambda: all(len(p.packets()) >= need for p in phones))


async def settle(phones: list[RtpPhone]) -> None:
    """Let a change take effect: wait out what was already on its way (and the JB)."""
    await listen(phones, 0.2)


async def join(
    engine: MediaEngine, conference: str, leg: str, phone: RtpPhone, freq: float | None, **spec: Any
) -> LegInfo:
    """Add a leg for ``phone`` and start the phone sending ``freq`` (None: digital silence)."""
    info = await engine.add_leg(
        conference,
        LegSpec(
            leg_id=leg,
            codec=phone.info.name,
            payload_type=phone.payload_type,
            remote=phone.address,
            **spec,
        ),
    )
    phone.start(info.local, freq)
    return info


@dataclass
class Received:
    packet: RtpPacket
    arrival: float


class RtpPhone(asyncio.DatagramProtocol):
    def __init__(self, codec: str = "PCMU", payload_type: int | None = None) -> None:
        self.info = codec_info(codec)
        static = self.info.static_payload_type
        self.payload_type = (
            payload_type if payload_type is not None else (111 if static is None else static)
        )
        self.codec = CodecState(self.info)
        self.rx_codec = CodecState(self.info)
        self.received: list[Received] = []
        self.rtcp: list[bytes] = []
        self.junk = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.target: tuple[str, int] | None = None
        self.freq: float | None = None
        self.tone_level = -12.0
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.clock_scale = 1.0  # 1.01: this phone's clock runs 1 % fast
        self.ptime_ms = 20
        self.shaper: Shaper | None = None
        self.sent = 0
        self.dtmf = DtmfSender(self.info.rtp_clock, self.info.rtp_clock // 50)
        self.dtmf_ts = 0
        self._phase = 0.0
        self._task: asyncio.Task[None] | None = None
        self._batch: list[bytes] = []

    @classmethod
    async def create(cls, codec: str = "PCMU", payload_type: int | None = None) -> RtpPhone:
        loop = asyncio.get_running_loop()
        phone = cls(codec, payload_type)
        await loop.create_datagram_endpoint(lambda: phone, local_addr=("127.0.0.1", 0))
        return phone

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_rtcp(data):
            self.rtcp.append(data)
            return
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            self.junk += 1
            return
        self.received.append(Received(packet, asyncio.get_running_loop().time()))

    # -- sending -------------------------------------------------------------------------

    def start(self, target: tuple[str, int], freq: float | None) -> None:
        self.target, self.freq = target, freq
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.ptime_ms / 1000 / self.clock_scale
        deadline = loop.time()
        while True:
            deadline += period
            while deadline <= loop.time():  # catch up after a stall, in order
                self._send_frame()
                deadline += period
            self._send_frame()
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    def frame(self) -> npt.NDArray[np.float32]:
        rate = self.info.sample_rate
        n = rate * self.ptime_ms // 1000
        if self.freq is None:
            return np.zeros(n, dtype=np.float32)
        out = dsp.tone(self.freq, rate, n, self.tone_level, self._phase)
        self._phase = (self._phase + 2 * np.pi * self.freq * n / rate) % (2 * np.pi)
        return out

    def _send_frame(self) -> None:
        pcm = self.frame()
        event = self.dtmf.next() if self.dtmf.active else None
        if event is not None:
            if event.new_event:
                self.dtmf_ts = self.ts
            packet = RtpPacket(101, self.seq, self.dtmf_ts, self.ssrc, event.payload, event.marker)
        else:
            packet = RtpPacket(
                self.payload_type, self.seq, self.ts, self.ssrc, self.codec.encode(pcm)
            )
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + self.info.rtp_clock * self.ptime_ms // 1000) & 0xFFFFFFFF
        self.send_raw(bytes(packet))

    def send_raw(self, data: bytes) -> None:
        if self.transport is None or self.target is None:
            return
        if self.shaper is None:
            self.transport.sendto(data, self.target)
            self.sent += 1
            return
        self._batch.append(data)
        for out in self.shaper(self._batch):
            self.transport.sendto(out, self.target)
            self.sent += 1

    # -- what came back ------------------------------------------------------------------

    def packets(self, payload_type: int | None = None) -> list[RtpPacket]:
        pt = self.payload_type if payload_type is None else payload_type
        return [r.packet for r in self.received if r.packet.payload_type == pt]

    def audio(self, last_seconds: float | None = None) -> npt.NDArray[np.float32]:
        """Decoded received audio in sequence order (gaps left out)."""
        packets = sorted(self.packets(), key=lambda p: p.sequence)
        if last_seconds is not None:
            packets = packets[-int(last_seconds * 50) :]
        codec = CodecState(self.info)
        chunks = [codec.decode(p.payload) for p in packets]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)

    def tones(self, candidates: list[float], last_seconds: float = 0.4) -> set[float]:
        return dsp.dominant(self.audio(last_seconds), self.info.sample_rate, candidates)

    def level(self, last_seconds: float = 0.4) -> float:
        audio = self.audio(last_seconds)
        return float(dsp.level_dbfs(audio)) if len(audio) else -200.0

    def dtmf_digits(self) -> list[str]:
        receiver = DtmfReceiver(self.info.rtp_clock)
        digits = []
        for r in self.received:
            if r.packet.payload_type == 101:
                for notice in receiver.feed(r.packet.timestamp, r.packet.payload, r.arrival):
                    if notice.ended:
                        digits.append(notice.digit)
        return digits

    def clear(self) -> None:
        self.received.clear()
