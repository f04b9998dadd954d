"""Dial-in to standing conferences: the request-URI names a room's number, the caller waits
in its lobby, keys the PIN (RFC 4733 or SIP INFO, ``#`` ends) and is admitted, as moderator
with the moderator PIN. Too many wrong PINs lock the caller's source out for a while. A
locked room refuses callers at the INVITE (403) unless it has a moderator PIN: then callers
wait in the lobby and only the moderator PIN gets them in.

Prompts are tones (no speech files needed): two short high beeps ask for the PIN, one low
tone says "wrong", a rising pair says "welcome". The lockout key is the INVITE's source IP;
for a call that came through a trunk it is the trunk and the caller's URI, so that one
guesser does not lock out every caller behind the same PSTN gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hmac
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from devices.tasks import TaskOwner
from hub.conferences.config import ConferenceSection, Room
from hub.conferences.model import (
    Conference,
    ConferenceEnded,
    ConferenceError,
    ConferenceFull,
    ConferenceLocked,
    ConferenceNotFound,
    NoCommonMedia,
    Participant,
    ParticipantRole,
    ParticipantState,
)
from hub.conferences.service import ConferenceService
from hub.events import ConferenceDialIn
from hub.telephony import Telephony
from media.announce import Tone
from sip.calls import CallLeg, LegState
from sip.errors import SipError
from sip.uri import SipUri, TelUri

logger = logging.getLogger(__name__)

ACTOR = "dial-in"
MAX_PIN_DIGITS = 32  # a room PIN is at most 32 digits (config.Pin)
_GONE = ""  # queued when the caller's leg ends: wakes the PIN reader at once
_DIGIT_QUEUE = 64
_PURGE_AT = 1024  # failure records kept before expired ones are swept
_UNSHOWN = re.compile(r"[^0-9A-Za-z*#+._-]")  # what a dialled number may not put in a log line

# two short high beeps: "key your PIN"
ENTER_PIN: tuple[Tone, ...] = (Tone((1400.0,), on_ms=120, off_ms=100, duration_ms=340),)
# one low tone: "wrong PIN"
WRONG_PIN: tuple[Tone, ...] = (Tone((330.0,), on_ms=700, duration_ms=700),)
# a rising pair: "welcome, you are in"
WELCOME: tuple[Tone, ...] = (
    Tone((660.0,), on_ms=150, duration_ms=150),
    Tone((990.0,), on_ms=200, duration_ms=200),
)


class Outcome(enum.StrEnum):
    """What became of one dial-in call (the ``outcome`` of ``conference.dialin``)."""

    ADMITTED = "admitted"
    REFUSED = "refused"  # unknown number, locked, full, no media
    WRONG_PIN = "wrong-pin"
    LOCKED_OUT = "locked-out"  # this source has just been locked out
    BLOCKED = "blocked"  # an INVITE from a locked-out source
    TIMEOUT = "timeout"  # no PIN keyed in time
    ABANDONED = "abandoned"  # the caller hung up before getting in


@dataclass
class _Failures:
    """Wrong PINs from one source; the record (and a lockout) lasts until ``until``."""

    count: int = 0
    until: float = 0.0


@dataclass(frozen=True)
class _Call:
    leg: CallLeg
    number: str  # as dialled, shown safely (logs, events, reason phrases)
    source: str  # what is logged and published: the source host
    key: str  # what the lockout is keyed by


def dialled_number(leg: CallLeg) -> str:
    """The user part of the INVITE's request-URI (``sip:8000@hub`` -> ``8000``)."""
    uri = leg.request_uri
    if isinstance(uri, SipUri):
        return uri.user or ""
    if isinstance(uri, TelUri):
        return uri.number
    return ""


class DialIn:
    """Takes the hub's incoming calls (``attach``) and runs each one's PIN dialogue."""

    def __init__(
        self,
        service: ConferenceService,
        config: ConferenceSection,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.config = config
        self.rooms: dict[str, Room] = {r.number: r for r in config.rooms if r.number}
        self.counters = {o.value: 0 for o in Outcome} | {"calls": 0}
        self._clock = clock
        self._failures: dict[str, _Failures] = {}
        self._digits: dict[str, asyncio.Queue[str]] = {}  # by SIP leg id
        self._tasks = TaskOwner(logger)
        self._telephony: Telephony | None = None

    def attach(self, telephony: Telephony) -> None:
        """Answer the hub's incoming calls and listen to the conference service's DTMF."""
        telephony.calls.on_incoming = self._on_incoming
        if self._on_dtmf not in self.service.dtmf_listeners:
            self.service.dtmf_listeners.append(self._on_dtmf)
        self._telephony = telephony

    async def close(self) -> None:
        """Stop taking calls and end the PIN dialogues still running."""
        if self._telephony is not None and self._telephony.calls.on_incoming == self._on_incoming:
            self._telephony.calls.on_incoming = None
        with contextlib.suppress(ValueError):
            self.service.dtmf_listeners.remove(self._on_dtmf)
        await self._tasks.close()

    # -- lockout -----------------------------------------------------------------------------

    @staticmethod
    def lockout_key(leg: CallLeg) -> str:
        source = leg.source
        if leg.trunk is not None:
            return f"trunk {leg.trunk} caller {leg.remote}"
        return source.host if source is not None else "unknown"

    def lockout_remaining(self, key: str) -> float:
        """Seconds ``key`` stays locked out (0: it may call)."""
        record = self._failures.get(key)
        if record is None:
            return 0.0
        left = record.until - self._clock()
        if left <= 0:
            del self._failures[key]
            return 0.0
        return left if record.count >= self.config.pin_attempts else 0.0

    def lockouts(self) -> dict[str, float]:
        """Every source locked out now, with the seconds left."""
        return {k: left for k in list(self._failures) if (left := self.lockout_remaining(k)) > 0}

    def _wrong_pin(self, key: str) -> tuple[int, bool]:
        """Count a wrong PIN from ``key``: (failures in the window, locked out now)."""
        now = self._clock()
        if len(self._failures) >= _PURGE_AT:
            for stale in [k for k, r in self._failures.items() if r.until <= now]:
                del self._failures[stale]
        record = self._failures.get(key)
        if record is None or record.until <= now:
            record = self._failures[key] = _Failures()
        record.count += 1
        record.until = now + self.config.pin_lockout
        return record.count, record.count >= self.config.pin_attempts

    # -- the INVITE --------------------------------------------------------------------------

    def _on_incoming(self, leg: CallLeg) -> None:
        source = leg.source
        dialled = dialled_number(leg)
        call = _Call(
            leg,
            _UNSHOWN.sub("?", dialled[:32]),
            source.host if source is not None else "unknown",
            self.lockout_key(leg),
        )
        self.counters["calls"] += 1
        left = self.lockout_remaining(call.key)
        if left > 0:
            logger.info(
                "dial-in %s from %s (%s) refused: locked out for %.1f s more",
                call.number,
                call.key,
                leg.remote,
                left,
            )
            self._refuse(call, None, 403, "Forbidden (locked out)", Outcome.BLOCKED)
            return
        room = self.rooms.get(dialled)
        if room is None:
            self._refuse(call, None, 404, f"Not Found (no conference number {call.number})")
            return
        try:
            conf = self.service.get(room.id)
        except ConferenceNotFound:
            conf = None
        if conf is None or conf.ended:
            self._refuse(call, room.id, 404, "Not Found (conference not running)")
            return
        if conf.locked and room.moderator_pin is None:
            # a locked room with a moderator PIN still lets a moderator in (ConfBridge's
            # admins): the caller waits in the lobby, and only that PIN admits it
            self._refuse(call, conf.id, 403, "Forbidden (conference locked)")
            return
        limit = self.service.profile_of(conf).max_participants
        if len(conf.active_participants()) >= limit:
            self._refuse(call, conf.id, 486, "Busy Here (conference full)")
            return
        # digits may come as soon as the call is answered: listen before answering
        self._digits[leg.id] = asyncio.Queue(_DIGIT_QUEUE)
        self._tasks.spawn(self._run(call, room, conf), f"dialin-{leg.id}")

    def _refuse(
        self,
        call: _Call,
        conference: str | None,
        status: int,
        reason: str,
        outcome: Outcome = Outcome.REFUSED,
    ) -> None:
        """Answer the INVITE with ``status`` (unless the leg is gone already) and report."""
        leg = call.leg
        if leg.state in (LegState.INCOMING, LegState.RINGING, LegState.EARLY):
            try:
                leg.reject(status, reason)
            except SipError as err:
                logger.warning("dial-in %s: could not refuse %s: %s", call.number, leg.id, err)
        if outcome is Outcome.REFUSED:
            logger.info(
                "dial-in %s from %s (%s) refused: %d %s",
                call.number,
                call.source,
                leg.remote,
                status,
                reason,
            )
        self._report(call, outcome, conference, status=status, reason=reason)

    def _report(
        self,
        call: _Call,
        outcome: Outcome,
        conference: str | None,
        *,
        participant: Participant | None = None,
        status: int = 0,
        failures: int = 0,
        reason: str = "",
    ) -> None:
        self.counters[outcome.value] += 1
        self.service.bus.publish(
            ConferenceDialIn(
                conference=conference,
                number=call.number,
                source=call.source,
                outcome=outcome.value,
                participant=participant.id if participant is not None else None,
                role=participant.role.value if participant is not None else None,
                status=status,
                failures=failures,
                reason=reason,
            )
        )

    # -- the call ----------------------------------------------------------------------------

    async def _run(self, call: _Call, room: Room, conf: Conference) -> None:
        leg = call.leg
        queue = self._digits[leg.id]
        watcher = self._tasks.spawn(self._watch(leg, queue), f"dialin-watch-{leg.id}")
        try:
            await self._answer(call, room, conf, queue)
        finally:
            watcher.cancel()
            self._digits.pop(leg.id, None)

    @staticmethod
    async def _watch(leg: CallLeg, queue: asyncio.Queue[str]) -> None:
        await leg.wait_ended()
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(_GONE)

    async def _answer(
        self, call: _Call, room: Room, conf: Conference, queue: asyncio.Queue[str]
    ) -> None:
        needs_pin = room.pin is not None or room.moderator_pin is not None
        actor = f"{ACTOR}:{call.leg.caller or call.leg.remote}"
        try:
            p = await self.service.join_leg(conf.id, call.leg, actor=actor, lobby=needs_pin)
        except ConferenceLocked:
            self._refuse(call, conf.id, 403, "Forbidden (conference locked)")
            return
        except ConferenceFull:
            self._refuse(call, conf.id, 486, "Busy Here (conference full)")
            return
        except (ConferenceNotFound, ConferenceEnded):
            self._refuse(call, conf.id, 404, "Not Found (conference not running)")
            return
        except NoCommonMedia as err:
            logger.info("dial-in %s: %s refused: %s", call.number, call.leg.id, err)
            self._refuse(call, conf.id, 488, "Not Acceptable Here (no common codec)")
            return
        except ConferenceError as err:
            logger.error("dial-in %s: %s could not join: %s", call.number, call.leg.id, err)
            self._refuse(call, conf.id, 500, "Server Internal Error (cannot join)")
            return
        if not p.active:  # answered, then dropped (no common codec, media failed)
            logger.info("dial-in %s: %s dropped on answer: %s", call.number, p.id, p.reason)
            self._report(call, Outcome.REFUSED, conf.id, participant=p, reason=p.reason)
            return
        if not needs_pin:
            logger.info("dial-in %s: %s joined %s (no PIN)", call.number, p.id, conf.id)
            self._report(call, Outcome.ADMITTED, conf.id, participant=p)
            return
        logger.info(
            "dial-in %s from %s: %s in the lobby of %s, waiting for the PIN",
            call.number,
            call.source,
            p.id,
            conf.id,
        )
        await self._pin_dialogue(call, room, p, queue)

    async def _pin_dialogue(
        self, call: _Call, room: Room, p: Participant, queue: asyncio.Queue[str]
    ) -> None:
        wrong = 0
        while True:
            await self._prompt(p, ENTER_PIN)
            entry = await self._read_pin(queue)
            if call.leg.ended or not p.active:
                logger.info("dial-in %s: %s hung up before getting in", call.number, p.id)
                self._report(call, Outcome.ABANDONED, p.conference, participant=p, failures=wrong)
                return
            role = self._check(room, entry)
            if role is None and entry is None:
                logger.warning("dial-in %s: %s keyed no PIN in time, dropped", call.number, p.id)
                await self._hang_up(p, "pin-timeout")
                self._report(call, Outcome.TIMEOUT, p.conference, participant=p, failures=wrong)
                return
            if role is not None:
                await self._admit(call, p, role)
                return
            wrong += 1
            failures, locked = self._wrong_pin(call.key)
            logger.warning(
                "dial-in %s from %s: wrong PIN (%d of %d from %s)",
                call.number,
                call.source,
                failures,
                self.config.pin_attempts,
                call.key,
            )
            self._report(call, Outcome.WRONG_PIN, p.conference, participant=p, failures=failures)
            await self._prompt(p, WRONG_PIN)
            if locked or wrong >= self.config.pin_attempts:
                if locked:
                    logger.warning(
                        "dial-in: %s locked out for %.0f s after %d wrong PINs",
                        call.key,
                        self.config.pin_lockout,
                        failures,
                    )
                    self._report(
                        call, Outcome.LOCKED_OUT, p.conference, participant=p, failures=failures
                    )
                await self._hang_up(p, "pin-wrong")
                return

    def _check(self, room: Room, entry: str | None) -> ParticipantRole | None:
        """The role a PIN entry gives (None: wrong). Without a participant PIN an empty
        entry (``#`` alone, or nothing keyed) lets the caller in as a participant."""
        if entry is None:
            return ParticipantRole.PARTICIPANT if room.pin is None else None
        if room.moderator_pin is not None and _same(entry, room.moderator_pin):
            return ParticipantRole.MODERATOR
        if room.pin is not None and _same(entry, room.pin):
            return ParticipantRole.PARTICIPANT
        if room.pin is None and entry == "":
            return ParticipantRole.PARTICIPANT
        return None

    async def _read_pin(self, queue: asyncio.Queue[str]) -> str | None:
        """Digits up to ``#``, a pause of ``pin_digit_timeout`` after the last one, or the
        end of ``pin_timeout``; None when nothing at all was keyed in that time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.pin_timeout
        digits: list[str] = []
        keyed = False
        while len(digits) < MAX_PIN_DIGITS:
            left = deadline - loop.time()
            wait = min(left, self.config.pin_digit_timeout) if keyed else left
            if wait <= 0:
                break
            try:
                digit = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                break
            if digit == _GONE:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(_GONE)  # stays gone for the next reader
                break
            keyed = True
            if digit == "#":
                break
            digits.append(digit)
        return "".join(digits) if keyed else None

    async def _admit(self, call: _Call, p: Participant, role: ParticipantRole) -> None:
        conf_id = p.conference
        try:
            conf = self.service.get(conf_id)
            if conf.locked and role is not ParticipantRole.MODERATOR:
                logger.info(
                    "dial-in %s: %s keyed the PIN, but %s is locked", call.number, p.id, conf_id
                )
                await self._hang_up(p, "conference-locked")
                self._report(call, Outcome.REFUSED, conf_id, participant=p, reason="locked")
                return
            if role is not p.role:
                self.service.set_role(conf_id, p.id, role, actor=ACTOR)
            if p.state is ParticipantState.LOBBY:
                await self.service.admit(p.id)
        except ConferenceError as err:
            logger.warning("dial-in %s: %s could not be admitted: %s", call.number, p.id, err)
            await self._hang_up(p, "admit-failed")
            self._report(call, Outcome.REFUSED, conf_id, participant=p, reason=str(err))
            return
        self._failures.pop(call.key, None)  # the caller knew the PIN: forget its typos
        logger.info("dial-in %s: %s admitted to %s as %s", call.number, p.id, conf_id, role.value)
        self._report(call, Outcome.ADMITTED, conf_id, participant=p)
        await self._prompt(p, WELCOME)

    async def _prompt(self, p: Participant, tones: tuple[Tone, ...]) -> None:
        """Play ``tones`` one after the other to ``p`` alone (best effort)."""
        for tone in tones:
            if not p.active:
                return
            try:
                await self.service.announce(p.conference, actor=ACTOR, tone=tone, participant=p.id)
            except ConferenceError as err:
                logger.debug("dial-in: prompt to %s not played: %s", p.id, err)
                return
            await asyncio.sleep((tone.duration_ms or 0) / 1000)

    async def _hang_up(self, p: Participant, reason: str) -> None:
        if not p.active:
            return
        try:
            await self.service.remove(p.conference, p.id, actor=ACTOR, reason=reason)
        except ConferenceError as err:
            logger.debug("dial-in: %s already gone: %s", p.id, err)

    def _on_dtmf(self, p: Participant, digit: str) -> None:
        queue = self._digits.get(p.leg or "")
        if queue is None:
            return
        try:
            queue.put_nowait(digit)
        except asyncio.QueueFull:
            logger.warning("dial-in: %s keys too fast, digit dropped", p.id)


def _same(entry: str, pin: str) -> bool:
    """Compare in constant time (a PIN is a secret)."""
    return hmac.compare_digest(entry.encode(), pin.encode())
