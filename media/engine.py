"""The media engine: conferences of RTP legs, mixed on one drift-corrected 20 ms tick.

This is mechanism only (STYLE.md section 6): the conference layer in ``hub`` decides who
joins, who is muted, who may talk; the engine does what it is told and reports what it
sees (talking, DTMF, timeouts, recordings) through :meth:`MediaEngine.subscribe`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from media.announce import PcmSource, Source, Tone, ToneSource, read_wav
from media.codecs import codec_info
from media.conference import RATES, Conference, RecordingSession
from media.errors import MediaStateError, UnknownConference, UnknownLeg
from media.events import (
    AnnouncementFinished,
    MediaEvent,
    MediaTimeout,
    RateChanged,
    RecordingIndex,
    TalkingStopped,
)
from media.leg import Leg, LegInfo, LegSpec, LegStats
from media.mixer import MixGroup
from media.recording import SINKS, RecordingWriter
from media.talk import TalkSettings
from media.transport import open_endpoint

logger = logging.getLogger(__name__)
TICK = 0.020
# Ticks run back to back to catch up after a stall of up to this many periods; a longer
# stall is skipped (counted) and the schedule continues on its original grid.
MAX_CATCH_UP = 5
RECORDING_CLOSE_TIMEOUT = 10.0
Subscriber = Callable[[MediaEvent], None]


@dataclass(frozen=True, kw_only=True)
class EngineStats:
    ticks: int
    late_ticks: int
    skipped_ticks: int
    max_lateness_ms: float
    tick_ms_avg: float  # time spent computing one tick
    tick_ms_max: float
    tick_errors: int
    conferences: int
    legs: int
    recording_dropped_frames: int
    recording_errors: int


@dataclass(frozen=True, kw_only=True)
class ConferenceInfo:
    conference: str
    rate: int
    legs: tuple[str, ...]
    talking: tuple[str, ...]
    recording: str | None
    announcements: int


class MediaEngine:
    """Owns every leg's sockets, the mixer groups, the tick task and the recording thread."""

    def __init__(self, *, talk: TalkSettings | None = None, recording_queue: int = 500) -> None:
        self.talk = talk or TalkSettings()
        self._conferences: dict[str, Conference] = {}
        self._legs: dict[str, Leg] = {}
        self._groups: dict[int, MixGroup] = {rate: MixGroup(rate, self.talk) for rate in RATES}
        self._subscribers: list[Subscriber] = []
        self._writer = RecordingWriter(recording_queue)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._announcement_ids = itertools.count(1)
        self._events: list[MediaEvent] = []
        self._in_tick = False
        # timing
        self._wall0 = 0.0
        self._ticks = 0
        self.late_ticks = 0
        self.skipped_ticks = 0
        self.max_lateness = 0.0
        self._busy_total = 0.0
        self._busy_max = 0.0
        self.tick_errors = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        if self._closed:
            raise MediaStateError("the media engine is closed")
        self._loop = asyncio.get_running_loop()
        self._wall0 = time.time()
        self._writer.start()
        self._task = self._loop.create_task(self._run(), name="media-tick")

    async def close(self) -> None:
        """Stop the tick, end every conference (final events, recordings closed), free sockets."""
        if self._closed:
            return
        for conf_id in list(self._conferences):
            await self.end_conference(conf_id)
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._dispatch()
        await asyncio.to_thread(self._writer.stop)

    async def __aenter__(self) -> MediaEngine:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with every event (on the loop); returns the unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    # -- the tick ----------------------------------------------------------------------------

    def media_time(self) -> float:
        """UNIX time of the current tick on the engine's drift-free grid."""
        return self._wall0 + self._ticks * TICK

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        self._wall0 = time.time()
        deadline = start
        while True:
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lateness = loop.time() - deadline
            # with no legs a late tick delays nobody's audio (e.g. the hub starting up):
            # it keeps the grid but is not counted or reported as lateness
            audible = bool(self._legs)
            if lateness > TICK / 2 and audible:
                self.late_ticks += 1
            if audible:
                self.max_lateness = max(self.max_lateness, lateness)
            if lateness > MAX_CATCH_UP * TICK:
                missed = int(lateness / TICK)
                self.skipped_ticks += missed
                self._ticks += missed
                for group in self._groups.values():
                    if not group.dirty:
                        group.skip(missed)
                deadline += missed * TICK
                (logger.warning if audible else logger.debug)(
                    "media tick stalled %.0f ms: %d ticks skipped", 1000 * lateness, missed
                )
            began = time.perf_counter()
            self._in_tick = True
            try:
                self._tick()
            except Exception:
                # a bug must not stop the audio of every conference: log it once, count it
                self.tick_errors += 1
                if self.tick_errors == 1:
                    logger.exception("media tick failed (further failures counted)")
            finally:
                self._in_tick = False
            spent = time.perf_counter() - began
            self._busy_total += spent
            self._busy_max = max(self._busy_max, spent)
            self._ticks += 1
            deadline += TICK
            if lateness > TICK:
                await asyncio.sleep(0)  # catching up: still let the loop breathe between ticks

    def _tick(self) -> None:
        wall = self.media_time()
        events = self._events
        dirty = [(rate, g) for rate, g in self._groups.items() if g.dirty]
        # every dirty group saves its rows before any rebuilds: a conference changing rate
        # carries its legs' sender and talk state from one group to the other
        for _, group in dirty:
            group.save()
        for rate, group in dirty:
            group.rebuild([c for c in self._conferences.values() if c.rate == rate])
        for group in self._groups.values():
            group.tick(wall, events)
        for conf in self._conferences.values():
            if not conf.legs and (conf.recording is not None or conf.announcements):
                # an empty conference still plays (and records) its announcements, and its
                # recording keeps its timeline
                samples = conf.rate // 50
                frame = conf.announcement_frame(conf.rate, samples, wall, events)
                if conf.recording is not None:
                    silence = np.zeros(samples, dtype=np.float32)
                    conf.recording.mix_frame(conf.rate, silence if frame is None else frame)
        if self._ticks % 10 == 0:
            self._housekeeping(wall)
        self._dispatch()

    def _now(self) -> float:
        """The loop's clock: packet arrival times and every timeout use it."""
        return self._loop.time() if self._loop is not None else time.monotonic()

    def _housekeeping(self, wall: float) -> None:
        """Timeouts, stale DTMF, jitter targets and RTCP reports: every 200 ms, not every tick."""
        now = self._now()
        for leg in self._legs.values():
            if not leg.timed_out and now - leg.last_rx > leg.spec.media_timeout:
                leg.timed_out = True
                self._events.append(
                    MediaTimeout(
                        conference=leg.conference,
                        ts=wall,
                        leg=leg.id,
                        seconds=leg.spec.media_timeout,
                    )
                )
            leg.expire_dtmf(now, wall, self._events)
            leg.adapt_jitter_target()
            if leg.spec.rtcp and now >= leg.next_rtcp:
                leg.next_rtcp = now + random.uniform(2.5, 7.5)  # RFC 3550 6.2: randomised ~5 s
                sender = leg.group.sender_state(leg) if leg.group else None
                leg.send_rtcp(leg.rtcp_report(wall, now, sender))

    def _dispatch(self) -> None:
        if not self._events:
            return
        events, self._events = self._events, []
        for event in events:
            for callback in list(self._subscribers):
                try:
                    callback(event)
                except Exception:
                    logger.exception("media event subscriber failed on %s", type(event).__name__)

    def _emit(self, event: MediaEvent) -> None:
        """Report an event; outside the tick (an API call, a writer result) at once."""
        self._events.append(event)
        if not self._in_tick:
            self._dispatch()

    # -- conferences -------------------------------------------------------------------------

    def _conference(self, conf_id: str) -> Conference:
        try:
            return self._conferences[conf_id]
        except KeyError:
            raise UnknownConference(conf_id) from None

    def _leg(self, leg_id: str) -> Leg:
        try:
            return self._legs[leg_id]
        except KeyError:
            raise UnknownLeg(leg_id) from None

    def create_conference(self, conf_id: str, *, max_rate: int = 48000) -> None:
        if self._closed:
            raise MediaStateError("the media engine is closed")
        if conf_id in self._conferences:
            raise MediaStateError(f"conference {conf_id!r} exists")
        self._conferences[conf_id] = Conference(conf_id, max_rate)

    async def end_conference(self, conf_id: str) -> list[RecordingIndex]:
        """Remove every leg (talkers get a final stop), stop announcements and the recording."""
        conf = self._conference(conf_id)
        for leg_id in list(conf.legs):
            await self.remove_leg(leg_id, reason="ended")
        conf.announcements.clear()
        records = await self.stop_recording(conf_id) if conf.recording is not None else []
        self._groups[conf.rate].dirty = True
        del self._conferences[conf_id]
        return records

    def _update_rate(self, conf: Conference) -> None:
        rate = conf.wanted_rate()
        self._groups[conf.rate].dirty = True
        if rate != conf.rate:
            logger.info("conference %s mixes at %d Hz (was %d)", conf.id, rate, conf.rate)
            conf.rate = rate
            self._emit(RateChanged(conference=conf.id, ts=self.media_time(), rate=rate))
        self._groups[rate].dirty = True

    # -- legs --------------------------------------------------------------------------------

    async def add_leg(self, conf_id: str, spec: LegSpec) -> LegInfo:
        """Open the leg's sockets and put it in the conference (mixing from the next tick)."""
        conf = self._conference(conf_id)
        if spec.leg_id in self._legs:
            raise MediaStateError(f"leg {spec.leg_id!r} exists")
        if spec.ptime not in (10, 20, 30, 40, 60):
            raise ValueError(f"ptime {spec.ptime} ms: one of 10, 20, 30, 40, 60")
        info = codec_info(spec.codec)
        payload_type = (
            spec.payload_type if spec.payload_type is not None else info.static_payload_type
        )
        if payload_type is None:
            raise ValueError(f"codec {info.name} has no static payload type: give payload_type")
        endpoint = await open_endpoint(spec.local, spec.sock, spec.max_queue)
        rtcp_endpoint = None
        try:
            if spec.rtcp and not spec.rtcp_mux and spec.rtcp_sock is not None:
                rtcp_endpoint = await open_endpoint(None, spec.rtcp_sock, spec.max_queue)
            leg = Leg(spec, conf_id, info, payload_type, endpoint, rtcp_endpoint, self._now())
        except BaseException:
            endpoint.close()
            if rtcp_endpoint is not None:
                rtcp_endpoint.close()
            raise
        if spec.leg_id in self._legs or conf_id not in self._conferences:
            leg.close()  # raced with another add or the conference ending while binding
            raise MediaStateError(f"leg {spec.leg_id!r} could not join {conf_id!r}")
        self._legs[spec.leg_id] = leg
        conf.legs[spec.leg_id] = leg
        self._update_rate(conf)
        return LegInfo(
            leg_id=leg.id,
            conference=conf_id,
            local=endpoint.local_address,
            rtcp_local=rtcp_endpoint.local_address if rtcp_endpoint else None,
            codec=info.name,
            payload_type=payload_type,
            ptime=spec.ptime,
        )

    async def remove_leg(self, leg_id: str, *, reason: str = "left") -> LegStats:
        """Take the leg out (a final TalkingStopped if it was talking), send BYE, close sockets."""
        leg = self._leg(leg_id)
        conf = self._conferences[leg.conference]
        stats = self._stats(leg)
        now = self._now()
        wall = self.media_time()
        if stats.talking:
            if conf.recording is not None:
                conf.recording.talker_stopped(leg.id, wall)
            self._emit(TalkingStopped(conference=conf.id, ts=wall, leg=leg.id, reason=reason))
        leg.bye(wall, now, leg.group.sender_state(leg) if leg.group else None)
        del self._legs[leg_id]
        del conf.legs[leg_id]
        if leg.group is not None:
            leg.group.dtmf_legs.discard(leg)
        leg.group, leg.row = None, -1
        leg.close()
        self._update_rate(conf)
        return stats

    async def move_leg(self, leg_id: str, conf_id: str) -> None:
        """Move a leg to another conference (a transfer, a barge-in), keeping its stream."""
        leg = self._leg(leg_id)
        target = self._conference(conf_id)
        source = self._conferences[leg.conference]
        if source is target:
            return
        if self._is_talking(leg) and source.recording is not None:
            source.recording.talker_stopped(leg.id, self.media_time())
        del source.legs[leg_id]
        leg.conference = conf_id
        target.legs[leg_id] = leg
        self._update_rate(source)
        self._update_rate(target)

    def _changed(self, leg: Leg) -> None:
        self._groups[self._conferences[leg.conference].rate].dirty = True

    def set_gain(
        self, leg_id: str, *, input_db: float | None = None, output_db: float | None = None
    ) -> None:
        leg = self._leg(leg_id)
        if input_db is not None:
            leg.input_gain = 10 ** (input_db / 20)
        if output_db is not None:
            leg.output_gain = 10 ** (output_db / 20)
        self._changed(leg)

    def set_mute(self, leg_id: str, muted: bool) -> None:
        """A muted leg is not heard; it still hears, and its talking is still reported."""
        leg = self._leg(leg_id)
        leg.muted = muted
        self._changed(leg)

    def set_deafen(self, leg_id: str, deafened: bool) -> None:
        """A deafened leg hears nothing (it is sent silence); it is still heard."""
        leg = self._leg(leg_id)
        leg.deafened = deafened
        self._changed(leg)

    def set_listen_only(self, leg_id: str, listen_only: bool) -> None:
        """Silent monitor: the leg hears the conference and is never heard."""
        leg = self._leg(leg_id)
        leg.listen_only = listen_only
        self._changed(leg)

    def set_half_duplex(self, leg_id: str, half_duplex: bool) -> None:
        """Half-duplex (radio): heard only while talking, and hears nothing while talking."""
        leg = self._leg(leg_id)
        leg.half_duplex = half_duplex
        self._changed(leg)

    def set_remote(
        self, leg_id: str, remote: tuple[str, int], rtcp_remote: tuple[str, int] | None = None
    ) -> None:
        leg = self._leg(leg_id)
        leg.remote = remote
        leg.endpoint.accept_from = remote
        if leg.spec.rtcp:
            leg.rtcp_remote = rtcp_remote or (
                remote if leg.spec.rtcp_mux else (remote[0], remote[1] + 1)
            )
        self._changed(leg)

    def send_dtmf(self, leg_id: str, digits: str, *, duration_ms: int = 100) -> None:
        """Queue RFC 4733 events to the leg (they replace its audio while they play)."""
        leg = self._leg(leg_id)
        if leg.dtmf_pt is None:
            raise MediaStateError(f"leg {leg_id!r} negotiated no telephone-event payload type")
        leg.dtmf_out.queue(digits, duration_ms)
        group = self._groups[self._conferences[leg.conference].rate]
        group.dtmf_legs.add(leg)

    # -- announcements -----------------------------------------------------------------------

    def _play(self, conf_id: str, source: Source, leg_id: str | None) -> int:
        conf = self._conference(conf_id)
        ann_id = next(self._announcement_ids)
        if leg_id is None:
            conf.announcements.append((ann_id, source))
        else:
            leg = self._leg(leg_id)
            if leg.conference != conf_id:
                raise UnknownLeg(f"{leg_id} is not in {conf_id}")
            leg.announcements.append((ann_id, source))
            if leg.group is not None:
                leg.group.announcing.add(leg)
        return ann_id

    def play_tone(self, conf_id: str, tone: Tone, *, leg: str | None = None) -> int:
        """Play ``tone`` into the conference (everyone hears it) or to one leg only."""
        return self._play(conf_id, ToneSource(tone), leg)

    async def play_file(
        self, conf_id: str, path: Path, *, leg: str | None = None, loop: bool = False
    ) -> int:
        """Play a WAV file (read off the loop) into the conference or to one leg."""
        rate, samples = await asyncio.to_thread(read_wav, path)
        return self._play(conf_id, PcmSource(rate, samples, loop), leg)

    def stop_announcement(self, ann_id: int) -> bool:
        for conf in self._conferences.values():
            owners: list[tuple[list[tuple[int, Source]], str | None]] = [(conf.announcements, None)]
            owners += [(leg.announcements, leg.id) for leg in conf.legs.values()]
            for items, leg_id in owners:
                for item in items:
                    if item[0] == ann_id:
                        items.remove(item)
                        self._emit(
                            AnnouncementFinished(
                                conference=conf.id,
                                ts=self.media_time(),
                                announcement=ann_id,
                                leg=leg_id,
                                stopped=True,
                            )
                        )
                        return True
        return False

    # -- recording ---------------------------------------------------------------------------

    def start_recording(
        self,
        conf_id: str,
        directory: Path,
        *,
        formats: tuple[str, ...] = ("wav",),
        rate: int = 16000,
        talkers: bool = True,
        fsync: bool = False,
        on_index: Callable[[RecordingIndex], None] | None = None,
    ) -> str:
        """Record the mix (and each talker's segments) to ``directory``; returns the recording id.

        ``on_index`` gets a :class:`RecordingIndex` for each file when it opens (``end_ts``
        None) and again when it is finished, ready for the store's ``recordings`` table.
        """
        conf = self._conference(conf_id)
        if conf.recording is not None:
            raise MediaStateError(f"conference {conf_id!r} is already recording")
        unknown = [f for f in formats if f not in SINKS]
        if unknown or not formats:
            raise ValueError(f"recording formats {formats}: choose from {', '.join(SINKS)}")
        if rate not in RATES:
            raise ValueError(f"recording rate {rate}: one of {RATES}")
        if self._loop is None:
            raise MediaStateError("start the engine before recording")
        conf.recording = RecordingSession(
            conf_id,
            Path(directory),
            writer=self._writer,
            loop=self._loop,
            emit=self._emit,
            formats=formats,
            rate=rate,
            talkers=talkers,
            fsync=fsync,
            on_index=on_index,
            start_ts=self.media_time(),
        )
        for leg in conf.legs.values():
            if self._is_talking(leg):
                conf.recording.talker_started(leg.id, self.media_time())
        return conf.recording.id

    async def stop_recording(self, conf_id: str) -> list[RecordingIndex]:
        """Stop and wait (bounded) until every file is closed; returns their index records."""
        conf = self._conference(conf_id)
        session = conf.recording
        if session is None:
            raise MediaStateError(f"conference {conf_id!r} is not recording")
        conf.recording = None
        session.stop(self.media_time())
        async with asyncio.timeout(RECORDING_CLOSE_TIMEOUT):
            return await asyncio.shield(session.done)

    # -- state -------------------------------------------------------------------------------

    @staticmethod
    def _is_talking(leg: Leg) -> bool:
        return leg.group.is_talking(leg) if leg.group else leg.talk_state[0]

    def _stats(self, leg: Leg) -> LegStats:
        group = leg.group
        talking = self._is_talking(leg)
        packets = group.sender_state(leg)[1] if group else leg.sent_packets
        return leg.snapshot(talking, packets, leg.dtmf_out.sent_events)

    def leg_stats(self, leg_id: str) -> LegStats:
        return self._stats(self._leg(leg_id))

    def conference_info(self, conf_id: str) -> ConferenceInfo:
        conf = self._conference(conf_id)
        return ConferenceInfo(
            conference=conf.id,
            rate=conf.rate,
            legs=tuple(conf.legs),
            talking=tuple(leg.id for leg in conf.legs.values() if self._is_talking(leg)),
            recording=conf.recording.id if conf.recording else None,
            announcements=len(conf.announcements)
            + sum(len(leg.announcements) for leg in conf.legs.values()),
        )

    def conferences(self) -> list[str]:
        return list(self._conferences)

    def stats(self) -> EngineStats:
        ticks = max(1, self._ticks - self.skipped_ticks)
        return EngineStats(
            ticks=self._ticks,
            late_ticks=self.late_ticks,
            skipped_ticks=self.skipped_ticks,
            max_lateness_ms=1000 * self.max_lateness,
            tick_ms_avg=1000 * self._busy_total / ticks,
            tick_ms_max=1000 * self._busy_max,
            tick_errors=self.tick_errors,
            conferences=len(self._conferences),
            legs=len(self._legs),
            recording_dropped_frames=self._writer.dropped_frames,
            recording_errors=self._writer.errors,
        )
