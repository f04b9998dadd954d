"""The conference service: policy (who joins, who is heard) over SIP legs and the media engine.

Each conference is a state machine (STYLE.md section 3, like ConfBridge's
``conf_state_*.c``): a table of handlers per state for the events join, leave, end and
timeout; an event a state has no handler for goes to one ``invalid_event``. Participants
walk dialing -> ringing -> (lobby) -> joined -> left, or end failed. Every transition is
logged and published on the bus.

A participant's SIP leg binds its RTP/RTCP socket pair before the offer/answer; once the
call is answered the sockets go to the media engine as a leg whose id is the participant
id. Until then every failure path closes them here.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import itertools
import logging
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from devices.tasks import TaskOwner
from hub.bus import EventBus
from hub.conferences.config import ConferenceProfile
from hub.conferences.model import (
    PARTICIPANT_TRANSITIONS,
    Conference,
    ConferenceEnded,
    ConferenceError,
    ConferenceEvent,
    ConferenceFull,
    ConferenceLocked,
    ConferenceNotFound,
    ConferenceState,
    ConferenceStateError,
    InvalidConferenceRequest,
    InvalidTarget,
    NoCommonMedia,
    Participant,
    ParticipantNotFound,
    ParticipantRole,
    ParticipantState,
)
from hub.config import SiteConfig
from hub.events import (
    ConferenceControl,
    ConferenceParticipantChanged,
    ConferenceRecording,
    ConferenceStateChanged,
    ConferenceTalking,
    SubsystemState,
)
from hub.snmp.rows import ConferenceRow, LegRow
from hub.store import RecordingRow, Store
from hub.telephony import Telephony
from media.announce import Tone
from media.codecs import codec_info
from media.engine import MediaEngine
from media.errors import CodecError, MediaError, MediaStateError, UnknownConference, UnknownLeg
from media.events import (
    DtmfReceived,
    MediaEvent,
    MediaResumed,
    MediaTimeout,
    RecordingFailed,
    RecordingIndex,
    TalkingStarted,
    TalkingStopped,
)
from media.leg import LegSpec, LegStats
from media.transport import bind_rtp_pair
from sip.calls import (
    CallAnswered,
    CallAttemptFailed,
    CallEnded,
    CallFailed,
    CallLeg,
    CallRinging,
    CallTrying,
    MediaChanged,
    NegotiatedMedia,
)
from sip.calls import DtmfReceived as SipDtmf
from sip.dialplan import DialplanError, parse_address
from sip.errors import SipError
from sip.offer_answer import (
    G722,
    OPUS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Codec,
    MediaCapabilities,
)
from sip.offer_answer import answer as sdp_answer

logger = logging.getLogger(__name__)

SYSTEM = "system"
JOIN_TONE = Tone((1000.0,), on_ms=150, level_dbfs=-20.0, duration_ms=150)
ENDED_KEPT = 200  # ended conferences still answered by get() (the API shows why they ended)
_SDP_CODECS: dict[str, Codec] = {"PCMU": PCMU, "PCMA": PCMA, "G722": G722, "opus": OPUS}
_PTIMES = (10, 20, 30, 40, 60)

# bad (or lost) input summed over every leg the service ran, for Prometheus
MEDIA_COUNTERS = (
    "packets",
    "lost",
    "late",
    "concealed",
    "malformed",
    "wrong_source",
    "unknown_payload_type",
    "flood_dropped",
)
# counted per RTP source (RFC 3550): they start again when the source changes, so the
# totals carry what a leg had before (as last seen by a scrape or at its removal)
_PER_SOURCE = ("packets", "lost")

DtmfListener = Callable[[Participant, str], None]
Handler = Callable[["ConferenceService", Conference, ConferenceEvent, str, str], None]


@dataclass(eq=False)
class _Media:
    """What the service holds for one participant besides the public dataclass."""

    rtp: socket.socket | None
    rtcp: socket.socket | None
    call: CallLeg | None
    actor: str
    engine_conf: str | None = None  # the engine conference its media leg is in
    starting: bool = False  # the engine is adopting the sockets right now
    task: asyncio.Task[None] | None = None
    final: LegStats | None = None  # the leg's figures when the engine let it go

    def close_sockets(self) -> None:
        """Close sockets the engine has not adopted (closing twice is harmless)."""
        for sock in (self.rtp, self.rtcp):
            if sock is not None:
                sock.close()
        self.rtp = self.rtcp = None


# -- the conference state machine: one handler per (state, event) ---------------------------


def _to_counted(service: ConferenceService, conf: Conference, reason: str, actor: str) -> None:
    count = conf.counted()
    new = (
        ConferenceState.EMPTY
        if count == 0
        else ConferenceState.SINGLE
        if count == 1
        else ConferenceState.MULTI
    )
    service._set_state(conf, new, reason=reason, actor=actor)


def _join(
    service: ConferenceService, conf: Conference, event: ConferenceEvent, reason: str, actor: str
) -> None:
    _to_counted(service, conf, reason, actor)


def _leave(
    service: ConferenceService, conf: Conference, event: ConferenceEvent, reason: str, actor: str
) -> None:
    old = conf.state
    _to_counted(service, conf, reason, actor)
    if conf.standing:
        return
    profile = service.profile_of(conf)
    if conf.state is ConferenceState.EMPTY and profile.end_when_empty:
        service._spawn_end(conf, ConferenceEvent.END, "empty", SYSTEM)
    elif conf.kind == "call" and old is ConferenceState.MULTI and conf.state is not old:
        # a two-party call bridged by the hub ends when one side hangs up
        service._spawn_end(conf, ConferenceEvent.END, "hangup", SYSTEM)


def _end(
    service: ConferenceService, conf: Conference, event: ConferenceEvent, reason: str, actor: str
) -> None:
    service._set_state(conf, ConferenceState.ENDED, reason=reason, actor=actor)


def _empty_leave(
    service: ConferenceService, conf: Conference, event: ConferenceEvent, reason: str, actor: str
) -> None:
    invalid_event(service, conf, event, reason, actor)


def invalid_event(
    service: ConferenceService, conf: Conference, event: ConferenceEvent, reason: str, actor: str
) -> None:
    """An event the conference's state does not take: logged and counted, nothing changes."""
    service.invalid_events += 1
    logger.warning(
        "conference %s: event %s is invalid in state %s (%s)",
        conf.id,
        event.value,
        conf.state.value,
        reason or "no reason",
    )


STATE_HANDLERS: dict[ConferenceState, dict[ConferenceEvent, Handler]] = {
    ConferenceState.EMPTY: {
        ConferenceEvent.JOIN: _join,
        ConferenceEvent.LEAVE: _empty_leave,
        ConferenceEvent.END: _end,
        ConferenceEvent.TIMEOUT: _end,
    },
    ConferenceState.SINGLE: {
        ConferenceEvent.JOIN: _join,
        ConferenceEvent.LEAVE: _leave,
        ConferenceEvent.END: _end,
        ConferenceEvent.TIMEOUT: _end,
    },
    ConferenceState.MULTI: {
        ConferenceEvent.JOIN: _join,
        ConferenceEvent.LEAVE: _leave,
        ConferenceEvent.END: _end,
        ConferenceEvent.TIMEOUT: _end,
    },
    ConferenceState.ENDED: {},
}


class ConferenceService:
    """Creates, runs and ends conferences; owns the media engine and the participants' media."""

    def __init__(
        self,
        site: SiteConfig,
        bus: EventBus,
        store: Store,
        telephony: Telephony,
        *,
        engine: MediaEngine | None = None,
    ) -> None:
        self.site = site
        self.config = site.conferences
        self.bus = bus
        self.store = store
        self.telephony = telephony
        self._own_engine = engine is None
        self.engine = engine or MediaEngine()
        self.dtmf_listeners: list[DtmfListener] = []
        host = self.config.rtp_host or site.sip.host
        self.rtp_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        self.recordings_dir = self.config.recordings_dir or site.hub.data_dir / "recordings"
        self.invalid_events = 0
        self.counters = {"created": 0, "ended": 0, "joined": 0, "failed": 0, "media_timeouts": 0}
        # MEDIA_COUNTERS of the legs already removed (live legs are added when asked)
        self._media_done = dict.fromkeys(MEDIA_COUNTERS, 0)
        # per live leg and _PER_SOURCE counter: (ssrc changes, last value, carried)
        self._carried: dict[str, dict[str, tuple[int, int, int]]] = {}
        self._conferences: dict[str, Conference] = {}
        self._ended: OrderedDict[str, Conference] = OrderedDict()
        self._participants: dict[str, Participant] = {}
        self._media: dict[str, _Media] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._ending: dict[Conference, asyncio.Task[None]] = {}
        self._snmp_index: dict[str, int] = {}
        self._snmp_next = itertools.count(1)
        self._pids = itertools.count(1)
        self._tasks = TaskOwner(logger)
        self._unsubscribe: Callable[[], None] | None = None
        self._running = False
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._running:
            return
        await self.engine.start()
        await asyncio.to_thread(self.recordings_dir.mkdir, parents=True, exist_ok=True)
        self._unsubscribe = self.engine.subscribe(self._media_event)
        self._running = True
        self._stopping = False
        for room in self.config.rooms:
            self._create_room(room.id)
        logger.info(
            "conferences up: RTP on %s, %d standing rooms", self.rtp_host, len(self.config.rooms)
        )

    async def stop(self) -> None:
        """End every conference (everyone hung up), then stop the engine if it is ours."""
        if not self._running:
            return
        self._stopping = True
        for conf in builtins.list(self._conferences.values()):
            with contextlib.suppress(ConferenceError):
                await self.end(conf.id, actor=SYSTEM, reason="shutdown")
        if self._ending:
            await asyncio.gather(*self._ending.values(), return_exceptions=True)
        await self._tasks.close()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._own_engine:
            await self.engine.close()
        self._running = False

    # -- conferences -----------------------------------------------------------------------

    def profile_of(self, conf: Conference) -> ConferenceProfile:
        return self.config.profiles.get(conf.profile) or self.config.profiles["default"]

    def create(
        self,
        *,
        name: str,
        actor: str,
        pin: str | None = None,
        profile: str = "default",
        max_duration: float | None = None,
        record: bool | None = None,
        kind: str = "conference",
        conf_id: str | None = None,
    ) -> Conference:
        """A new, empty conference (recording at once when asked or the profile says so)."""
        if not self._running:
            raise ConferenceStateError("the conference service is not running")
        if profile not in self.config.profiles:
            known = ", ".join(sorted(self.config.profiles))
            raise InvalidConferenceRequest(f"unknown profile {profile!r} (one of {known})")
        if kind not in ("conference", "call"):
            raise InvalidConferenceRequest(f"kind {kind!r}: 'conference' or 'call'")
        if pin is not None and (not pin or not all(c in "0123456789*#" for c in pin)):
            raise InvalidConferenceRequest("a PIN is digits (0-9, *, #)")
        if max_duration is not None and max_duration < 0:
            raise InvalidConferenceRequest("max_duration must not be negative")
        if not name.strip():
            raise InvalidConferenceRequest("a conference needs a name")
        if conf_id is not None:
            if conf_id in self._conferences:
                raise ConferenceStateError(f"conference {conf_id!r} exists")
        else:
            conf_id = f"conf-{secrets.token_hex(4)}"
            while conf_id in self._conferences or conf_id in self._ended:
                conf_id = f"conf-{secrets.token_hex(4)}"
        settings = self.config.profiles[profile]
        conf = Conference(
            id=conf_id,
            name=name,
            kind=kind,
            pin=pin,
            profile=profile,
            created_ts=time.time(),
            max_duration=settings.max_duration if max_duration is None else max_duration,
        )
        return self._open(conf, actor, record)

    def _create_room(self, room_id: str) -> Conference:
        room = next(r for r in self.config.rooms if r.id == room_id)
        conf = Conference(
            id=room.id,
            name=room.name,
            pin=room.pin,
            moderator_pin=room.moderator_pin,
            number=room.number,
            profile=room.profile,
            created_ts=time.time(),
            max_duration=self.config.profiles[room.profile].max_duration,
            standing=True,
        )
        return self._open(conf, SYSTEM, None)

    def _open(self, conf: Conference, actor: str, record: bool | None) -> Conference:
        self.engine.create_conference(conf.id)
        self._ended.pop(conf.id, None)
        self._conferences[conf.id] = conf
        self._snmp_index[conf.id] = next(self._snmp_next)
        self.counters["created"] += 1
        logger.info(
            "conference %s (%s) created by %s, profile %s", conf.id, conf.name, actor, conf.profile
        )
        self._publish_state(conf, "created", actor)
        if conf.max_duration > 0:
            self._timers[conf.id] = asyncio.get_running_loop().call_later(
                conf.max_duration, self._max_duration, conf
            )
        wanted = self.profile_of(conf).record if record is None else record
        if wanted:
            try:
                self._record(conf, actor)
            except (MediaError, OSError, ValueError) as err:
                logger.error("conference %s: recording did not start: %s", conf.id, err)
        return conf

    def get(self, conf_id: str) -> Conference:
        """A live conference, or one that ended recently (state ended)."""
        conf = self._conferences.get(conf_id) or self._ended.get(conf_id)
        if conf is None:
            raise ConferenceNotFound(f"no conference {conf_id!r}")
        return conf

    def list(self) -> list[Conference]:
        """The live conferences, oldest first."""
        return sorted(self._conferences.values(), key=lambda c: c.created_ts)

    def _live(self, conf_id: str) -> Conference:
        conf = self.get(conf_id)
        if conf.ended or conf in self._ending:
            raise ConferenceEnded(f"conference {conf_id!r} has ended")
        return conf

    async def end(self, conf_id: str, *, actor: str, reason: str = "ended") -> None:
        """End the conference: everyone is hung up, its recording closed."""
        conf = self._live(conf_id)
        await self._finish(conf, ConferenceEvent.END, reason, actor)

    def _max_duration(self, conf: Conference) -> None:
        self._timers.pop(conf.id, None)
        if not conf.ended and conf not in self._ending:
            logger.info(
                "conference %s reached its max duration (%.0f s)", conf.id, conf.max_duration
            )
            self._spawn_end(conf, ConferenceEvent.TIMEOUT, "max-duration", SYSTEM)

    def _spawn_end(self, conf: Conference, event: ConferenceEvent, reason: str, actor: str) -> None:
        if conf not in self._ending and not conf.ended:
            self._tasks.spawn(self._finish(conf, event, reason, actor), f"end-{conf.id}")

    async def _finish(
        self, conf: Conference, event: ConferenceEvent, reason: str, actor: str
    ) -> None:
        """Tear the conference down once; a second caller waits for the first."""
        task = self._ending.get(conf)
        if task is None:
            task = asyncio.ensure_future(self._teardown(conf, event, reason, actor))
            self._ending[conf] = task
            task.add_done_callback(lambda _: self._ending.pop(conf, None))
        await asyncio.shield(task)

    async def _teardown(
        self, conf: Conference, event: ConferenceEvent, reason: str, actor: str
    ) -> None:
        timer = self._timers.pop(conf.id, None)
        if timer is not None:
            timer.cancel()
        conf.reason = reason
        gone = [p for p in conf.participants.values() if p.active]
        await asyncio.gather(
            *(self._drop(p, reason="conference-ended", actor=actor, quiet=True) for p in gone),
            return_exceptions=True,
        )
        try:
            await self.engine.end_conference(conf.id)
        except UnknownConference:
            pass
        except (MediaError, TimeoutError) as err:
            logger.error("conference %s: media did not end cleanly: %s", conf.id, err)
        conf.recording = None
        self.fire(conf, event, reason=reason, actor=actor)
        conf.ended_ts = time.time()
        self._conferences.pop(conf.id, None)
        self._snmp_index.pop(conf.id, None)
        self._ended[conf.id] = conf
        while len(self._ended) > ENDED_KEPT:
            _, old = self._ended.popitem(last=False)
            for pid in old.participants:
                self._participants.pop(pid, None)
        self.counters["ended"] += 1
        if conf.standing and not self._stopping:
            self._create_room(conf.id)  # a standing room is always there: it starts afresh

    # -- the state machine ---------------------------------------------------------------

    def fire(
        self, conf: Conference, event: ConferenceEvent, *, reason: str = "", actor: str = SYSTEM
    ) -> None:
        """Run ``event`` through the handler of the conference's state (or invalid_event)."""
        handler = STATE_HANDLERS[conf.state].get(event, invalid_event)
        handler(self, conf, event, reason, actor)

    def _set_state(
        self, conf: Conference, new: ConferenceState, *, reason: str, actor: str
    ) -> None:
        old = conf.state
        if new is old:
            return
        conf.state = new
        logger.info("conference %s: %s -> %s (%s)", conf.id, old.value, new.value, reason)
        self._publish_state(conf, reason, actor)

    def _publish_state(self, conf: Conference, reason: str, actor: str) -> None:
        self.bus.publish(
            ConferenceStateChanged(
                conference=conf.id,
                state=conf.state.value,
                name=conf.name,
                conference_kind=conf.kind,
                reason=reason,
                actor=actor,
            )
        )

    def _set_participant(
        self,
        p: Participant,
        new: ParticipantState,
        *,
        reason: str = "",
        actor: str = SYSTEM,
        quiet: bool = False,
    ) -> None:
        """Move a participant on (legal moves only), publish it, and tell the conference."""
        old = p.state
        if new is not old and new not in PARTICIPANT_TRANSITIONS[old]:
            logger.warning("participant %s: %s -> %s refused", p.id, old.value, new.value)
            return
        was_counted = p.counted
        p.state = new
        if reason:
            p.reason = reason
        now = time.time()
        if new is ParticipantState.JOINED:
            p.joined_ts = now
            self.counters["joined"] += 1
        elif new in (ParticipantState.LEFT, ParticipantState.FAILED):
            p.left_ts = now
            p.talking = False
            if new is ParticipantState.FAILED:
                self.counters["failed"] += 1
        if new is not ParticipantState.DIALING and new is not ParticipantState.RINGING:
            p.settled.set()
        logger.info(
            "participant %s of %s (%s): %s -> %s%s",
            p.id,
            p.conference,
            p.target,
            old.value,
            new.value,
            f" ({reason})" if reason else "",
        )
        self._publish_participant(p, actor)
        conf = self._conferences.get(p.conference)
        if conf is None or quiet:
            return
        if p.counted and not was_counted:
            self.fire(conf, ConferenceEvent.JOIN, reason=f"{p.id} joined", actor=actor)
        elif was_counted and not p.counted:
            self.fire(conf, ConferenceEvent.LEAVE, reason=f"{p.id} {reason or 'left'}", actor=actor)

    def _publish_participant(self, p: Participant, actor: str) -> None:
        self.bus.publish(
            ConferenceParticipantChanged(
                conference=p.conference,
                participant=p.id,
                state=p.state.value,
                target=p.target,
                endpoint=p.endpoint,
                role=p.role.value,
                route=p.route,
                trunk=p.trunk,
                status=p.status,
                reason=p.reason,
                actor=actor,
            )
        )

    def _control(
        self,
        conf: Conference,
        action: str,
        actor: str,
        participant: str | None = None,
        **detail: Any,
    ) -> None:
        logger.info(
            "conference %s: %s%s by %s",
            conf.id,
            action,
            f" {participant}" if participant else "",
            actor,
        )
        self.bus.publish(
            ConferenceControl(
                conference=conf.id,
                action=action,
                participant=participant,
                actor=actor,
                detail=detail,
            )
        )

    # -- participants: dialling out --------------------------------------------------------

    def _new_participant(
        self, conf: Conference, target: str, role: ParticipantRole, direction: str
    ) -> Participant:
        profile = self.profile_of(conf)
        if len(conf.active_participants()) >= profile.max_participants:
            raise ConferenceFull(
                f"conference {conf.id!r} has {profile.max_participants} participants"
            )
        pid = f"p-{next(self._pids)}"
        while pid in self._participants:
            pid = f"p-{next(self._pids)}"
        return Participant(
            id=pid, conference=conf.id, target=target, role=role, direction=direction
        )

    def _caps(self, conf: Conference, port: int) -> MediaCapabilities:
        codecs = tuple(_SDP_CODECS[name] for name in self.profile_of(conf).codecs)
        return MediaCapabilities(
            address=self.rtp_host, audio_port=port, audio_codecs=(*codecs, TELEPHONE_EVENT)
        )

    def _check_offer(self, conf: Conference, leg: CallLeg) -> None:
        """Raise :class:`NoCommonMedia` unless the leg's offer has an audio stream we can
        take with the profile's codecs: such a call is refused (488), never answered."""
        offer = leg.remote_sdp
        if offer is None:
            raise NoCommonMedia(f"leg {leg.id} brought no SDP offer")
        # the port is a placeholder: only whether a stream survives matters here
        trial = sdp_answer(offer, self._caps(conf, 9))
        if any(m.media == "audio" and m.port for m in trial.media):
            return
        offered: set[str] = set()
        for stream in offer.media:
            for pt in stream.payload_types if stream.media == "audio" else ():
                rtpmap = stream.rtpmap(pt)
                offered.add(rtpmap.encoding if rtpmap else f"payload type {pt}")
        raise NoCommonMedia(
            f"no common audio codec: offered {', '.join(sorted(offered)) or 'none'}; "
            f"profile {conf.profile!r} takes {', '.join(self.profile_of(conf).codecs)}"
        )

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        try:
            return bind_rtp_pair(self.rtp_host)
        except OSError as err:
            raise ConferenceStateError(f"no RTP ports on {self.rtp_host}: {err}") from err

    async def dial(
        self,
        conf_id: str,
        target: str,
        *,
        actor: str,
        role: ParticipantRole = ParticipantRole.PARTICIPANT,
        ring_timeout: float | None = None,
        override_lock: bool = False,
    ) -> Participant:
        """Call ``target`` (a directory endpoint id, its routes in order, or an address)
        into the conference. Returns at once (dialing); ``p.settled`` is set once it has
        joined or failed. ``ConferenceLocked`` unless ``override_lock`` (a moderator)."""
        conf = self._live(conf_id)
        if conf.locked and not override_lock:
            raise ConferenceLocked(f"conference {conf_id!r} is locked")
        if ring_timeout is not None and ring_timeout <= 0:
            raise InvalidConferenceRequest("ring_timeout must be positive")
        if not self.telephony.enabled:
            raise ConferenceStateError("SIP is not configured on this hub")
        calls = self.telephony.calls
        target = target.strip()
        try:
            if not target:
                raise DialplanError(target, "empty target")
            calls.candidates(target)
        except (DialplanError, SipError, ValueError) as err:
            raise InvalidTarget(target, getattr(err, "reason", None) or str(err)) from None
        p = self._new_participant(conf, target, ParticipantRole(role), "outbound")
        if ":" not in target and calls.dialplan is not None and target in calls.dialplan.endpoints:
            p.endpoint = target
        rtp, rtcp = self._bind()
        media = _Media(rtp, rtcp, None, actor)
        try:
            leg = await calls.originate(
                target, self._caps(conf, rtp.getsockname()[1]), ring_timeout=ring_timeout
            )
        except (DialplanError, SipError, ValueError) as err:
            media.close_sockets()
            raise InvalidTarget(target, getattr(err, "reason", None) or str(err)) from None
        except BaseException:
            media.close_sockets()
            raise
        media.call = leg
        p.leg = leg.id
        conf.participants[p.id] = p
        self._participants[p.id] = p
        self._media[p.id] = media
        logger.info(
            "participant %s: %s dials %s into %s (%s)", p.id, actor, target, conf.id, leg.id
        )
        self._publish_participant(p, actor)
        media.task = self._tasks.spawn(self._follow(p, media), f"participant-{p.id}")
        return p

    async def _follow(self, p: Participant, media: _Media) -> None:
        """Track the SIP leg: progress, answer (media into the engine), failure, hang-up."""
        leg = media.call
        assert leg is not None
        try:
            async for event in leg.events():
                if not p.active and not isinstance(event, CallFailed | CallEnded):
                    continue
                if isinstance(event, CallTrying):
                    p.route, p.trunk = event.route, event.trunk
                    if p.state is ParticipantState.RINGING:
                        self._set_participant(p, ParticipantState.DIALING, actor=media.actor)
                    else:
                        self._publish_participant(p, media.actor)
                elif isinstance(event, CallRinging):
                    self._set_participant(p, ParticipantState.RINGING, actor=media.actor)
                elif isinstance(event, CallAttemptFailed):
                    attempt = {
                        "route": event.route,
                        "trunk": event.trunk,
                        "status": event.status,
                        "reason": event.reason,
                    }
                    p.attempts.append(attempt)
                    logger.info("participant %s: attempt failed %s", p.id, attempt)
                elif isinstance(event, CallAnswered):
                    p.route, p.trunk = event.route, event.trunk
                    await self._answered(p, media, event.media, lobby=False)
                elif isinstance(event, CallFailed):
                    p.status = event.status
                    await self._drop(
                        p,
                        reason=event.reason,
                        actor=media.actor,
                        state=ParticipantState.FAILED,
                        hangup=False,
                    )
                elif isinstance(event, CallEnded):
                    if p.state in (ParticipantState.DIALING, ParticipantState.RINGING):
                        p.status = event.status
                        state = ParticipantState.FAILED
                    else:
                        state = ParticipantState.LEFT
                    await self._drop(p, reason=event.cause, actor=SYSTEM, state=state, hangup=False)
                elif isinstance(event, SipDtmf):
                    self._dtmf(p, event.digit)
                elif isinstance(event, MediaChanged) and event.media is not None:
                    self._media_changed(p, event.media)
        finally:
            if p.active:  # the task was cancelled (stop) or crashed: nothing is left behind
                await self._drop(p, reason="internal-error", actor=SYSTEM, state=None)
            media.close_sockets()

    async def _answered(
        self, p: Participant, media: _Media, negotiated: NegotiatedMedia | None, *, lobby: bool
    ) -> None:
        """The call is up: hand its sockets to the engine and put it in (or beside) the mix."""
        conf = self._conferences.get(p.conference)
        if conf is None or conf in self._ending or conf.participants.get(p.id) is not p:
            await self._drop(p, reason="conference-ended", actor=SYSTEM)
            return
        if negotiated is None:
            p.status = 488
            await self._drop(p, reason="no common media", actor=SYSTEM)
            return
        try:
            info = codec_info(negotiated.codec)
        except CodecError:
            p.status = 488
            await self._drop(p, reason=f"unsupported codec {negotiated.codec}", actor=SYSTEM)
            return
        engine_conf = conf.id
        if lobby:
            engine_conf = f"lobby-{p.id}"
            self.engine.create_conference(engine_conf)
        spec = LegSpec(
            leg_id=p.id,
            codec=info.name,
            payload_type=negotiated.payload_type,
            ptime=negotiated.ptime if negotiated.ptime in _PTIMES else 20,
            remote=(negotiated.remote_host, negotiated.remote_port),
            sock=media.rtp,
            rtcp_sock=media.rtcp,
            dtmf_payload_type=negotiated.dtmf_payload_type,
            media_timeout=self.profile_of(conf).media_timeout,
            latch=self.site.conferences.rtp_latch,
        )
        media.starting = True
        try:
            await self.engine.add_leg(engine_conf, spec)
        except BaseException as err:
            media.starting = False
            media.close_sockets()
            if lobby:
                with contextlib.suppress(UnknownConference):
                    await self.engine.end_conference(engine_conf)
            if not isinstance(err, MediaError | OSError | ValueError):
                raise
            logger.error("participant %s: media did not start: %s", p.id, err)
            p.status = 500
            await self._drop(p, reason=f"media failed: {err}", actor=SYSTEM)
            return
        media.starting = False
        media.rtp = media.rtcp = None  # the engine owns (and closes) them now
        media.engine_conf = engine_conf
        if not p.active:  # dropped (kicked, conference ended) while the media was starting
            media.engine_conf = None
            await self._remove_leg(p.id, media)
            if lobby:
                with contextlib.suppress(UnknownConference):
                    await self.engine.end_conference(engine_conf)
            return
        p.codec = info.name
        self._apply_flags(p)
        if lobby:
            self._set_participant(p, ParticipantState.LOBBY, actor=media.actor)
            return
        self._set_participant(p, ParticipantState.JOINED, actor=media.actor)
        self._join_tone(conf, p)

    def _apply_flags(self, p: Participant) -> None:
        self.engine.set_mute(p.id, p.muted)
        self.engine.set_deafen(p.id, p.deafened)
        self.engine.set_listen_only(p.id, p.role is ParticipantRole.MONITOR)

    def _join_tone(self, conf: Conference, p: Participant) -> None:
        if p.role is ParticipantRole.MONITOR or not self.profile_of(conf).join_tone:
            return
        with contextlib.suppress(MediaError):
            self.engine.play_tone(conf.id, JOIN_TONE)

    def _media_changed(self, p: Participant, negotiated: NegotiatedMedia) -> None:
        media = self._media.get(p.id)
        if media is None or media.engine_conf is None:
            return
        with contextlib.suppress(UnknownLeg):
            self.engine.set_remote(p.id, (negotiated.remote_host, negotiated.remote_port))

    # -- participants: answering -----------------------------------------------------------

    async def join_leg(
        self,
        conf_id: str,
        leg: CallLeg,
        *,
        actor: str,
        role: ParticipantRole = ParticipantRole.PARTICIPANT,
        lobby: bool = False,
    ) -> Participant:
        """Answer an inbound leg into the conference (or into its own lobby until
        :meth:`admit`). From here on the service reads the leg's events."""
        conf = self._live(conf_id)
        role = ParticipantRole(role)
        if conf.locked and not lobby and role is not ParticipantRole.MODERATOR:
            raise ConferenceLocked(f"conference {conf_id!r} is locked")
        self._check_offer(conf, leg)
        p = self._new_participant(conf, leg.caller or leg.remote, role, "inbound")
        p.leg, p.trunk = leg.id, leg.trunk
        rtp, rtcp = self._bind()
        media = _Media(rtp, rtcp, leg, actor)
        try:
            negotiated = leg.answer(self._caps(conf, rtp.getsockname()[1]))
        except SipError as err:
            media.close_sockets()
            raise ConferenceStateError(f"leg {leg.id} cannot be answered: {err}") from err
        except BaseException:
            media.close_sockets()
            raise
        conf.participants[p.id] = p
        self._participants[p.id] = p
        self._media[p.id] = media
        logger.info("participant %s: %s answered into %s (%s)", p.id, leg.remote, conf.id, leg.id)
        await self._answered(p, media, negotiated, lobby=lobby)
        if p.active:
            media.task = self._tasks.spawn(self._follow(p, media), f"participant-{p.id}")
        else:
            media.close_sockets()
        return p

    async def admit(self, participant_id: str) -> None:
        """Lobby -> joined: the leg moves from its lobby into the conference's mix."""
        p = self._participant(participant_id)
        if p.state is not ParticipantState.LOBBY:
            raise ConferenceStateError(f"participant {p.id} is {p.state.value}, not in the lobby")
        conf = self._live(p.conference)
        media = self._media[p.id]
        lobby = media.engine_conf
        await self.engine.move_leg(p.id, conf.id)
        media.engine_conf = conf.id
        if lobby is not None and lobby != conf.id:
            with contextlib.suppress(UnknownConference):
                await self.engine.end_conference(lobby)
        self._set_participant(p, ParticipantState.JOINED, actor=media.actor)
        self._join_tone(conf, p)

    # -- participants: leaving -------------------------------------------------------------

    async def remove(
        self, conf_id: str, participant_id: str, *, actor: str, reason: str = "kicked"
    ) -> None:
        """Take a participant out (强拆): hang up its call, remove its media."""
        p = self.participant(conf_id, participant_id)
        if not p.active:
            raise ConferenceStateError(f"participant {p.id} has already {p.state.value}")
        self._control(self.get(conf_id), "kick", actor, p.id, reason=reason)
        await self._drop(p, reason=reason, actor=actor)

    async def _drop(
        self,
        p: Participant,
        *,
        reason: str,
        actor: str,
        state: ParticipantState | None = ParticipantState.LEFT,
        hangup: bool = True,
        quiet: bool = False,
    ) -> None:
        """End a participant once: state, engine leg, sockets, and its call (idempotent)."""
        if not p.active:
            return
        if state is None:
            joined = p.state in (ParticipantState.JOINED, ParticipantState.LOBBY)
            state = ParticipantState.LEFT if joined else ParticipantState.FAILED
        elif state is ParticipantState.LEFT and p.state in (
            ParticipantState.DIALING,
            ParticipantState.RINGING,
        ):
            state = ParticipantState.FAILED if reason != "kicked" else ParticipantState.LEFT
        self._set_participant(p, state, reason=reason, actor=actor, quiet=quiet)
        media = self._media.get(p.id)
        if media is None:
            return
        if media.engine_conf is not None:
            engine_conf, media.engine_conf = media.engine_conf, None
            await self._remove_leg(p.id, media)
            if engine_conf != p.conference:
                with contextlib.suppress(UnknownConference):
                    await self.engine.end_conference(engine_conf)
        if not media.starting:  # else _answered closes or hands them over itself
            media.close_sockets()
        call = media.call
        if hangup and call is not None and not call.ended:
            try:
                await asyncio.wait_for(call.hangup(), 10.0)
            except (SipError, OSError, TimeoutError) as err:
                logger.warning("participant %s: hang-up of %s failed: %s", p.id, call.id, err)

    async def _remove_leg(self, pid: str, media: _Media) -> None:
        """Take the engine leg out, keeping its last figures (the view, the totals)."""
        try:
            stats = await self.engine.remove_leg(pid, reason="left")
        except UnknownLeg:
            return
        media.final = stats
        for name, value in self._counted(pid, stats).items():
            self._media_done[name] += value
        self._carried.pop(pid, None)

    def _counted(self, pid: str, stats: LegStats) -> dict[str, int]:
        """The leg's MEDIA_COUNTERS, the per-source ones made monotonic across sources."""
        figures = {name: int(getattr(stats, name)) for name in MEDIA_COUNTERS}
        marks = self._carried.setdefault(pid, {})
        for name in _PER_SOURCE:
            value = figures[name]
            epoch, last, carried = marks.get(name, (stats.ssrc_changes, 0, 0))
            if stats.ssrc_changes != epoch or value < last:
                carried += last  # a new source (or a restarted sequence) counts from 0
            marks[name] = (stats.ssrc_changes, value, carried)
            figures[name] = carried + value
        return figures

    # -- control ---------------------------------------------------------------------------

    def _participant(self, participant_id: str) -> Participant:
        p = self._participants.get(participant_id)
        if p is None:
            raise ParticipantNotFound(f"no participant {participant_id!r}")
        return p

    def participant(self, conf_id: str, participant_id: str) -> Participant:
        conf = self.get(conf_id)
        p = conf.participants.get(participant_id)
        if p is None:
            raise ParticipantNotFound(f"no participant {participant_id!r} in {conf_id!r}")
        return p

    def _controllable(self, conf_id: str, participant_id: str) -> Participant:
        self._live(conf_id)
        p = self.participant(conf_id, participant_id)
        if not p.active:
            raise ConferenceStateError(f"participant {p.id} has {p.state.value}")
        return p

    def _in_engine(self, p: Participant) -> bool:
        media = self._media.get(p.id)
        return media is not None and media.engine_conf is not None

    def set_mute(self, conf_id: str, participant_id: str, muted: bool, *, actor: str) -> None:
        p = self._controllable(conf_id, participant_id)
        p.muted = muted
        if self._in_engine(p):
            self.engine.set_mute(p.id, muted)
        self._control(self.get(conf_id), "mute" if muted else "unmute", actor, p.id)

    def set_deafen(self, conf_id: str, participant_id: str, deafened: bool, *, actor: str) -> None:
        p = self._controllable(conf_id, participant_id)
        p.deafened = deafened
        if self._in_engine(p):
            self.engine.set_deafen(p.id, deafened)
        self._control(self.get(conf_id), "deafen" if deafened else "undeafen", actor, p.id)

    def set_role(
        self, conf_id: str, participant_id: str, role: ParticipantRole, *, actor: str
    ) -> None:
        p = self._controllable(conf_id, participant_id)
        conf = self.get(conf_id)
        role = ParticipantRole(role)
        old, was_counted = p.role, p.counted
        p.role = role
        if self._in_engine(p):
            self.engine.set_listen_only(p.id, role is ParticipantRole.MONITOR)
        self._control(conf, "role", actor, p.id, old=old.value, new=role.value)
        self._publish_participant(p, actor)
        if p.counted and not was_counted:
            self.fire(conf, ConferenceEvent.JOIN, reason=f"{p.id} is {role.value}", actor=actor)
        elif was_counted and not p.counted:
            self.fire(conf, ConferenceEvent.LEAVE, reason=f"{p.id} is {role.value}", actor=actor)

    def lock(self, conf_id: str, locked: bool, *, actor: str) -> None:
        conf = self._live(conf_id)
        conf.locked = locked
        self._control(conf, "lock" if locked else "unlock", actor)

    def mute_all(self, conf_id: str, muted: bool, *, actor: str) -> None:
        """Mute (or unmute) everyone except moderators (and monitors, never heard anyway)."""
        conf = self._live(conf_id)
        changed = []
        for p in conf.active_participants():
            if p.role is not ParticipantRole.PARTICIPANT:
                continue
            p.muted = muted
            if self._in_engine(p):
                self.engine.set_mute(p.id, muted)
            changed.append(p.id)
        self._control(conf, "mute-all" if muted else "unmute-all", actor, participants=changed)

    async def announce(
        self,
        conf_id: str,
        *,
        actor: str,
        tone: Tone | None = None,
        file: Path | None = None,
        participant: str | None = None,
    ) -> int:
        """Play a tone or a WAV file to everyone (or one participant, also in its lobby)."""
        conf = self._live(conf_id)
        if (tone is None) == (file is None):
            raise InvalidConferenceRequest("announce a tone or a file (one of them)")
        engine_conf, leg = conf.id, None
        if participant is not None:
            p = self._controllable(conf_id, participant)
            media = self._media.get(p.id)
            if media is None or media.engine_conf is None:
                raise ConferenceStateError(f"participant {p.id} has no media yet ({p.state.value})")
            engine_conf, leg = media.engine_conf, p.id
        try:
            if tone is not None:
                ann = self.engine.play_tone(engine_conf, tone, leg=leg)
            else:
                assert file is not None
                ann = await self.engine.play_file(engine_conf, Path(file), leg=leg)
        except MediaError as err:
            raise InvalidConferenceRequest(str(err)) from err
        what = (
            {"tone": builtins.list(tone.frequencies), "duration_ms": tone.duration_ms}
            if tone is not None
            else {"file": str(file)}
        )
        self._control(conf, "announce", actor, participant, announcement=ann, **what)
        return ann

    # -- recording -------------------------------------------------------------------------

    def _record(self, conf: Conference, actor: str) -> str:
        if conf.recording is not None:
            raise ConferenceStateError(f"conference {conf.id!r} is already recording")
        profile = self.profile_of(conf)
        recording = self.engine.start_recording(
            conf.id,
            self.recordings_dir,
            formats=tuple(profile.record_formats),
            on_index=self._recording_index,
        )
        conf.recording = recording
        self._control(conf, "record", actor, recording=recording)
        return recording

    async def start_recording(self, conf_id: str, *, actor: str) -> str:
        conf = self._live(conf_id)
        await asyncio.to_thread(self.recordings_dir.mkdir, parents=True, exist_ok=True)
        try:
            return self._record(conf, actor)
        except MediaStateError as err:
            raise ConferenceStateError(str(err)) from err

    async def stop_recording(self, conf_id: str, *, actor: str) -> None:
        conf = self._live(conf_id)
        if conf.recording is None:
            raise ConferenceStateError(f"conference {conf_id!r} is not recording")
        recording, conf.recording = conf.recording, None
        try:
            await self.engine.stop_recording(conf.id)
        except TimeoutError:
            logger.error("conference %s: recording %s did not close in time", conf.id, recording)
        self._control(conf, "stop-record", actor, recording=recording)

    def _recording_index(self, index: RecordingIndex) -> None:
        """A recording file opened or finished: its row in the store, an event on the bus."""
        try:
            self.store.save_recording(
                RecordingRow(
                    id=index.id,
                    conference=index.conference,
                    kind=index.kind,
                    path=index.path,
                    codec=index.codec,
                    start_ts=index.start_ts,
                    end_ts=index.end_ts,
                    bytes=index.bytes,
                    talker=index.talker,
                    talkers=index.talkers,
                    segments=index.segments,
                )
            )
        except Exception:
            logger.exception("recording %s: the store did not take its row", index.id)
        self.bus.publish(
            ConferenceRecording(
                conference=index.conference,
                recording=index.id,
                path=index.path,
                recording_kind=index.kind,
                talker=index.talker,
                start_ts=index.start_ts,
                end_ts=index.end_ts,
            )
        )

    # -- engine events ---------------------------------------------------------------------

    def _media_event(self, event: MediaEvent) -> None:
        leg = getattr(event, "leg", None)
        p = self._participants.get(leg) if isinstance(leg, str) else None
        if isinstance(event, TalkingStarted | TalkingStopped):
            if p is None:
                return
            talking = isinstance(event, TalkingStarted)
            if p.talking == talking or (talking and p.state is not ParticipantState.JOINED):
                return
            if talking and p.role is ParticipantRole.MONITOR:
                return  # a silent monitor is never heard, so never shown talking
            p.talking = talking
            self.bus.publish(
                ConferenceTalking(conference=p.conference, participant=p.id, talking=talking)
            )
        elif isinstance(event, DtmfReceived):
            if p is not None and event.ended:
                self._dtmf(p, event.digit)
        elif isinstance(event, MediaTimeout):
            if p is not None and p.active:
                self.counters["media_timeouts"] += 1
                logger.warning("participant %s: no RTP for %.1f s", p.id, event.seconds)
                self._tasks.spawn(
                    self._drop(p, reason="media-timeout", actor=SYSTEM), f"timeout-{p.id}"
                )
        elif isinstance(event, MediaResumed):
            logger.info("participant %s: RTP resumed", leg)
        elif isinstance(event, RecordingFailed):
            logger.error(
                "conference %s: recording %s failed: %s", event.conference, event.path, event.reason
            )

    def _dtmf(self, p: Participant, digit: str) -> None:
        logger.debug("participant %s: DTMF %s", p.id, digit)
        for listener in builtins.list(self.dtmf_listeners):
            try:
                listener(p, digit)
            except Exception:
                logger.exception("DTMF listener failed")

    # -- views -----------------------------------------------------------------------------

    def media_stats(self, p: Participant) -> LegStats | None:
        """The participant's RTP figures: live from the engine, or as they were when its leg
        was removed; None while it never had media."""
        media = self._media.get(p.id)
        if media is None:
            return None
        if media.engine_conf is not None:
            with contextlib.suppress(UnknownLeg):
                return self.engine.leg_stats(p.id)
        return media.final

    def media_totals(self) -> dict[str, int]:
        """MEDIA_COUNTERS summed over every leg the service ran, live ones included."""
        totals = dict(self._media_done)
        for pid, media in builtins.list(self._media.items()):
            if media.engine_conf is None:
                continue
            try:
                stats = self.engine.leg_stats(pid)
            except UnknownLeg:
                continue
            for name, value in self._counted(pid, stats).items():
                totals[name] += value
        return totals

    def describe_media(self, p: Participant) -> dict[str, Any] | None:
        """What an operator needs to judge a participant's input (bad, lost, flooding)."""
        stats = self.media_stats(p)
        if stats is None:
            return None
        figures = asdict(stats)
        figures.pop("leg_id")
        figures["live"] = self._in_engine(p)
        return figures

    def describe_participant(self, p: Participant, *, media: bool = False) -> dict[str, Any]:
        """The JSON view of a participant; ``media`` adds its RTP figures (one engine
        snapshot each, so list views leave them out)."""
        view: dict[str, Any] = {
            "id": p.id,
            "conference": p.conference,
            "target": p.target,
            "endpoint": p.endpoint,
            "role": p.role.value,
            "state": p.state.value,
            "direction": p.direction,
            "route": p.route,
            "trunk": p.trunk,
            "attempts": [dict(a) for a in p.attempts],
            "leg": p.leg,
            "muted": p.muted,
            "deafened": p.deafened,
            "talking": p.talking,
            "joined_ts": p.joined_ts,
            "left_ts": p.left_ts,
            "reason": p.reason,
            "status": p.status,
            "codec": p.codec,
        }
        if media:
            view["media"] = self.describe_media(p)
        return view

    def describe(self, conf: Conference) -> dict[str, Any]:
        """The JSON view of a conference (PINs are never shown, only whether one is set)."""
        return {
            "id": conf.id,
            "name": conf.name,
            "kind": conf.kind,
            "state": conf.state.value,
            "profile": conf.profile,
            "number": conf.number,
            "has_pin": conf.pin is not None,
            "locked": conf.locked,
            "standing": conf.standing,
            "created_ts": conf.created_ts,
            "ended_ts": conf.ended_ts,
            "max_duration": conf.max_duration,
            "recording": conf.recording,
            "reason": conf.reason,
            "talking": [p.id for p in conf.participants.values() if p.talking],
            "participants": [self.describe_participant(p) for p in conf.participants.values()],
        }

    # -- health, SNMP, metrics -------------------------------------------------------------

    def health(self) -> tuple[SubsystemState, str]:
        """Down when the engine is not running, degraded when its tick falls behind."""
        if not self._running:
            return SubsystemState.DOWN, "conference service not running"
        stats = self.engine.stats()
        detail = (
            f"{len(self._conferences)} conferences, {stats.legs} legs; tick "
            f"{stats.tick_ms_avg:.2f} ms avg, {stats.late_ticks} late of {stats.ticks}, "
            f"max lateness {stats.max_lateness_ms:.0f} ms"
        )
        if stats.tick_errors:
            return SubsystemState.DEGRADED, f"{stats.tick_errors} tick errors; {detail}"
        if stats.ticks >= 100 and stats.late_ticks > stats.ticks // 20:
            return SubsystemState.DEGRADED, f"media tick late; {detail}"
        return SubsystemState.UP, detail

    def _bearer(self, p: Participant) -> str:
        """pstn, satellite, pdt, lte, roip or sip: from the trunk that carries the call."""
        trunk = next((t for t in self.site.trunks if t.id == p.trunk), None)
        if trunk is not None:
            kind = trunk.type.value
            return "sip" if kind == "sip-peer" else kind.removesuffix("-gateway")
        if p.endpoint is None and ":" in p.target:
            with contextlib.suppress(ValueError):
                return parse_address(p.target).scheme.value
        return "sip"

    def snmp_conferences(self) -> builtins.list[ConferenceRow]:
        return [
            ConferenceRow(
                index=self._snmp_index[conf.id],
                name=conf.name,
                state=conf.state.value,
                legs=len(conf.active_participants()),
                started=conf.created_ts,
            )
            for conf in self.list()
            if conf.id in self._snmp_index
        ]

    def snmp_legs(self) -> builtins.list[LegRow]:
        rows = []
        for conf in self.list():
            index = self._snmp_index.get(conf.id)
            if index is None:
                continue
            for number, p in enumerate(conf.participants.values(), start=1):
                if p.active:
                    rows.append(
                        LegRow(
                            conference=index,
                            index=number,
                            party=p.target,
                            bearer=self._bearer(p),
                            state=p.state.value,
                            muted=p.muted,
                            talking=p.talking,
                        )
                    )
        return rows


class DialInFigures(Protocol):
    """What the collector reads of the dial-in (``hub.conferences.dialin.DialIn``)."""

    counters: dict[str, int]

    def lockouts(self) -> dict[str, float]: ...


_MEDIA_HELP = {
    "packets": "RTP packets received from participants",
    "lost": "RTP packets participants' streams lost (sequence gaps)",
    "late": "RTP packets that came too late for the jitter buffer",
    "concealed": "Frames concealed for missing participant audio",
    "malformed": "Malformed RTP/RTCP datagrams received from participants",
    "wrong_source": "RTP datagrams from an address that is not the participant's",
    "unknown_payload_type": "RTP packets with a payload type the leg did not negotiate",
    "flood_dropped": "RTP packets dropped because a participant flooded",
}


class ConferenceCollector(Collector):
    """Prometheus figures: conferences by state, legs by state, the media tick, bad RTP
    input summed over every participant, and the dial-in outcomes and lockouts."""

    def __init__(self, service: ConferenceService, dialin: DialInFigures | None = None) -> None:
        self.service = service
        self.dialin = dialin

    def collect(self) -> Iterator[Metric]:
        service = self.service
        conferences = GaugeMetricFamily("cchub_conferences", "Live conferences", labels=["state"])
        by_state: dict[str, int] = {
            s.value: 0 for s in ConferenceState if s is not ConferenceState.ENDED
        }
        legs: dict[str, int] = {}
        for conf in service.list():
            by_state[conf.state.value] = by_state.get(conf.state.value, 0) + 1
            for p in conf.active_participants():
                legs[p.state.value] = legs.get(p.state.value, 0) + 1
        for state, count in sorted(by_state.items()):
            conferences.add_metric([state], count)
        yield conferences
        leg_family = GaugeMetricFamily(
            "cchub_conference_legs", "Active participants", labels=["state"]
        )
        for state, count in sorted(legs.items()):
            leg_family.add_metric([state], count)
        yield leg_family
        events = CounterMetricFamily(
            "cchub_conference_events", "Conference layer events", labels=["event"]
        )
        for name, value in service.counters.items():
            events.add_metric([name], value)
        yield events
        stats = service.engine.stats()
        late = CounterMetricFamily("cchub_media_late_ticks", "Media ticks later than half a period")
        late.add_metric([], stats.late_ticks)
        yield late
        skipped = CounterMetricFamily("cchub_media_skipped_ticks", "Media ticks skipped")
        skipped.add_metric([], stats.skipped_ticks)
        yield skipped
        tick = GaugeMetricFamily("cchub_media_tick_ms", "Media tick compute time", labels=["stat"])
        tick.add_metric(["avg"], stats.tick_ms_avg)
        tick.add_metric(["max"], stats.tick_ms_max)
        yield tick
        lateness = GaugeMetricFamily("cchub_media_max_lateness_ms", "Worst media tick lateness")
        lateness.add_metric([], stats.max_lateness_ms)
        yield lateness
        for name, value in service.media_totals().items():
            family = CounterMetricFamily(f"cchub_conference_rtp_{name}", _MEDIA_HELP[name])
            family.add_metric([], value)
            yield family
        timeouts = CounterMetricFamily(
            "cchub_conference_media_timeouts", "Participants dropped for sending no RTP"
        )
        timeouts.add_metric([], service.counters["media_timeouts"])
        yield timeouts
        if self.dialin is not None:
            yield from self._dialin(self.dialin)

    @staticmethod
    def _dialin(dialin: DialInFigures) -> Iterator[Metric]:
        outcomes = CounterMetricFamily(
            "cchub_dialin", "Dial-in calls (outcome calls: every INVITE)", labels=["outcome"]
        )
        for outcome, value in sorted(dialin.counters.items()):
            outcomes.add_metric([outcome], value)
        yield outcomes
        lockouts = GaugeMetricFamily(
            "cchub_dialin_lockouts", "Sources locked out for wrong PINs right now"
        )
        lockouts.add_metric([], len(dialin.lockouts()))
        yield lockouts
