"""Per-source RTP receive statistics (RFC 3550 A.1, A.3, A.8): sequence, loss, jitter, SSRC."""

from __future__ import annotations

from media.rtcp import ReportBlock

MAX_DROPOUT = 3000
MAX_MISORDER = 100
# Packets in a row a new SSRC must send before it replaces the current one.
MIN_SEQUENTIAL = 2
SEQ_MOD = 1 << 16
DISCARD = -1
_SEEN = 512  # window of extended sequence numbers kept for duplicate detection


class ReceiveStats:
    """Tracks one leg's incoming stream; :meth:`update` returns the extended sequence number.

    It returns ``DISCARD`` for packets that must not be played (duplicates, a stray SSRC
    on probation, a far jump not yet confirmed). ``restarted`` is true after the update
    that switched to a new source or resynchronised, so the caller resets its jitter buffer.
    """

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self.received = 0
        self.duplicates = 0
        self.reordered = 0
        self.ssrc_changes = 0
        self.foreign = 0  # packets from another SSRC while the current one is alive
        self.restarted = False
        self.jitter = 0.0  # RFC 3550 interarrival jitter, in timestamp units
        self._base = 0
        self._max = 0  # extended highest sequence number
        self._bad_seq = -1
        self._transit: float | None = None
        self._seen = [-1] * _SEEN
        self._expected_prior = 0
        self._received_prior = 0
        self._candidate: int | None = None
        self._candidate_seq = 0
        self._candidate_count = 0

    # -- the per-packet path -------------------------------------------------------------

    def update(self, ssrc: int, seq: int, timestamp: int, arrival: float) -> int:
        """Account one packet; ``arrival`` is the local receive time in seconds."""
        self.restarted = False
        if ssrc != self.ssrc:
            if self.ssrc is not None and not self._probation(ssrc, seq):
                self.foreign += 1
                return DISCARD
            if self.ssrc is not None:
                self.ssrc_changes += 1
            self._init(ssrc, seq)
            ext = seq
        else:
            ext = self._extend(seq)
            if ext == DISCARD:
                return DISCARD
        slot = ext % _SEEN
        if self._seen[slot] == ext:
            self.duplicates += 1
            return DISCARD
        self._seen[slot] = ext
        self.received += 1
        if ext > self._max:
            self._max = ext
            transit = arrival * self.clock_rate - timestamp
            if self._transit is not None:
                delta = abs(transit - self._transit)
                # a timestamp wrap shows as a jump of 2**32: not jitter
                if delta < (1 << 31):
                    self.jitter += (delta - self.jitter) / 16.0
            self._transit = transit
        elif ext < self._max:
            self.reordered += 1
        return ext

    def _probation(self, ssrc: int, seq: int) -> bool:
        """True once a new SSRC has sent MIN_SEQUENTIAL packets in sequence."""
        if ssrc == self._candidate and seq == (self._candidate_seq + 1) % SEQ_MOD:
            self._candidate_count += 1
        else:
            self._candidate, self._candidate_count = ssrc, 1
        self._candidate_seq = seq
        return self._candidate_count >= MIN_SEQUENTIAL

    def _init(self, ssrc: int, seq: int) -> None:
        self.ssrc = ssrc
        self._base = self._max = seq
        self._bad_seq = -1
        self._transit = None
        self._seen = [-1] * _SEEN
        self._expected_prior = self._received_prior = 0
        self.received = 0
        self._candidate = None
        self.restarted = True

    def _extend(self, seq: int) -> int:
        cycles = self._max & ~0xFFFF
        max_seq = self._max & 0xFFFF
        delta = (seq - max_seq) % SEQ_MOD
        if delta < MAX_DROPOUT:
            if seq < max_seq:
                cycles += SEQ_MOD  # wrapped forward
            return cycles | seq
        if delta <= SEQ_MOD - MAX_MISORDER:
            # a far jump: accept it only when the next packet follows it (A.1)
            if seq == self._bad_seq:
                self._base = self._max = (self._max & ~0xFFFF) + SEQ_MOD + seq
                self._seen = [-1] * _SEEN
                self._transit = None
                self.restarted = True
                return self._max
            self._bad_seq = (seq + 1) % SEQ_MOD
            return DISCARD
        # late or duplicate: it belongs just below the current maximum
        ext = cycles | seq
        if seq > max_seq:
            ext -= SEQ_MOD
        return ext if ext >= 0 else DISCARD

    # -- figures -------------------------------------------------------------------------

    @property
    def extended_max(self) -> int:
        return self._max

    @property
    def expected(self) -> int:
        return 0 if self.ssrc is None else self._max - self._base + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (expected minus received, never negative)."""
        return max(0, self.expected - self.received)

    @property
    def jitter_seconds(self) -> float:
        return self.jitter / self.clock_rate

    def report_block(self, last_sr: int = 0, delay_since_last_sr: int = 0) -> ReportBlock:
        """A reception report for RTCP; resets the interval counters (A.3)."""
        expected = self.expected
        interval_expected = expected - self._expected_prior
        interval_received = self.received - self._received_prior
        self._expected_prior, self._received_prior = expected, self.received
        interval_lost = interval_expected - interval_received
        fraction = 0
        if interval_expected > 0 and interval_lost > 0:
            fraction = min(255, (interval_lost << 8) // interval_expected)
        return ReportBlock(
            ssrc=self.ssrc or 0,
            fraction_lost=fraction,
            cumulative_lost=expected - self.received,
            highest_sequence=self._max,
            jitter=int(self.jitter),
            last_sr=last_sr,
            delay_since_last_sr=delay_since_last_sr,
        )
