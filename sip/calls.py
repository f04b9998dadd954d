"""Call legs: the SIP calls the rest of the hub works with.

``CallManager.originate`` dials an address (or a list of dial-plan ``Candidate`` s),
walking the candidates until one answers; ``leg.events()`` yields typed progress
(trying, ringing, early media, answered, failed with SIP status and reason). Incoming
INVITEs from registered users (digest) or from trunks (by source address) become legs
handed to ``on_incoming``, which rings, answers or rejects them. An established leg can
hold/resume (re-INVITE), send DTMF (SIP INFO, application/dtmf-relay) and hang up; its
``media`` is what the media engine needs (remote RTP address, payload type, ptime...).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sip.dialog import Dialog, DialogState
from sip.dialplan import Candidate, Dialplan
from sip.errors import SipError, SipParseError, SipStateError
from sip.hops import Address, is_ip
from sip.message import Header, SipResponse
from sip.offer_answer import (
    DEFAULT_AUDIO_CODECS,
    Codec,
    MediaCapabilities,
    accepted_codecs,
    answer,
    create_offer,
    hold_offer,
    resume_offer,
)
from sip.sdp import Direction, SessionDescription
from sip.uas import IncomingRequest
from sip.uri import SipUri, Uri

if TYPE_CHECKING:
    from sip.digest import Credentials
    from sip.registrar import Registrar
    from sip.stack import SipStack
    from sip.trunk import TrunkRuntime, TrunkSet
    from sip.uac import OutgoingInvite

logger = logging.getLogger(__name__)

DTMF_RELAY = "application/dtmf-relay"
DTMF_DIGITS = frozenset("0123456789*#ABCD")
_SIGNAL_RE = re.compile(r"^\s*signal\s*=\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)
_DURATION_RE = re.compile(r"^\s*duration\s*=\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)
_EVENT_QUEUE = 256
_ids = itertools.count(1)


class CallError(SipError):
    """A call operation failed; ``status`` is the SIP status (0: not a SIP answer)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}" if status else reason)
        self.status = status
        self.reason = reason


class LegState(enum.Enum):
    INCOMING = "incoming"  # an INVITE received, not yet rung or answered
    CALLING = "calling"  # an INVITE sent, no ringing yet
    RINGING = "ringing"
    EARLY = "early"  # early media (183 with SDP)
    ESTABLISHED = "established"
    ENDED = "ended"


_TRANSITIONS: dict[LegState, frozenset[LegState]] = {
    LegState.INCOMING: frozenset({LegState.RINGING, LegState.EARLY, LegState.ESTABLISHED}),
    LegState.CALLING: frozenset({LegState.RINGING, LegState.EARLY, LegState.ESTABLISHED}),
    LegState.RINGING: frozenset({LegState.CALLING, LegState.EARLY, LegState.ESTABLISHED}),
    LegState.EARLY: frozenset({LegState.CALLING, LegState.RINGING, LegState.ESTABLISHED}),
    LegState.ESTABLISHED: frozenset(),
    LegState.ENDED: frozenset(),
}


class CallDirection(enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True)
class NegotiatedMedia:
    """The RTP stream agreed for a leg, from our side: send ``payload_type`` packets of
    ``codec`` every ``ptime`` ms to ``remote_host:remote_port``; ``direction`` is ours
    (sendonly while we hold the call, recvonly while the peer holds it)."""

    remote_host: str
    remote_port: int
    codec: str
    payload_type: int
    clock_rate: int
    channels: int
    ptime: int
    direction: Direction
    dtmf_payload_type: int | None
    local_port: int | None


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CallEvent:
    leg: str


@dataclass(frozen=True, kw_only=True)
class CallTrying(CallEvent):
    """An attempt started on one candidate (``route`` is the endpoint route index)."""

    route: int
    trunk: str | None
    uri: str


@dataclass(frozen=True, kw_only=True)
class CallRinging(CallEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class CallEarlyMedia(CallEvent):
    media: NegotiatedMedia | None


@dataclass(frozen=True, kw_only=True)
class CallAttemptFailed(CallEvent):
    """One candidate failed or was skipped (``trunk-full``, ``trunk-down``, ``no-answer``)."""

    route: int
    trunk: str | None
    status: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class CallAnswered(CallEvent):
    route: int
    trunk: str | None
    media: NegotiatedMedia | None


@dataclass(frozen=True, kw_only=True)
class CallFailed(CallEvent):
    """No candidate answered: the last attempt's status and reason."""

    status: int
    reason: str
    attempts: int


@dataclass(frozen=True, kw_only=True)
class CallEnded(CallEvent):
    """An answered (or inbound) call ended: ``cause`` is ``local-bye``, ``remote-bye``,
    ``cancelled``, ``rejected``, ``dialog-ended``."""

    cause: str
    status: int


@dataclass(frozen=True, kw_only=True)
class MediaChanged(CallEvent):
    """Hold/resume or a re-INVITE from the peer changed the stream."""

    media: NegotiatedMedia | None
    held: bool


@dataclass(frozen=True, kw_only=True)
class DtmfReceived(CallEvent):
    digit: str
    duration_ms: int


TERMINAL_EVENTS = (CallFailed, CallEnded)


@dataclass(frozen=True)
class CallRecord:
    """One row of the store's ``call_records`` when a leg ends."""

    id: str
    leg: str
    direction: str
    remote: str
    trunk: str | None
    start_ts: float
    answer_ts: float | None
    end_ts: float
    status: int | None
    reason: str
    conference: str | None = None


# -- media helpers ----------------------------------------------------------------------------


def _first_audio(sdp: SessionDescription) -> int | None:
    return next((i for i, m in enumerate(sdp.media) if m.media == "audio" and not m.rejected), None)


def negotiated_media(
    remote: SessionDescription, codecs_from: SessionDescription, local_port: int | None
) -> NegotiatedMedia | None:
    """The stream agreed by an exchange: remote address from ``remote``, the codec from
    ``codecs_from`` (the answer: theirs when we offered, ours when we answered)."""
    index = _first_audio(remote)
    chosen_index = _first_audio(codecs_from)
    if index is None or chosen_index is None:
        return None
    connection = remote.media_connection(index)
    if connection is None:
        return None
    codecs = accepted_codecs(codecs_from, chosen_index)
    audio = [c for c in codecs if c.encoding.lower() != "telephone-event"]
    dtmf = next((c for c in codecs if c.encoding.lower() == "telephone-event"), None)
    if not audio:
        return None
    media = remote.media[index]
    return NegotiatedMedia(
        remote_host=connection.address,
        remote_port=media.port,
        codec=audio[0].encoding,
        payload_type=audio[0].payload_type,
        clock_rate=audio[0].clock_rate,
        channels=audio[0].channels or 1,
        ptime=media.ptime or codecs_from.media[chosen_index].ptime or 20,
        direction=remote.media_direction(index).reversed(),
        dtmf_payload_type=dtmf.payload_type if dtmf is not None else None,
        local_port=local_port,
    )


def _local_port(sdp: SessionDescription | None) -> int | None:
    if sdp is None:
        return None
    index = _first_audio(sdp)
    return sdp.media[index].port if index is not None else None


def restrict_codecs(caps: MediaCapabilities, names: Sequence[str]) -> MediaCapabilities:
    """``caps`` offering only the named codecs (a trunk's list) plus telephone-event."""
    if not names:
        return caps
    wanted = {n.lower() for n in names}
    kept = tuple(c for c in caps.audio_codecs if c.name.lower() in wanted or c.is_dtmf)
    return replace(caps, audio_codecs=kept) if any(not c.is_dtmf for c in kept) else caps


def _caps_from_sdp(sdp: SessionDescription) -> MediaCapabilities:
    """Capabilities that answer re-offers the way ``sdp`` (our last SDP) answered."""
    index = _first_audio(sdp)
    connection = sdp.media_connection(index) if index is not None else sdp.connection
    address = connection.address if connection is not None else sdp.origin.address
    if index is None:
        return MediaCapabilities(address, None)
    codecs: list[Codec] = []
    for rtpmap in accepted_codecs(sdp, index):
        known = next((c for c in DEFAULT_AUDIO_CODECS if c.matches(rtpmap)), None)
        codecs.append(known or Codec(rtpmap.encoding, rtpmap.clock_rate, rtpmap.channels or 1))
    return MediaCapabilities(address, sdp.media[index].port, tuple(codecs))


def parse_dtmf_relay(body: bytes) -> tuple[str, int]:
    """``Signal=5\\r\\nDuration=160`` -> ("5", 160); raise ``SipParseError``."""
    text = body.decode("utf-8", "replace")
    signal = _SIGNAL_RE.search(text)
    if signal is None:
        raise SipParseError("dtmf-relay body without Signal=")
    digit = signal.group(1).upper()
    if digit == "10":
        digit = "*"
    elif digit == "11":
        digit = "#"
    if digit not in DTMF_DIGITS:
        raise SipParseError(f"dtmf-relay: bad signal {digit[:8]!r}")
    duration = _DURATION_RE.search(text)
    return digit, int(duration.group(1)) if duration is not None else 250


# -- the leg ----------------------------------------------------------------------------------


class CallLeg:
    """One SIP call, inbound or outbound (see the module docstring)."""

    def __init__(
        self, manager: CallManager, direction: CallDirection, remote: str, *, leg_id: str
    ) -> None:
        self.id = leg_id
        self.direction = direction
        self.remote = remote
        self.state = LegState.INCOMING if direction is CallDirection.INBOUND else LegState.CALLING
        self.trunk: str | None = None
        self.route: int | None = None
        self.caller: str | None = None  # inbound: the authenticated user, if any
        self.media: NegotiatedMedia | None = None
        self.held = False
        self.dialog: Dialog | None = None
        self.local_sdp: SessionDescription | None = None
        self.remote_sdp: SessionDescription | None = None
        self.status: int | None = None
        self.reason = ""
        self.start_ts = time.time()
        self.answer_ts: float | None = None
        self.end_ts: float | None = None
        self._manager = manager
        self._caps: MediaCapabilities | None = None
        self._queue: asyncio.Queue[CallEvent] = asyncio.Queue(_EVENT_QUEUE)
        self._ended = asyncio.Event()
        self._invite: OutgoingInvite | None = None
        self._incoming: IncomingRequest | None = None
        self._trunk_runtime: TrunkRuntime | None = None
        self._hangup_requested = False
        self._log = logging.LoggerAdapter(logger, {"leg": leg_id})

    def __repr__(self) -> str:
        return f"<CallLeg {self.id} {self.direction.value} {self.remote} {self.state.value}>"

    # -- state and events -----------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.state is LegState.ENDED

    @property
    def request_uri(self) -> Uri | None:
        """Inbound: the INVITE's request-URI (what the caller dialled)."""
        return None if self._incoming is None else self._incoming.request.uri

    @property
    def source(self) -> Address | None:
        """Inbound: the transport address the INVITE came from."""
        return None if self._incoming is None else self._incoming.origin.remote

    def _set_state(self, new: LegState) -> None:
        old = self.state
        if new is old:
            return
        if new is not LegState.ENDED and new not in _TRANSITIONS[old]:
            raise SipStateError(f"leg {self.id}: {old.value} -> {new.value} is not allowed")
        self.state = new
        logger.debug("leg %s: %s -> %s", self.id, old.value, new.value)

    def _emit(self, event: CallEvent) -> None:
        if self._queue.full():  # a slow consumer loses the oldest, never the terminal one
            self._queue.get_nowait()
        self._queue.put_nowait(event)
        self._manager._publish(self, event)

    async def events(self) -> AsyncIterator[CallEvent]:
        """This leg's events in order, ending after ``CallFailed`` or ``CallEnded``."""
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, TERMINAL_EVENTS):
                return

    async def wait_for(self, kind: type[CallEvent], within: float = 30.0) -> CallEvent:
        """The next event of ``kind`` (consumes the queue up to it); raise ``CallError``
        when the leg ends first, ``TimeoutError`` after ``within`` seconds."""

        async def scan() -> CallEvent:
            async for event in self.events():
                if isinstance(event, kind):
                    return event
                if isinstance(event, TERMINAL_EVENTS):
                    raise CallError(getattr(event, "status", 0), f"leg ended: {event}")
            raise CallError(0, "leg ended")

        return await asyncio.wait_for(scan(), within)

    async def wait_ended(self, within: float | None = None) -> None:
        await asyncio.wait_for(self._ended.wait(), within)

    def _end(self, cause: str, status: int, *, failed: bool = False, attempts: int = 0) -> None:
        if self.ended:
            return
        self._set_state(LegState.ENDED)
        self.end_ts = time.time()
        self.status = status
        self.reason = cause
        if self._trunk_runtime is not None:
            self._trunk_runtime.release()
            self._trunk_runtime = None
        if self.dialog is not None:
            self.dialog.remove_listener(self._dialog_changed)
        self._log.info("leg %s ended: %s (%d)", self.id, cause, status)
        if failed:
            self._emit(CallFailed(leg=self.id, status=status, reason=cause, attempts=attempts))
        else:
            self._emit(CallEnded(leg=self.id, cause=cause, status=status))
        self._ended.set()
        self._manager._leg_ended(self)

    def _established(self, dialog: Dialog) -> None:
        self.dialog = dialog
        self.answer_ts = time.time()
        self._set_state(LegState.ESTABLISHED)
        self._manager.stack.bind_dialog(dialog, self._on_dialog_request)
        dialog.add_listener(self._dialog_changed)

    def _dialog_changed(self, dialog: Dialog, old: DialogState, new: DialogState) -> None:
        if new is DialogState.TERMINATED and not self.ended:
            self._end("dialog-ended", 0)

    # -- inbound: ring, answer, reject ----------------------------------------------------

    def _pending_invite(self) -> IncomingRequest:
        incoming = self._incoming
        if incoming is None or incoming.answered or self.ended:
            raise SipStateError(f"leg {self.id} has no INVITE waiting for an answer")
        return incoming

    def ring(self) -> None:
        """Send 180 Ringing for an incoming call."""
        self._pending_invite().respond(180)
        if self.state is LegState.INCOMING:
            self._set_state(LegState.RINGING)

    def answer(self, media: MediaCapabilities | SessionDescription) -> NegotiatedMedia | None:
        """Answer an incoming call with our RTP capabilities (or a ready SDP answer)."""
        incoming = self._pending_invite()
        offer = self.remote_sdp
        if offer is None:
            raise SipStateError("an INVITE without an offer cannot be answered here")
        if isinstance(media, MediaCapabilities):
            self._caps = media
            sdp = answer(offer, media)
            if all(m.rejected for m in sdp.media):
                # nothing in common: RFC 3261 21.4.26, refuse rather than answer m=... 0
                self.reject(488, "Not Acceptable Here (no common codec)")
                raise CallError(488, "no common codec with the offer")
        else:
            sdp = media
            self._caps = _caps_from_sdp(sdp)
        self.local_sdp = sdp
        self.media = negotiated_media(offer, sdp, _local_port(sdp))
        incoming.respond(200, body=bytes(sdp), content_type="application/sdp")
        assert incoming.dialog is not None
        self._established(incoming.dialog)
        return self.media

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse an incoming call with a 3xx-6xx status."""
        if not 300 <= status <= 699:
            raise ValueError(f"reject needs a 3xx-6xx status, not {status}")
        response = self._pending_invite().respond(status, reason)
        self._end("rejected", status)
        self.reason = response.reason

    def _unanswered(self) -> None:
        if self.state in (LegState.INCOMING, LegState.RINGING, LegState.EARLY):
            self._end("no-answer", 408)

    def _on_cancelled(self, _incoming: IncomingRequest) -> None:
        self._end("cancelled", 487)

    # -- both: hang up, hold, DTMF ---------------------------------------------------------

    async def hangup(self) -> None:
        """End the call: CANCEL before answer (outbound), 480 (inbound), BYE after."""
        if self.ended:
            return
        if self.state is not LegState.ESTABLISHED:
            if self.direction is CallDirection.INBOUND:
                self._pending_invite().respond(480, "Temporarily Unavailable (hung up)")
                self._end("local-hangup", 480)
                return
            self._hangup_requested = True
            if self._invite is not None:
                self._invite.cancel()
            await self._ended.wait()
            return
        assert self.dialog is not None
        dialog = self.dialog
        self._end("local-bye", 200)
        response = await self._manager.stack.request("BYE", dialog=dialog)
        if response.status >= 300:
            self._log.info("BYE answered %d %s", response.status, response.reason)

    async def hold(self) -> NegotiatedMedia | None:
        """Put the call on hold (re-INVITE with a=sendonly)."""
        media = await self._reoffer(hold_offer)
        self.held = True
        self._emit(MediaChanged(leg=self.id, media=media, held=True))
        return media

    async def resume(self) -> NegotiatedMedia | None:
        """Take the call off hold (re-INVITE with a=sendrecv)."""
        media = await self._reoffer(resume_offer)
        self.held = False
        self._emit(MediaChanged(leg=self.id, media=media, held=False))
        return media

    async def _reoffer(
        self, build: Callable[[SessionDescription], SessionDescription]
    ) -> NegotiatedMedia | None:
        dialog = self._established_dialog()
        assert self.local_sdp is not None
        offer = build(self.local_sdp)
        for _ in range(3):
            invite = await self._manager.stack.reinvite(
                dialog, body=bytes(offer), content_type="application/sdp"
            )
            response = await invite.final()
            if response.status == 491:  # glare: wait the RFC 3261 14.1 delay and retry
                await asyncio.sleep(dialog.glare_retry_delay())
                continue
            break
        if not 200 <= response.status < 300:
            raise CallError(response.status, response.reason)
        try:
            remote = SessionDescription.parse(response.body)
        except SipParseError as err:
            raise CallError(488, f"bad SDP answer: {err.reason}") from None
        self.local_sdp, self.remote_sdp = offer, remote
        self.media = negotiated_media(remote, remote, _local_port(offer))
        return self.media

    def _established_dialog(self) -> Dialog:
        if self.state is not LegState.ESTABLISHED or self.dialog is None:
            raise SipStateError(f"leg {self.id} is {self.state.value}, not established")
        return self.dialog

    async def send_dtmf(self, digits: str, duration_ms: int = 160) -> None:
        """Send digits as SIP INFO (application/dtmf-relay), one request per digit."""
        bad = [d for d in digits.upper() if d not in DTMF_DIGITS]
        if bad or not digits:
            raise ValueError(f"DTMF digits are 0-9 * # A-D, got {digits!r}")
        dialog = self._established_dialog()
        for digit in digits.upper():
            body = f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()
            response = await self._manager.stack.request(
                "INFO", dialog=dialog, body=body, content_type=DTMF_RELAY
            )
            if not 200 <= response.status < 300:
                raise CallError(response.status, response.reason)

    # -- in-dialog requests from the peer -------------------------------------------------

    def _on_dialog_request(self, incoming: IncomingRequest) -> None:
        method = incoming.method
        if method == "BYE":
            self._end("remote-bye", 200)  # before the 200 ends the dialog
            incoming.respond(200)
        elif method == "INVITE":
            self._on_reinvite(incoming)
        elif method == "INFO":
            self._on_info(incoming)
        elif method == "OPTIONS":
            incoming.respond(200)
        else:
            allow = Header("Allow", "INVITE, ACK, BYE, CANCEL, INFO, OPTIONS")
            incoming.respond(405, headers=[allow])

    def _on_reinvite(self, incoming: IncomingRequest) -> None:
        dialog = incoming.dialog
        try:
            offer = SessionDescription.parse(incoming.request.body)
        except SipParseError as err:
            if dialog is not None:
                dialog.end_remote_invite()
            incoming.respond(488, f"Not Acceptable Here ({err.reason})")
            return
        caps = self._caps or (_caps_from_sdp(self.local_sdp) if self.local_sdp else None)
        if caps is None:
            incoming.respond(488)
            return
        sdp = answer(offer, caps)
        if self.local_sdp is not None:
            sdp = replace(sdp, origin=self.local_sdp.bump_version().origin)
        self.local_sdp, self.remote_sdp = sdp, offer
        self.media = negotiated_media(offer, sdp, _local_port(sdp))
        incoming.respond(200, body=bytes(sdp), content_type="application/sdp")
        held = offer.media_direction(0) in (Direction.SENDONLY, Direction.INACTIVE)
        self._emit(MediaChanged(leg=self.id, media=self.media, held=held))

    def _on_info(self, incoming: IncomingRequest) -> None:
        if incoming.request.content_type != DTMF_RELAY:
            incoming.respond(415, headers=[Header("Accept", DTMF_RELAY)])
            return
        try:
            digit, duration = parse_dtmf_relay(incoming.request.body)
        except SipParseError as err:
            incoming.respond(400, f"Bad Request ({err.reason})")
            return
        incoming.respond(200)
        self._emit(DtmfReceived(leg=self.id, digit=digit, duration_ms=duration))

    def record(self) -> CallRecord:
        return CallRecord(
            id=f"{self.id}-{int(self.start_ts * 1000)}",
            leg=self.id,
            direction=self.direction.value,
            remote=self.remote,
            trunk=self.trunk,
            start_ts=self.start_ts,
            answer_ts=self.answer_ts,
            end_ts=self.end_ts or time.time(),
            status=self.status,
            reason=self.reason,
        )

    def describe(self) -> dict[str, Any]:
        media = self.media
        return {
            "id": self.id,
            "direction": self.direction.value,
            "remote": self.remote,
            "state": self.state.value,
            "trunk": self.trunk,
            "route": self.route,
            "caller": self.caller,
            "held": self.held,
            "start_ts": self.start_ts,
            "answer_ts": self.answer_ts,
            "media": None
            if media is None
            else {
                "remote_host": media.remote_host,
                "remote_port": media.remote_port,
                "codec": media.codec,
                "payload_type": media.payload_type,
                "ptime": media.ptime,
                "direction": media.direction.value,
            },
        }


# -- the manager ------------------------------------------------------------------------------

IncomingHandler = Callable[[CallLeg], Awaitable[None] | None]
EventListener = Callable[[CallLeg, CallEvent], None]


class CallManager:
    """Originates and receives calls on one stack; owns the legs while they live.

    Incoming INVITEs are taken from a trunk's source address, or digest-authenticated
    (407) against ``registrar``; with ``trust_all`` (a phone) from anyone.
    """

    def __init__(
        self,
        stack: SipStack,
        *,
        dialplan: Dialplan | None = None,
        trunks: TrunkSet | None = None,
        registrar: Registrar | None = None,
        ring_timeout: float = 60.0,
        on_event: EventListener | None = None,
        on_record: Callable[[CallRecord], None] | None = None,
        on_incoming: IncomingHandler | None = None,
        trust_all: bool = False,
    ) -> None:
        self.stack = stack
        self.trust_all = trust_all  # a phone takes calls from anyone
        self.dialplan = dialplan
        self.trunks = trunks
        self.registrar = registrar
        self.ring_timeout = ring_timeout
        self.on_event = on_event
        self.on_record = on_record
        self.on_incoming = on_incoming
        self.legs: dict[str, CallLeg] = {}
        self.counters = {"originated": 0, "answered": 0, "failed": 0, "inbound": 0}
        self._tasks: set[asyncio.Task[Any]] = set()

    def attach(self) -> None:
        """Receive the stack's INVITEs (out of dialog)."""
        self.stack.set_handler("INVITE", self._on_invite)

    async def close(self) -> None:
        """Hang up every leg and stop the walks."""
        await asyncio.gather(*(leg.hangup() for leg in list(self.legs.values())),
                             return_exceptions=True)  # fmt: skip
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("call task %s crashed", task.get_name(), exc_info=task.exception())

    def _publish(self, leg: CallLeg, event: CallEvent) -> None:
        if self.on_event is not None:
            try:
                self.on_event(leg, event)
            except Exception:
                logger.exception("call event listener failed")

    def _leg_ended(self, leg: CallLeg) -> None:
        self.legs.pop(leg.id, None)
        if self.on_record is not None:
            try:
                self.on_record(leg.record())
            except Exception:
                logger.exception("call record writer failed")

    # -- outbound ----------------------------------------------------------------------------

    def candidates(self, target: str | Sequence[Candidate]) -> tuple[Candidate, ...]:
        """Candidates for an address or directory endpoint id (``DialplanError``)."""
        if not isinstance(target, str):
            return tuple(target)
        if self.dialplan is None:
            raise SipStateError("no dial plan: pass candidates")
        if ":" not in target and target in self.dialplan.endpoints:
            return self.dialplan.resolve_endpoint(target)
        return self.dialplan.resolve(target)

    async def originate(
        self,
        target: str | Sequence[Candidate],
        media: MediaCapabilities | SessionDescription,
        *,
        from_: str | None = None,
        ring_timeout: float | None = None,
        credentials: Credentials | None = None,
    ) -> CallLeg:
        """Start a call; progress comes as ``leg.events()``. Raises ``DialplanError`` when
        the address is malformed or has no route. ``credentials`` answer challenges on
        candidates without a trunk (a phone calling through its registrar)."""
        candidates = self.candidates(target)
        if not candidates:
            raise SipStateError("no candidates to call")
        remote = target if isinstance(target, str) else str(candidates[0].address)
        leg = CallLeg(self, CallDirection.OUTBOUND, remote, leg_id=f"leg-{next(_ids)}")
        self.legs[leg.id] = leg
        self.counters["originated"] += 1
        timeout = self.ring_timeout if ring_timeout is None else ring_timeout
        walk = self._walk(leg, candidates, media, from_, timeout, credentials)
        self._spawn(walk, f"call-{leg.id}")
        return leg

    async def _walk(
        self,
        leg: CallLeg,
        candidates: Sequence[Candidate],
        media: MediaCapabilities | SessionDescription,
        from_: str | None,
        ring_timeout: float,
        credentials: Credentials | None,
    ) -> None:
        status, reason, attempts = 480, "no candidate tried", 0
        try:
            for candidate in candidates:
                if leg._hangup_requested or leg.ended:
                    break
                attempts += 1
                result = await self._attempt(
                    leg, candidate, media, from_, ring_timeout, credentials
                )
                if result is None:
                    self.counters["answered"] += 1
                    return
                status, reason = result
                leg._emit(
                    CallAttemptFailed(
                        leg=leg.id,
                        route=candidate.route,
                        trunk=candidate.trunk,
                        status=status,
                        reason=reason,
                    )
                )
        except Exception as err:
            logger.exception("leg %s: originate failed", leg.id)
            status, reason = 500, f"internal error: {err}"
        if leg._hangup_requested:
            leg._end("cancelled", 487)
            return
        self.counters["failed"] += 1
        leg._end(reason, status, failed=True, attempts=attempts)

    def _target(
        self, candidate: Candidate, trunk: TrunkRuntime | None
    ) -> tuple[SipUri | Any, Address | Any, str | None]:
        """(request URI, destination, a reason to skip) for one candidate."""
        if candidate.trunk is None and candidate.destination is None:
            if self.registrar is None:
                return None, None, "no registrar"
            user = candidate.request_uri.user or ""
            bindings = self.registrar.lookup(user)
            if not bindings:
                return None, None, f"user {user} not registered"
            binding = bindings[0]
            return binding.uri, binding.origin, None
        if trunk is not None:
            return candidate.request_uri, trunk.address, None
        if candidate.destination is not None and is_ip(candidate.destination[0]):
            host, port = candidate.destination
            return candidate.request_uri, Address(candidate.transport.upper(), host, port), None
        return candidate.request_uri, None, None

    async def _attempt(
        self,
        leg: CallLeg,
        candidate: Candidate,
        media: MediaCapabilities | SessionDescription,
        from_: str | None,
        ring_timeout: float,
        credentials: Credentials | None,
    ) -> tuple[int, str] | None:
        """Try one candidate: None when answered, else (status, reason)."""
        trunk = self.trunks.get(candidate.trunk) if self.trunks and candidate.trunk else None
        if trunk is not None:
            if not trunk.usable:
                return 503, "trunk-down"
            if trunk.full:
                return 503, "trunk-full"
            await trunk.resolve()
            credentials = trunk.credentials
        uri, destination, skip = self._target(candidate, trunk)
        if skip is not None:
            return 480, skip
        if isinstance(media, MediaCapabilities):
            offer = create_offer(restrict_codecs(media, candidate.codecs))
        else:
            offer = media
        if trunk is not None:
            trunk.acquire()
            leg._trunk_runtime = trunk
        leg.trunk, leg.route = candidate.trunk, candidate.route
        if leg.state is not LegState.CALLING:
            leg._set_state(LegState.CALLING)
        leg._emit(
            CallTrying(leg=leg.id, route=candidate.route, trunk=candidate.trunk, uri=str(uri))
        )
        sender = from_ or (trunk.from_uri if trunk else f"sip:cchub@{self.stack.config.domain}")
        try:
            invite = await self.stack.invite(
                uri,
                from_=sender,
                headers=[Header(name, value) for name, value in candidate.headers],
                body=bytes(offer),
                credentials=credentials,
                destination=destination,
            )
            leg._invite = invite
            timed_out = False

            def no_answer() -> None:
                nonlocal timed_out
                timed_out = True
                invite.cancel()

            timer = asyncio.get_running_loop().call_later(ring_timeout, no_answer)
            try:
                final = await self._progress(leg, invite, offer)
            finally:
                timer.cancel()
                leg._invite = None
            if 200 <= final.status < 300:
                if invite.cancelled:  # answered after our CANCEL: the stack sent BYE
                    return 487, "cancelled"
                assert invite.dialog is not None
                leg.local_sdp = offer
                try:
                    leg.remote_sdp = SessionDescription.parse(final.body)
                    leg.media = negotiated_media(leg.remote_sdp, leg.remote_sdp, _local_port(offer))
                except SipParseError as err:
                    leg._log.warning("leg %s: bad SDP in 2xx: %s", leg.id, err.reason)
                leg._established(invite.dialog)
                leg._emit(
                    CallAnswered(
                        leg=leg.id, route=candidate.route, trunk=candidate.trunk, media=leg.media
                    )
                )
                return None
            if timed_out:
                return 408, "no-answer"
            return final.status, final.reason
        finally:
            if leg.state is not LegState.ESTABLISHED and leg._trunk_runtime is trunk:
                if trunk is not None:
                    trunk.release()
                leg._trunk_runtime = None

    async def _progress(
        self, leg: CallLeg, invite: OutgoingInvite, offer: SessionDescription
    ) -> SipResponse:
        async for response in invite:
            status = response.status
            if status >= 200:
                return response
            if status == 183 and response.body:
                try:
                    remote = SessionDescription.parse(response.body)
                except SipParseError:
                    continue
                leg.media = negotiated_media(remote, remote, _local_port(offer))
                if leg.state is not LegState.EARLY:
                    leg._set_state(LegState.EARLY)
                    leg._emit(CallEarlyMedia(leg=leg.id, media=leg.media))
            elif 180 <= status < 190 and leg.state is LegState.CALLING:
                leg._set_state(LegState.RINGING)
                leg._emit(CallRinging(leg=leg.id))
        return await invite.final()

    # -- inbound -----------------------------------------------------------------------------

    def _source_trunk(self, incoming: IncomingRequest) -> TrunkRuntime | None:
        """The trunk an INVITE came from: its address and port; or its address alone,
        unless the caller names one of our SIP users (then digest decides)."""
        if self.trunks is None:
            return None
        remote = incoming.origin.remote
        trunk = self.trunks.by_source(remote.host, remote.port)
        if trunk is None or trunk.trunk.port == remote.port or self.registrar is None:
            return trunk
        user = getattr(incoming.request.from_.uri, "user", None)
        return None if user and self.registrar.user(user) is not None else trunk

    def _on_invite(self, incoming: IncomingRequest) -> Awaitable[None] | None:
        request = incoming.request
        trunk = self._source_trunk(incoming)
        caller: str | None = None
        if trunk is not None:
            if trunk.full:
                incoming.respond(503, "Service Unavailable (trunk-full)")
                return None
        elif self.trust_all:
            pass
        elif self.registrar is not None:
            result = self.registrar.authenticate(request, proxy=True)
            if not result.ok:
                incoming.send(
                    self.registrar.challenge(request, result, proxy=True, to_tag=incoming.to_tag)
                )
                return None
            caller = result.username
        else:
            incoming.respond(403, "Forbidden (unknown source)")
            return None
        offer: SessionDescription | None = None
        if request.body:
            try:
                offer = SessionDescription.parse(request.body)
            except SipParseError as err:
                incoming.respond(400, f"Bad Request (SDP: {err.reason})")
                return None
        if offer is None:
            incoming.respond(488, "Not Acceptable Here (an SDP offer is required)")
            return None
        if self.on_incoming is None:
            incoming.respond(480, "Temporarily Unavailable (no call handler)")
            return None
        leg = CallLeg(
            self, CallDirection.INBOUND, str(request.from_.uri), leg_id=f"leg-{next(_ids)}"
        )
        leg.caller = caller
        leg.remote_sdp = offer
        leg._incoming = incoming
        incoming.on_cancel = leg._on_cancelled
        if trunk is not None:
            trunk.acquire()
            leg._trunk_runtime = trunk
            leg.trunk = trunk.id
        self.legs[leg.id] = leg
        self.counters["inbound"] += 1
        # the stack answers 408 to an INVITE left unanswered: end the leg with it
        asyncio.get_running_loop().call_later(
            self.stack.config.invite_answer_timeout + 0.1, leg._unanswered
        )
        handled = self.on_incoming(leg)
        if inspect.isawaitable(handled):
            return handled
        return None
