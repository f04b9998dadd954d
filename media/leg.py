"""One leg's media state: what it was set up with, its receive path, its own send path.

G.711 legs at 20 ms are *batched*: the mixer group decodes, encodes and packetises them all
at once and keeps their sender state in its arrays. Other legs (G.722, Opus, other ptimes)
decode and encode here, one leg at a time, through a small PCM FIFO.
"""

from __future__ import annotations

import logging
import random
import socket
import struct
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from media import rtcp
from media.codecs import CodecInfo, CodecState
from media.dtmf import DtmfReceiver, DtmfSender
from media.errors import RtpParseError
from media.events import DtmfReceived, MediaEvent, MediaResumed, PeerBye, SourceChanged
from media.jitter import JitterBuffer, Playout
from media.resample import ResamplerState
from media.rtp import build_packet, parse_header
from media.stats import DISCARD, ReceiveStats
from media.transport import Address, RtpEndpoint

if TYPE_CHECKING:
    from media.announce import Source
    from media.mixer import MixGroup

logger = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]
# Repeat-and-fade concealment for codecs without their own PLC (G.711 Appendix I in spirit).
FADE = np.array([1.0, 0.7, 0.4, 0.15, 0.0], dtype=np.float32)
MAX_PACKETS_PER_TICK = 16
_FIXED = struct.Struct("!BHII")  # the fixed header after its first byte


class LegLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every message with ``[conf=... leg=...]``."""

    def process(
        self, msg: object, kwargs: MutableMapping[str, Any]
    ) -> tuple[object, MutableMapping[str, Any]]:
        context = self.extra["context"] if self.extra else ""
        return f"{context} {msg}", kwargs


@dataclass(frozen=True, kw_only=True)
class LegSpec:
    """How a leg is set up; the SIP layer fills this from the negotiated SDP.

    ``sock`` is an already-bound UDP socket (the port offered in SDP); without it the
    engine binds ``local``. ``remote`` may be left None and set later (or latched from the
    first packet when ``latch`` is true, for peers behind NAT).
    """

    leg_id: str
    codec: str = "PCMU"
    payload_type: int | None = None
    ptime: int = 20
    remote: Address | None = None
    local: Address = ("127.0.0.1", 0)
    sock: socket.socket | None = None
    half_duplex: bool = False
    dtmf_payload_type: int | None = 101
    rtcp: bool = True
    rtcp_mux: bool = False
    rtcp_sock: socket.socket | None = None
    rtcp_remote: Address | None = None
    latch: bool = False
    max_queue: int = 64
    jitter_min_frames: int = 1
    jitter_max_frames: int = 10
    media_timeout: float = 30.0


@dataclass(frozen=True, kw_only=True)
class LegInfo:
    leg_id: str
    conference: str
    local: Address
    rtcp_local: Address | None
    codec: str
    payload_type: int
    ptime: int


@dataclass(frozen=True, kw_only=True)
class LegStats:
    """A snapshot of one leg's counters (receive, jitter buffer, send, bad input)."""

    leg_id: str
    conference: str
    ssrc: int | None
    datagrams: int
    packets: int
    lost: int
    late: int
    duplicates: int
    reordered: int
    jitter_ms: float
    jitter_buffer_frames: int
    jitter_target_frames: int
    concealed: int
    drift_drops: int
    ssrc_changes: int
    malformed: int
    wrong_source: int
    unknown_payload_type: int
    flood_dropped: int
    size_mismatch: int
    dtmf_received: int
    dtmf_sent: int
    packets_sent: int
    rtcp_received: int
    rtcp_sent: int
    round_trip_ms: float | None
    talking: bool
    remote_fraction_lost: float | None = None
    extra: dict[str, int] = field(default_factory=dict)


class Leg:
    """Engine-internal: the state of one leg. The engine is the only caller."""

    def __init__(
        self,
        spec: LegSpec,
        conference: str,
        info: CodecInfo,
        payload_type: int,
        endpoint: RtpEndpoint,
        rtcp_endpoint: RtpEndpoint | None,
        now: float,
    ) -> None:
        """``now`` is the engine's clock (the loop's), which every timeout here is kept on."""
        self.spec = spec
        self.id = spec.leg_id
        self.conference = conference
        self.info = info
        self.payload_type = payload_type
        self.dtmf_pt = spec.dtmf_payload_type
        self.endpoint = endpoint
        self.rtcp_endpoint = rtcp_endpoint
        self.remote = spec.remote
        if not spec.latch:
            endpoint.accept_from = spec.remote
        self.rtcp_remote = spec.rtcp_remote
        if self.rtcp_remote is None and spec.remote is not None and spec.rtcp:
            self.rtcp_remote = (
                spec.remote if spec.rtcp_mux else (spec.remote[0], spec.remote[1] + 1)
            )
        self.log = LegLog(logger, {"context": f"[conf={conference} leg={spec.leg_id}]"})
        # controls (the mixer reads these when it rebuilds its arrays)
        self.input_gain = 1.0
        self.output_gain = 1.0
        self.muted = False
        self.deafened = False
        self.listen_only = False
        self.half_duplex = spec.half_duplex
        # codec geometry
        self.codec = CodecState(info)
        self.native_rate = info.sample_rate
        self.tick_samples = info.sample_rate // 50
        self.packet_samples = info.sample_rate * spec.ptime // 1000
        self.rtp_per_packet = info.rtp_clock * spec.ptime // 1000
        self.rtp_per_tick = info.rtp_clock // 50
        self.batch = info.law is not None and spec.ptime == 20
        # receive path
        self.stats = ReceiveStats(info.rtp_clock)
        self.jitter = JitterBuffer(
            min_target=max(1, spec.jitter_min_frames * 20 // spec.ptime),
            max_target=max(2, spec.jitter_max_frames * 20 // spec.ptime),
            capacity=max(50, 2000 // spec.ptime),
        )
        self.dtmf_in = DtmfReceiver(info.rtp_clock)
        self.dtmf_out = DtmfSender(info.rtp_clock, self.rtp_per_packet)
        self.malformed = 0
        self.wrong_source = 0
        self.unknown_pt = 0
        self.flood_dropped = 0
        self.size_mismatch = 0
        self.concealed = 0
        self.rtcp_in = 0
        self.rtcp_out = 0
        self.rtcp_malformed = 0
        self.last_rx = now
        self.timed_out = False
        self._in_fifo = np.zeros(0, dtype=np.float32)
        self._last_frame: F32 | None = None
        self._conceal_run = 0
        self._warned: set[str] = set()
        # send path (batched legs keep theirs in the mixer group's arrays)
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.sent_packets = 0
        self.sent_octets = 0
        self.marker_pending = True
        self.dtmf_ts = 0
        self._out_fifo = np.zeros(0, dtype=np.float32)
        # mixer placement
        self.group: MixGroup | None = None
        self.row = -1
        self.talk_state: tuple[bool, int, int] = (False, 0, 0)
        self.rx_resampler: ResamplerState | None = None
        self.tx_resampler: ResamplerState | None = None
        self.announcements: list[tuple[int, Source]] = []
        # RTCP
        self.cname = f"{spec.leg_id}@cchub"
        self._lsr = 0
        self._lsr_arrival = 0.0
        self.rtt: float | None = None
        self.remote_fraction_lost: float | None = None
        self.next_rtcp = now + random.uniform(0.5, 1.5)  # the first report early

    # -- receive ---------------------------------------------------------------------------

    def _warn_once(self, what: str, message: str, *args: object) -> None:
        """The first bad packet of each kind is logged; the counters carry the rest."""
        if what not in self._warned:
            self._warned.add(what)
            self.log.warning(message + " (further ones counted, not logged)", *args)
        else:
            self.log.debug(message, *args)

    def receive(self, wall: float, events: list[MediaEvent]) -> None:
        """Drain the socket queues: parse, account, and feed the jitter buffer."""
        queue = self.endpoint.queue
        if len(queue) > MAX_PACKETS_PER_TICK:
            # a flooding peer: keep the newest packets, count the rest
            excess = len(queue) - MAX_PACKETS_PER_TICK
            self.flood_dropped += excess
            for _ in range(excess):
                queue.popleft()
        remote = self.remote
        stats = self.stats
        jitter = self.jitter
        got_audio = False
        while queue:
            data, addr, arrival = queue.popleft()
            if remote is None or addr[1] != remote[1] or addr[0] != remote[0]:
                if not self._accept_source(addr):
                    self.wrong_source += 1
                    continue
                remote = self.remote
            if len(data) > 1 and 192 <= data[1] <= 223:
                self._rtcp_received(data, arrival, wall, events)
                continue
            if len(data) > 12 and data[0] == 0x80:
                # the common case (no padding, extension or CSRC) without building a header
                second, seq, timestamp, ssrc = _FIXED.unpack_from(data, 1)
                pt, start, end = second & 0x7F, 12, len(data)
            else:
                try:
                    header = parse_header(data)
                except RtpParseError as err:
                    self.malformed += 1
                    self._warn_once("malformed", "malformed RTP from %s: %s", addr, err.reason)
                    continue
                pt, seq, timestamp = header.payload_type, header.sequence, header.timestamp
                ssrc, start, end = header.ssrc, header.payload_start, header.payload_end
            if pt == self.payload_type:
                ext = stats.update(ssrc, seq, timestamp, arrival)
                if stats.restarted and stats.ssrc_changes and jitter.playing:
                    jitter.reset()
                    events.append(
                        SourceChanged(conference=self.conference, ts=wall, leg=self.id, ssrc=ssrc)
                    )
                if ext != DISCARD:
                    jitter.put(ext, data[start:end])
                    got_audio = True
            elif pt == self.dtmf_pt:
                self._dtmf_received(timestamp, data[start:end], arrival, wall, events)
            else:
                self.unknown_pt += 1
                self._warn_once(
                    "pt", "payload type %d was not negotiated (expected %d)", pt, self.payload_type
                )
        if got_audio:
            self.last_rx = arrival
            if self.timed_out:
                self.timed_out = False
                events.append(MediaResumed(conference=self.conference, ts=wall, leg=self.id))
        if self.rtcp_endpoint is not None and self.rtcp_endpoint.queue:
            self._drain_rtcp(wall, events)

    def _accept_source(self, addr: tuple[str, int]) -> bool:
        if self.remote is None or (self.spec.latch and self.stats.ssrc is None):
            self.remote = (addr[0], addr[1])
            self.endpoint.accept_from = self.remote
            if self.spec.rtcp and self.rtcp_remote is None:
                self.rtcp_remote = self.remote if self.spec.rtcp_mux else (addr[0], addr[1] + 1)
            self.log.info("RTP source latched: %s:%d", addr[0], addr[1])
            if self.group is not None:
                self.group.dirty = True  # its send list holds the old address
            return True
        self._warn_once("source", "RTP from %s, expected %s: dropped", addr, self.remote)
        return False

    def _dtmf_received(
        self, timestamp: int, payload: bytes, arrival: float, wall: float, events: list[MediaEvent]
    ) -> None:
        try:
            notices = self.dtmf_in.feed(timestamp, payload, arrival)
        except RtpParseError as err:
            self.malformed += 1
            self._warn_once("dtmf", "malformed telephone-event: %s", err.reason)
            return
        for notice in notices:
            events.append(
                DtmfReceived(
                    conference=self.conference,
                    ts=wall,
                    leg=self.id,
                    digit=notice.digit,
                    ended=notice.ended,
                    duration_ms=notice.duration_ms,
                )
            )

    def adapt_jitter_target(self) -> None:
        """Follow the measured jitter (run a few times a second, not per packet)."""
        self.jitter.set_jitter(self.stats.jitter / self.rtp_per_packet)

    def expire_dtmf(self, now: float, wall: float, events: list[MediaEvent]) -> None:
        notice = self.dtmf_in.expire(now)
        if notice is not None:
            events.append(
                DtmfReceived(
                    conference=self.conference,
                    ts=wall,
                    leg=self.id,
                    digit=notice.digit,
                    ended=True,
                    duration_ms=notice.duration_ms,
                )
            )

    # -- playout (the non-batched path) -------------------------------------------------------

    def conceal(self, kind: Playout) -> F32:
        """One packet of concealment after a loss or underrun, at the native rate."""
        self.concealed += 1
        if self.codec.has_plc:
            following = self.jitter.peek_next() if kind == Playout.LOST else None
            return self.codec.conceal(self.packet_samples, following)
        step = min(self._conceal_run, len(FADE) - 1)
        self._conceal_run += 1
        if self._last_frame is None or FADE[step] == 0.0:
            return np.zeros(self.packet_samples, dtype=np.float32)
        return self._last_frame[-self.packet_samples :] * FADE[step]

    def pull_frame(self, may_drop: bool) -> F32 | None:
        """20 ms of decoded audio at the native rate, or None when the leg is silent."""
        need = self.tick_samples
        fifo = self._in_fifo
        while len(fifo) < need:
            kind, payload = self.jitter.pop(may_drop)
            if kind == Playout.PLAY:
                assert payload is not None
                try:
                    pcm = self.codec.decode(payload)
                except Exception as err:  # a corrupt payload must not stop the tick
                    self.malformed += 1
                    self._warn_once("decode", "undecodable %s payload: %s", self.info.name, err)
                    pcm = np.zeros(self.packet_samples, dtype=np.float32)
                self._last_frame = pcm
                self._conceal_run = 0
            elif kind == Playout.IDLE:
                if not len(fifo):
                    return None
                pcm = np.zeros(need - len(fifo), dtype=np.float32)
            else:
                pcm = self.conceal(kind)
            fifo = np.concatenate([fifo, pcm]) if len(fifo) else pcm
        self._in_fifo = fifo[need:]
        return fifo[:need]

    # -- send (the non-batched path) ---------------------------------------------------------

    def send(self, data: bytes) -> None:
        transport = self.endpoint.transport
        if transport is not None and self.remote is not None:
            transport.sendto(data, self.remote)

    def push_frame(self, pcm: F32) -> None:
        """20 ms of the leg's mix at the native rate: packetise per ptime and send."""
        fifo = np.concatenate([self._out_fifo, pcm]) if len(self._out_fifo) else pcm
        size = self.packet_samples
        while len(fifo) >= size:
            chunk, fifo = fifo[:size], fifo[size:]
            event = self.dtmf_out.next() if self.dtmf_out.active else None
            if event is not None:
                if event.new_event:
                    self.dtmf_ts = self.ts
                assert self.dtmf_pt is not None
                packet = build_packet(
                    self.dtmf_pt, self.seq, self.dtmf_ts, self.ssrc, event.payload, event.marker
                )
            else:
                packet = build_packet(
                    self.payload_type,
                    self.seq,
                    self.ts,
                    self.ssrc,
                    self.codec.encode(chunk),
                    self.marker_pending,
                )
                self.marker_pending = False
            self.seq = (self.seq + 1) & 0xFFFF
            self.ts = (self.ts + self.rtp_per_packet) & 0xFFFFFFFF
            self.sent_packets += 1
            self.sent_octets += len(packet) - 12
            self.send(packet)
        self._out_fifo = fifo

    # -- RTCP ----------------------------------------------------------------------------

    def _drain_rtcp(self, wall: float, events: list[MediaEvent]) -> None:
        assert self.rtcp_endpoint is not None
        queue = self.rtcp_endpoint.queue
        while queue:
            data, _addr, arrival = queue.popleft()
            self._rtcp_received(data, arrival, wall, events)

    def _rtcp_received(
        self, data: bytes, arrival: float, wall: float, events: list[MediaEvent]
    ) -> None:
        try:
            packets = rtcp.parse_compound(data)
        except RtpParseError as err:
            self.rtcp_malformed += 1
            self._warn_once("rtcp", "malformed RTCP: %s", err.reason)
            return
        self.rtcp_in += 1
        for packet in packets:
            if isinstance(packet, rtcp.SenderReport):
                self._lsr = (packet.ntp_timestamp >> 16) & 0xFFFFFFFF
                self._lsr_arrival = arrival
            if isinstance(packet, rtcp.SenderReport | rtcp.ReceiverReport):
                for block in packet.reports:
                    if block.ssrc == self.ssrc:
                        self._report_received(block, wall)
            elif isinstance(packet, rtcp.Bye):
                events.append(
                    PeerBye(conference=self.conference, ts=wall, leg=self.id, reason=packet.reason)
                )

    def _report_received(self, block: rtcp.ReportBlock, wall: float) -> None:
        self.remote_fraction_lost = block.fraction_lost / 256
        if block.last_sr:
            now = (rtcp.ntp_time(wall) >> 16) & 0xFFFFFFFF
            rtt = ((now - block.last_sr - block.delay_since_last_sr) & 0xFFFFFFFF) / 65536
            if rtt < 60:
                self.rtt = rtt

    def rtcp_report(self, wall: float, now: float, sender: tuple[int, int, int] | None) -> bytes:
        """A compound SR (or RR) + SDES; ``sender`` is (rtp_ts, packets, octets) if we sent."""
        blocks: tuple[rtcp.ReportBlock, ...] = ()
        if self.stats.ssrc is not None:
            dlsr = int((now - self._lsr_arrival) * 65536) if self._lsr else 0
            blocks = (self.stats.report_block(self._lsr, dlsr),)
        first: rtcp.RtcpPacket
        if sender is not None and sender[1]:
            first = rtcp.SenderReport(
                self.ssrc, rtcp.ntp_time(wall), sender[0], sender[1], sender[2], blocks
            )
        else:
            first = rtcp.ReceiverReport(self.ssrc, blocks)
        sdes = rtcp.SourceDescription(
            (rtcp.SdesChunk(self.ssrc, ((rtcp.SDES_CNAME, self.cname.encode()),)),)
        )
        return rtcp.build_compound([first, sdes])

    def send_rtcp(self, data: bytes) -> None:
        if self.rtcp_remote is None:
            return
        endpoint = (
            self.endpoint
            if self.spec.rtcp_mux or self.rtcp_endpoint is None
            else self.rtcp_endpoint
        )
        if endpoint.transport is not None:
            endpoint.transport.sendto(data, self.rtcp_remote)
            self.rtcp_out += 1

    def bye(self, wall: float, now: float, sender: tuple[int, int, int] | None) -> None:
        if self.spec.rtcp and self.rtcp_remote is not None:
            report = self.rtcp_report(wall, now, sender)
            self.send_rtcp(report + rtcp.build(rtcp.Bye((self.ssrc,), "leg removed")))

    def snapshot(self, talking: bool, sent_packets: int, dtmf_sent: int) -> LegStats:
        jb = self.jitter
        return LegStats(
            leg_id=self.id,
            conference=self.conference,
            ssrc=self.stats.ssrc,
            datagrams=self.endpoint.received,
            packets=self.stats.received,
            lost=self.stats.lost,
            late=jb.late,
            duplicates=self.stats.duplicates,
            reordered=self.stats.reordered,
            jitter_ms=1000 * self.stats.jitter_seconds,
            jitter_buffer_frames=jb.depth,
            jitter_target_frames=jb.target,
            concealed=self.concealed,
            drift_drops=jb.drift_drops,
            ssrc_changes=self.stats.ssrc_changes,
            malformed=self.malformed + self.rtcp_malformed,
            wrong_source=self.wrong_source + self.endpoint.wrong_source,
            unknown_payload_type=self.unknown_pt,
            flood_dropped=self.flood_dropped + self.endpoint.overflow,
            size_mismatch=self.size_mismatch,
            dtmf_received=self.dtmf_in.events,
            dtmf_sent=dtmf_sent,
            packets_sent=sent_packets,
            rtcp_received=self.rtcp_in,
            rtcp_sent=self.rtcp_out,
            round_trip_ms=None if self.rtt is None else 1000 * self.rtt,
            talking=talking,
            remote_fraction_lost=self.remote_fraction_lost,
            extra={
                "jb_played": jb.played,
                "jb_underruns": jb.underruns,
                "jb_overflow": jb.overflow,
                "jb_resets": jb.resets,
                "jb_max_depth": jb.max_depth_seen,
                "foreign_ssrc": self.stats.foreign,
            },
        )

    def close(self) -> None:
        self.endpoint.close()
        if self.rtcp_endpoint is not None:
            self.rtcp_endpoint.close()
        self.codec.close()
