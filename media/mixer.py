"""The mix-minus for every conference that mixes at one rate, as one set of numpy arrays.

Rows are legs, sorted by conference. Per tick: decode all batched G.711 payloads at once,
total each conference once (``np.add.reduceat``), give every leg ``total - own`` through its
gain/mute/deafen/half-duplex masks, soft-clip, encode all G.711 legs at once and write their
RTP headers as one array. Only the per-packet socket calls and the jitter-buffer pops loop
over legs in Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from media import g711
from media.conference import Conference, leg_announcement_frame
from media.dsp import level_dbfs, soft_clip
from media.events import MediaEvent, TalkingStarted, TalkingStopped
from media.jitter import Playout
from media.leg import FADE, Leg
from media.resample import ResamplerState, resample
from media.rtp import build_packet
from media.talk import TalkColumns, TalkSettings

F32 = npt.NDArray[np.float32]
G711_FRAME = 160
_PLAY, _IDLE = Playout.PLAY, Playout.IDLE
_SILENT_FRAME = bytes([g711.ULAW_SILENCE]) * G711_FRAME


class MixGroup:
    """Every conference currently mixing at ``rate`` Hz."""

    def __init__(self, rate: int, talk: TalkSettings) -> None:
        self.rate = rate
        self.samples = rate // 50
        self.talk_settings = talk
        self.dirty = False
        self.legs: list[Leg] = []
        self.conferences: list[Conference] = []
        self.dtmf_legs: set[Leg] = set()
        self.announcing: set[Leg] = set()  # legs with an announcement of their own playing
        self.late_payloads = 0
        self._alloc(0)

    def _alloc(self, n: int) -> None:
        self.in_gain = np.zeros(n, dtype=np.float32)
        self.out_gain = np.zeros(n, dtype=np.float32)
        self.half_duplex = np.zeros(n, dtype=bool)
        self.talk = TalkColumns(n)
        self.starts = np.zeros(0, dtype=np.intp)
        self.conf_index = np.zeros(n, dtype=np.intp)
        self.batch = np.zeros(n, dtype=bool)
        self.sendable = np.zeros(n, dtype=bool)
        self.law = np.zeros(n, dtype=np.intp)
        self.seq = np.zeros(n, dtype=np.int64)
        self.ts = np.zeros(n, dtype=np.int64)
        self.payload_type = np.zeros(n, dtype=np.uint8)
        self.ssrc_bytes = np.zeros((n, 4), dtype=np.uint8)
        self.marker = np.zeros(n, dtype=bool)
        self.sent_packets = np.zeros(n, dtype=np.int64)
        self.last_frame = np.zeros((n, G711_FRAME), dtype=np.float32)
        self.conceal_run = np.zeros(n, dtype=np.intp)
        self.sendto: list[object] = []
        self.remotes: list[object] = []

    # -- membership --------------------------------------------------------------------------

    def save(self) -> None:
        """Copy per-row state back to the legs (before the rows are rebuilt or a leg leaves)."""
        for i, leg in enumerate(self.legs):
            if leg.group is not self or leg.row != i:
                continue
            leg.talk_state = self.talk.row(i)
            if leg.batch:
                leg.seq = int(self.seq[i]) & 0xFFFF
                leg.ts = int(self.ts[i]) & 0xFFFFFFFF
                leg.sent_packets = int(self.sent_packets[i])
                leg.sent_octets = leg.sent_packets * G711_FRAME
                leg.marker_pending = bool(self.marker[i])

    def rebuild(self, conferences: Sequence[Conference]) -> None:
        """Lay out rows for ``conferences`` (those mixing at this rate) from the legs' state.

        Call :meth:`save` first (on every group being rebuilt) so that state is current.
        """
        self.conferences = [c for c in conferences if c.legs]
        legs = [leg for conf in self.conferences for leg in conf.legs.values()]
        n = len(legs)
        self._alloc(n)
        self.legs = legs
        sizes = [len(c.legs) for c in self.conferences]
        self.starts = np.cumsum([0, *sizes[:-1]]).astype(np.intp) if sizes else self.starts
        self.conf_index = np.repeat(np.arange(len(sizes)), sizes).astype(np.intp)
        for i, leg in enumerate(legs):
            leg.group, leg.row = self, i
            contributes = not (leg.muted or leg.listen_only)
            self.in_gain[i] = leg.input_gain if contributes else 0.0
            self.out_gain[i] = 0.0 if leg.deafened else leg.output_gain
            self.half_duplex[i] = leg.half_duplex
            self.talk.set_row(i, leg.talk_state)
            self.batch[i] = leg.batch
            transport = leg.endpoint.transport
            self.sendable[i] = leg.batch and leg.remote is not None and transport is not None
            self.sendto.append(transport.sendto if transport is not None else None)
            self.remotes.append(leg.remote)
            self.law[i] = leg.info.law or 0
            self.seq[i], self.ts[i] = leg.seq, leg.ts
            self.payload_type[i] = leg.payload_type
            self.ssrc_bytes[i] = np.frombuffer(leg.ssrc.to_bytes(4, "big"), dtype=np.uint8)
            self.marker[i] = leg.marker_pending
            self.sent_packets[i] = leg.sent_packets
            self._fit_resamplers(leg)
        self.dtmf_legs = {leg for leg in legs if leg.dtmf_out.active}
        self.announcing = {leg for leg in legs if leg.announcements}
        self.dirty = False

    def _fit_resamplers(self, leg: Leg) -> None:
        if leg.native_rate == self.rate:
            leg.rx_resampler = leg.tx_resampler = None
            return
        if leg.rx_resampler is None or leg.rx_resampler.dst != self.rate:
            leg.rx_resampler = ResamplerState(leg.native_rate, self.rate)
            leg.tx_resampler = ResamplerState(self.rate, leg.native_rate)

    # -- the tick ----------------------------------------------------------------------------

    def tick(self, wall: float, events: list[MediaEvent]) -> None:
        legs = self.legs
        n = len(legs)
        if n == 0:
            return
        x = np.zeros((n, self.samples), dtype=np.float32)
        self._pull(x, wall, events)
        started, stopped = self.talk.update(self.talk_settings, level_dbfs(x))
        talking = self.talk.talking
        for i in started.tolist():
            leg = legs[i]
            events.append(TalkingStarted(conference=leg.conference, ts=wall, leg=leg.id))
        for i in stopped.tolist():
            leg = legs[i]
            events.append(TalkingStopped(conference=leg.conference, ts=wall, leg=leg.id))
        # half-duplex legs are heard only while they talk, and hear nothing while they do
        contrib = np.where(self.half_duplex & ~talking, 0.0, self.in_gain).astype(np.float32)
        own = x * contrib[:, None]
        totals = np.add.reduceat(own, self.starts, axis=0)
        for c, conf in enumerate(self.conferences):
            if conf.announcements:
                frame = conf.announcement_frame(self.rate, self.samples, wall, events)
                if frame is not None:
                    totals[c] += frame
        hear = np.where(self.half_duplex & talking, 0.0, self.out_gain).astype(np.float32)
        out = (totals[self.conf_index] - own) * hear[:, None]
        for leg in list(self.announcing):
            frame = leg_announcement_frame(leg, self.rate, self.samples, wall, events)
            if frame is None:
                self.announcing.discard(leg)
            elif not leg.deafened:
                out[leg.row] += frame
        soft_clip(out)
        self._record(x, totals, started, stopped, wall)
        self._send(out)

    def _pull(self, x: F32, wall: float, events: list[MediaEvent]) -> None:
        """Receive, jitter-buffer and decode every leg into ``x`` (rows at the group rate)."""
        legs = self.legs
        talking = self.talk.talking
        play_rows: list[int] = []
        payloads: list[bytes] = []
        conceal_rows: list[int] = []
        others: dict[int, list[tuple[int, F32]]] = defaultdict(list)
        for i, leg in enumerate(legs):
            if leg.endpoint.queue or (leg.rtcp_endpoint is not None and leg.rtcp_endpoint.queue):
                leg.receive(wall, events)
            if leg.batch:
                kind, payload = leg.jitter.pop(not talking[i])
                if kind == _PLAY:
                    assert payload is not None
                    if len(payload) != G711_FRAME:
                        leg.size_mismatch += 1
                        payload = (payload + _SILENT_FRAME)[:G711_FRAME]
                    play_rows.append(i)
                    payloads.append(payload)
                elif kind != _IDLE:
                    conceal_rows.append(i)
                    leg.concealed += 1
            else:
                frame = leg.pull_frame(not talking[i])
                if frame is not None:
                    others[leg.native_rate].append((i, frame))
        rows8: list[npt.NDArray[np.intp]] = []
        frames8: list[F32] = []
        if play_rows:
            rows = np.array(play_rows, dtype=np.intp)
            data = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(len(rows), G711_FRAME)
            decoded = g711.decode(data, self.law[rows])
            self.last_frame[rows] = decoded
            self.conceal_run[rows] = 0
            rows8.append(rows)
            frames8.append(decoded)
        if conceal_rows:
            rows = np.array(conceal_rows, dtype=np.intp)
            fade = FADE[np.minimum(self.conceal_run[rows], len(FADE) - 1)]
            self.conceal_run[rows] += 1
            rows8.append(rows)
            frames8.append(self.last_frame[rows] * fade[:, None])
        if rows8:
            rows = np.concatenate(rows8) if len(rows8) > 1 else rows8[0]
            frames = np.concatenate(frames8) if len(frames8) > 1 else frames8[0]
            if self.rate != 8000:
                states = [legs[i].rx_resampler for i in rows.tolist()]
                frames = resample([s for s in states if s is not None], frames)
            x[rows] = frames
        for rate, items in others.items():
            idx = np.array([i for i, _ in items], dtype=np.intp)
            stacked = np.stack([f for _, f in items])
            if rate != self.rate:
                states = [legs[i].rx_resampler for i in idx.tolist()]
                stacked = resample([s for s in states if s is not None], stacked)
            x[idx] = stacked

    def _record(
        self,
        x: F32,
        totals: F32,
        started: npt.NDArray[np.intp],
        stopped: npt.NDArray[np.intp],
        wall: float,
    ) -> None:
        legs = self.legs
        for i in started.tolist():
            session = self.conferences[self.conf_index[i]].recording
            if session is not None:
                session.talker_started(legs[i].id, wall)
        for i in stopped.tolist():
            session = self.conferences[self.conf_index[i]].recording
            if session is not None:
                session.talker_stopped(legs[i].id, wall)
        talking = self.talk.talking
        for c, conf in enumerate(self.conferences):
            session = conf.recording
            if session is None:
                continue
            session.mix_frame(self.rate, soft_clip(totals[c].copy()))
            start = int(self.starts[c])
            for i in np.flatnonzero(talking[start : start + len(conf.legs)]).tolist():
                session.talker_frame(legs[start + i].id, self.rate, x[start + i].copy())

    def _send(self, out: F32) -> None:
        legs = self.legs
        sendable = self.sendable
        if self.dtmf_legs:
            sendable = sendable.copy()
            for leg in list(self.dtmf_legs):
                if self._send_dtmf(leg):
                    sendable[leg.row] = False
                elif not leg.dtmf_out.active:
                    self.dtmf_legs.discard(leg)
        rows = np.flatnonzero(sendable)
        if rows.size:
            frames = out[rows]
            if self.rate != 8000:
                states = [legs[i].tx_resampler for i in rows.tolist()]
                frames = resample([s for s in states if s is not None], frames)
            payload = g711.encode(frames, self.law[rows])
            m = rows.size
            header = np.empty((m, 12), dtype=np.uint8)
            header[:, 0] = 0x80
            header[:, 1] = self.payload_type[rows] | (self.marker[rows].astype(np.uint8) << 7)
            header[:, 2:4] = (self.seq[rows] & 0xFFFF).astype(">u2").view(np.uint8).reshape(m, 2)
            header[:, 4:8] = (self.ts[rows] & 0xFFFFFFFF).astype(">u4").view(np.uint8).reshape(m, 4)
            header[:, 8:12] = self.ssrc_bytes[rows]
            blob = np.concatenate([header, payload], axis=1).tobytes()
            self.seq[rows] += 1
            self.sent_packets[rows] += 1
            self.marker[rows] = False
            size = 12 + G711_FRAME
            sendto, remotes = self.sendto, self.remotes
            at = 0
            for i in rows.tolist():
                sendto[i](blob[at : at + size], remotes[i])  # type: ignore[operator]
                at += size
        self.ts[self.batch] += G711_FRAME
        for leg in legs:
            if not leg.batch:
                frame = out[leg.row]
                if leg.tx_resampler is not None:
                    frame = resample([leg.tx_resampler], frame[None])[0]
                leg.push_frame(frame)

    def _send_dtmf(self, leg: Leg) -> bool:
        """For a batched leg: send this tick's telephone-event packet instead of audio."""
        if not leg.batch:
            return False  # the leg's own send path interleaves its events
        event = leg.dtmf_out.next()
        if event is None:
            return False
        i = leg.row
        if event.new_event:
            leg.dtmf_ts = int(self.ts[i]) & 0xFFFFFFFF
        if self.sendable[i] and leg.dtmf_pt is not None:
            packet = build_packet(
                leg.dtmf_pt, int(self.seq[i]), leg.dtmf_ts, leg.ssrc, event.payload, event.marker
            )
            self.seq[i] += 1
            self.sent_packets[i] += 1
            self.sendto[i](packet, self.remotes[i])  # type: ignore[operator]
        return True

    def skip(self, ticks: int) -> None:
        """The engine stalled past catching up: drop ``ticks`` frames everywhere, keep time.

        Timestamps advance (receivers see a gap, not a slip) and every jitter buffer gives
        up the frames those ticks would have played, so no delay is left behind.
        """
        for leg in self.legs:
            for _ in range(min(ticks, leg.jitter.capacity)):
                leg.jitter.pop(True)
            if not leg.batch:
                leg.ts = (leg.ts + ticks * leg.rtp_per_tick) & 0xFFFFFFFF
        self.ts[self.batch] += ticks * G711_FRAME

    def sender_state(self, leg: Leg) -> tuple[int, int, int]:
        """(RTP timestamp, packets, payload octets) of a leg, for its RTCP sender report."""
        if leg.batch and leg.group is self and 0 <= leg.row < len(self.legs):
            packets = int(self.sent_packets[leg.row])
            return int(self.ts[leg.row]) & 0xFFFFFFFF, packets, packets * G711_FRAME
        return leg.ts, leg.sent_packets, leg.sent_octets

    def is_talking(self, leg: Leg) -> bool:
        if leg.group is self and 0 <= leg.row < len(self.legs) and self.legs[leg.row] is leg:
            return bool(self.talk.talking[leg.row])
        return leg.talk_state[0]
