"""An adaptive jitter buffer for one leg: playout by sequence, loss/late counting, drift control.

Sans-IO: the caller puts packets with their extended sequence number and pops one frame per
packet time. The target depth follows the measured jitter; when the buffer holds more than
the target for a whole window (a sender clock running fast), one frame is dropped, preferably
while the leg is silent; when it runs dry (a slow sender), playout holds and the caller
conceals. Either way the delay stays bounded.
"""

from __future__ import annotations

import enum


class Playout(enum.IntEnum):
    """What :meth:`JitterBuffer.pop` produced for this packet time."""

    PLAY = 0  # the payload is the next frame
    LOST = 1  # the frame is missing and later ones are here: conceal (FEC may use peek_next)
    UNDERRUN = 2  # the buffer ran dry while the stream is live: conceal, playout holds
    IDLE = 3  # no stream (not started yet, or stopped sending): silence


class JitterBuffer:
    """Packets keyed by extended sequence number; one packet is one frame of the leg's ptime."""

    def __init__(
        self,
        *,
        min_target: int = 1,
        max_target: int = 10,
        capacity: int = 50,
        idle_after: int = 10,
        window: int = 50,
        force_drop_after: int = 50,
    ) -> None:
        if not 1 <= min_target <= max_target < capacity:
            raise ValueError("need 1 <= min_target <= max_target < capacity")
        self.min_target = min_target
        self.max_target = max_target
        self.capacity = capacity
        self.idle_after = idle_after
        self.window = window
        self.force_drop_after = force_drop_after
        self.target = min_target
        # counters
        self.played = 0
        self.lost = 0
        self.late = 0
        self.duplicates = 0
        self.overflow = 0
        self.underruns = 0
        self.drift_drops = 0
        self.resets = 0
        self.max_depth_seen = 0
        self._packets: dict[int, bytes] = {}
        self._next: int | None = None
        self._high = -1
        self._started = False
        self._wait = 0
        self._empties = 0
        self._holds = 0
        self._win_min = 1 << 30
        self._win_count = 0
        self._excess = 0
        self._excess_age = 0

    @property
    def depth(self) -> int:
        """Frames from the playout point to the newest packet held."""
        if not self._packets or self._next is None:
            return len(self._packets)
        return self._high - self._next + 1

    @property
    def held(self) -> int:
        """Packets held right now (never more than ``capacity``)."""
        return len(self._packets)

    @property
    def playing(self) -> bool:
        return self._started

    def set_jitter(self, jitter_frames: float) -> None:
        """Adapt the target depth to the measured interarrival jitter (in frames)."""
        target = self.min_target + int(3.0 * jitter_frames + 0.5)
        self.target = max(self.min_target, min(self.max_target, target))

    def reset(self) -> None:
        """Forget everything buffered (a new source); counters keep counting."""
        self._packets.clear()
        self._next = None
        self._high = -1
        self._started = False
        self._wait = self._empties = self._holds = 0
        self._excess = self._excess_age = 0
        self._win_min, self._win_count = 1 << 30, 0
        self.resets += 1

    def put(self, seq: int, payload: bytes) -> bool:
        """Add one packet; False when it was late, a duplicate, or pushed the oldest out."""
        packets = self._packets
        nxt = self._next
        if nxt is not None:
            if seq < nxt:
                self.late += 1
                return False
            if seq >= nxt + self.capacity:
                self.reset()  # the stream jumped far ahead: start over from here
        if seq in packets:
            self.duplicates += 1
            return False
        if len(packets) >= self.capacity:
            oldest = min(packets)
            if seq < oldest:
                self.overflow += 1
                return False
            del packets[oldest]
            self.overflow += 1
            if self._next is not None and self._next <= oldest:
                self._next = oldest + 1
        packets[seq] = payload
        if seq > self._high:
            self._high = seq
        return True

    def peek_next(self) -> bytes | None:
        """The packet after the playout point, if held (for Opus in-band FEC after a loss)."""
        if self._next is None:
            return None
        return self._packets.get(self._next)

    def pop(self, may_drop: bool = True) -> tuple[Playout, bytes | None]:
        """The frame for this packet time; ``may_drop`` says the leg is silent just now."""
        packets = self._packets
        if not self._started:
            if not packets:
                return Playout.IDLE, None
            self._wait += 1
            if len(packets) < self.target and self._wait < self.target:
                return Playout.IDLE, None
            self._started = True
            self._wait = self._empties = self._holds = 0
            self._next = min(packets)
        nxt = self._next
        assert nxt is not None
        self._track_depth(nxt)
        if self._excess > 0 and len(packets) > 1:
            self._excess_age += 1
            # while the leg talks, drop anyway after a while: sooner the further behind it is
            forced = self._excess_age > self.force_drop_after // self._excess
            if (may_drop or forced) and nxt in packets:
                del packets[nxt]
                nxt += 1
                self._excess -= 1
                self._excess_age = 0
                self.drift_drops += 1
        payload = packets.pop(nxt, None)
        if payload is None and packets and self._holds:
            # the frame concealed while dry was this lost one: do not conceal it twice
            self._holds -= 1
            self.lost += 1
            nxt += 1
            payload = packets.pop(nxt, None)
        if payload is not None:
            self._next = nxt + 1
            self._empties = self._holds = 0
            self.played += 1
            return Playout.PLAY, payload
        if packets:
            self._next = nxt + 1
            self.lost += 1
            self._empties = 0
            return Playout.LOST, None
        self._next = nxt
        self._empties += 1
        if self._empties >= self.idle_after:
            self._started = False
            self._wait = self._holds = 0
            return Playout.IDLE, None
        self._holds += 1
        self.underruns += 1
        return Playout.UNDERRUN, None

    def _track_depth(self, nxt: int) -> None:
        depth = self._high - nxt + 1 if self._packets else 0
        if depth > self.max_depth_seen:
            self.max_depth_seen = depth
        if depth < self._win_min:
            self._win_min = depth
        self._win_count += 1
        if self._win_count >= self.window:
            if self._win_min > self.target:
                self._excess = self._win_min - self.target
            else:
                self._excess = self._excess_age = 0
            self._win_min, self._win_count = 1 << 30, 0
