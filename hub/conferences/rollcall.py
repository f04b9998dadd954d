"""Dispatch dialling on top of the conference service: roll call (点名), the two-party call
the hub bridges, and barge (强插) into such a call.

A roll call dials a list of members into a conference, one at a time or all at once, and
reports who answered (on which route and trunk, how fast) and who did not (SIP status,
reason, the routes tried). Its progress is ``conference.rollcall`` events on the bus.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devices.tasks import TaskOwner
from hub.bus import EventBus, SubscriberDropped, Subscription
from hub.conferences.model import (
    Conference,
    ConferenceError,
    InvalidTarget,
    Participant,
    ParticipantRole,
    ParticipantState,
)
from hub.errors import InvalidStateError, NotFound
from hub.events import ConferenceControl, ConferenceParticipantChanged, ConferenceRollCall, Event
from media.announce import Tone
from sip.dialplan import DialplanError

if TYPE_CHECKING:
    from hub.conferences.service import ConferenceService

logger = logging.getLogger(__name__)

ROLE_PREFIX = "role:"
MAX_MEMBERS = 500
KEPT = 200  # finished roll calls kept for GET (older ones are in the event log)
# Two short high beeps: the barge-in warning every party hears when a third one joins.
BARGE_TONE = Tone((1400.0,), on_ms=150, off_ms=100, level_dbfs=-12.0, duration_ms=400)
# A member whose dial never settles (a bug below us) is given up after this long.
_SETTLE_GRACE = 60.0
_ENDED_BY_PARTY = "hangup"  # as the service says when a joined party hangs up


class RollCallState(enum.StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class RollCallMode(enum.StrEnum):
    SEQUENTIAL = "sequential"  # one member at a time, each rung for ring_timeout
    PARALLEL = "parallel"  # every member at once


class MemberOutcome(enum.StrEnum):
    PENDING = "pending"  # not dialled yet
    CALLING = "calling"  # dialled, not answered yet
    ANSWERED = "answered"
    UNANSWERED = "unanswered"  # failed: busy, rejected, no answer, unreachable
    CANCELLED = "cancelled"  # the roll call was cancelled before this member answered


class RollCallNotFound(NotFound, ConferenceError):
    title = "Roll call not found"


class RollCallFinished(InvalidStateError, ConferenceError):
    title = "Roll call finished"


class BargeRefused(InvalidStateError, ConferenceError):
    title = "Barge refused"


@dataclass(kw_only=True, eq=False)
class RollCallMember:
    """One member's line in the report; ``endpoint`` set when dialled by directory id."""

    target: str
    endpoint: str | None = None
    via_role: str | None = None
    outcome: MemberOutcome = MemberOutcome.PENDING
    participant: str | None = None
    route: int | None = None
    trunk: str | None = None
    dialled_ts: float | None = None
    settled_ts: float | None = None  # when its outcome was known
    answer_seconds: float | None = None
    status: int | None = None
    reason: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "endpoint": self.endpoint,
            "via_role": self.via_role,
            "outcome": self.outcome.value,
            "participant": self.participant,
            "route": self.route,
            "trunk": self.trunk,
            "dialled_ts": self.dialled_ts,
            "settled_ts": self.settled_ts,
            "answer_seconds": None
            if self.answer_seconds is None
            else round(self.answer_seconds, 3),
            "status": self.status,
            "reason": self.reason,
            "attempts": [dict(a) for a in self.attempts],
        }


@dataclass(kw_only=True, eq=False)
class RollCall:
    id: str
    conference: str
    mode: RollCallMode
    ring_timeout: float
    actor: str
    members: list[RollCallMember]
    state: RollCallState = RollCallState.RUNNING
    created_ts: float = field(default_factory=time.time)
    finished_ts: float | None = None
    cancelled_by: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def with_outcome(self, *outcomes: MemberOutcome) -> list[RollCallMember]:
        return [m for m in self.members if m.outcome in outcomes]

    def report(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conference": self.conference,
            "mode": self.mode.value,
            "ring_timeout": self.ring_timeout,
            "state": self.state.value,
            "actor": self.actor,
            "cancelled_by": self.cancelled_by,
            "created_ts": self.created_ts,
            "finished_ts": self.finished_ts,
            "answered": [m.target for m in self.with_outcome(MemberOutcome.ANSWERED)],
            "unanswered": [
                m.target
                for m in self.with_outcome(MemberOutcome.UNANSWERED, MemberOutcome.CANCELLED)
            ],
            "members": [m.as_dict() for m in self.members],
        }


_ids = itertools.count(1)


class RollCalls:
    """Roll calls, bridged two-party calls and barge for one conference service.

    ``start`` listens on the bus for participants leaving: a kind "call" conference with
    fewer than two parties left (monitors aside) is ended, releasing the other party.
    """

    def __init__(self, service: ConferenceService, bus: EventBus) -> None:
        self.service = service
        self.bus = bus
        self._rollcalls: dict[str, RollCall] = {}
        self._tasks = TaskOwner(logger)
        self._listening = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._listening = True
        self._tasks.spawn(self._watch_calls(self._subscribe()), "calls-release")

    async def stop(self) -> None:
        self._listening = False
        for rollcall in list(self._rollcalls.values()):
            if rollcall.task is not None and not rollcall.task.done():
                rollcall.task.cancel()
        await self._tasks.close()

    # -- roll call ---------------------------------------------------------------------------

    def expand(self, members: Sequence[str]) -> list[RollCallMember]:
        """Members from directory ids, addresses and ``role:<r>`` (every site endpoint with
        that role, in site order); duplicates are dialled once. ``InvalidTarget`` names the
        first bad one."""
        out: list[RollCallMember] = []
        seen: set[str] = set()
        endpoints = self.service.site.endpoints
        for raw in members:
            text = raw.strip() if isinstance(raw, str) else ""
            if not text:
                raise InvalidTarget(str(raw), "empty member")
            if text.startswith(ROLE_PREFIX):
                role = text[len(ROLE_PREFIX) :]
                matched = [e.id for e in endpoints if role in e.roles]
                if not matched:
                    known = sorted({r for e in endpoints for r in e.roles})
                    raise InvalidTarget(
                        text,
                        f"no endpoint has role {role!r} (roles: {', '.join(known) or 'none'})",
                    )
                for endpoint in matched:
                    if endpoint not in seen:
                        seen.add(endpoint)
                        out.append(
                            RollCallMember(target=endpoint, endpoint=endpoint, via_role=role)
                        )
                continue
            self.check_target(text)
            if text not in seen:
                seen.add(text)
                is_endpoint = ":" not in text
                out.append(RollCallMember(target=text, endpoint=text if is_endpoint else None))
        if not out:
            raise InvalidTarget("", "a roll call needs at least one member")
        if len(out) > MAX_MEMBERS:
            raise InvalidTarget("", f"{len(out)} members, at most {MAX_MEMBERS} per roll call")
        return out

    def check_target(self, target: str) -> None:
        """Raise ``InvalidTarget`` with the dial plan's reason unless ``target`` can be dialled."""
        try:
            candidates = self.service.telephony.calls.candidates(target)
        except DialplanError as err:
            raise InvalidTarget(target, err.reason) from None
        if not candidates:
            raise InvalidTarget(target, "no route")

    def launch(
        self,
        conf_id: str,
        members: Sequence[str],
        *,
        actor: str,
        mode: RollCallMode = RollCallMode.SEQUENTIAL,
        ring_timeout: float = 30.0,
    ) -> RollCall:
        """Start a roll call now and return it (state running); follow it with ``get``."""
        conference = self.service.get(conf_id)
        if conference.ended:
            raise RollCallFinished(f"conference {conf_id} has ended")
        rollcall = RollCall(
            id=f"rc-{next(_ids)}",
            conference=conference.id,
            mode=mode,
            ring_timeout=ring_timeout,
            actor=actor,
            members=self.expand(members),
        )
        self._rollcalls[rollcall.id] = rollcall
        logger.info(
            "[conf=%s rollcall=%s] %s roll call of %d members by %s",
            conf_id,
            rollcall.id,
            mode.value,
            len(rollcall.members),
            actor,
        )
        self._publish(rollcall)
        rollcall.task = self._tasks.spawn(self._run(rollcall), f"rollcall-{rollcall.id}")
        return rollcall

    def get(self, conf_id: str, rollcall_id: str) -> RollCall:
        rollcall = self._rollcalls.get(rollcall_id)
        if rollcall is None or rollcall.conference != conf_id:
            raise RollCallNotFound(f"no roll call {rollcall_id!r} in conference {conf_id!r}")
        return rollcall

    def list(self, conf_id: str) -> list[RollCall]:
        self.service.get(conf_id)  # 404 for an unknown conference
        return [r for r in self._rollcalls.values() if r.conference == conf_id]

    async def cancel(self, conf_id: str, rollcall_id: str, *, actor: str) -> RollCall:
        """Stop dialling: members still ringing are hung up, the rest are not called."""
        rollcall = self.get(conf_id, rollcall_id)
        if rollcall.state is not RollCallState.RUNNING:
            raise RollCallFinished(f"roll call {rollcall_id} is {rollcall.state.value} already")
        rollcall.cancelled_by = actor
        if rollcall.task is not None:
            await self._tasks.cancel(rollcall.task, grace=10.0)
        if not rollcall.done.is_set():  # cancelled before it ran, or stuck hanging up
            await self._abandon(rollcall)
        return rollcall

    async def wait(self, conf_id: str, rollcall_id: str) -> RollCall:
        rollcall = self.get(conf_id, rollcall_id)
        await rollcall.done.wait()
        return rollcall

    async def _run(self, rollcall: RollCall) -> None:
        try:
            if rollcall.mode is RollCallMode.PARALLEL:
                dialled = [await self._dial(rollcall, m) for m in rollcall.members]
                await asyncio.gather(
                    *(
                        self._settle(rollcall, m, p)
                        for m, p in zip(rollcall.members, dialled, strict=True)
                    )
                )
            else:
                for member in rollcall.members:
                    participant = await self._dial(rollcall, member)
                    await self._settle(rollcall, member, participant)
            self._finish(rollcall, RollCallState.FINISHED)
        except asyncio.CancelledError:
            await asyncio.shield(self._abandon(rollcall))
            raise
        except Exception:
            logger.exception(
                "[conf=%s rollcall=%s] roll call crashed", rollcall.conference, rollcall.id
            )
            await asyncio.shield(self._abandon(rollcall))

    async def _dial(self, rollcall: RollCall, member: RollCallMember) -> Participant | None:
        member.dialled_ts = time.time()
        try:
            participant = await self.service.dial(
                rollcall.conference,
                member.target,
                actor=rollcall.actor,
                ring_timeout=rollcall.ring_timeout,
                override_lock=True,  # a lock keeps out dial-in, not the dispatcher's roll call
            )
        except ConferenceError as err:
            member.outcome = MemberOutcome.UNANSWERED
            member.settled_ts = time.time()
            member.reason = str(err)
            member.status = None
            self._publish(rollcall)
            return None
        member.outcome = MemberOutcome.CALLING
        member.participant = participant.id
        return participant

    async def _settle(
        self, rollcall: RollCall, member: RollCallMember, participant: Participant | None
    ) -> None:
        if participant is None:
            return
        grace = rollcall.ring_timeout * 4 + _SETTLE_GRACE  # every route rung, and then some
        try:
            await asyncio.wait_for(participant.settled.wait(), grace)
        except TimeoutError:
            logger.error(
                "[conf=%s rollcall=%s] %s never settled; giving up on it",
                rollcall.conference,
                rollcall.id,
                participant.id,
            )
            await self._hang_up(rollcall, participant, "rollcall-no-outcome")
            member.outcome = MemberOutcome.UNANSWERED
            member.settled_ts = time.time()
            member.reason = "no outcome"
            self._publish(rollcall)
            return
        self._record(member, participant)
        self._publish(rollcall)

    @staticmethod
    def _record(member: RollCallMember, participant: Participant) -> None:
        member.settled_ts = time.time()
        member.route, member.trunk = participant.route, participant.trunk
        member.attempts = [dict(a) for a in participant.attempts]
        if participant.joined_ts is not None:
            member.outcome = MemberOutcome.ANSWERED
            start = member.dialled_ts or participant.joined_ts
            member.answer_seconds = max(0.0, participant.joined_ts - start)
            member.status, member.reason = None, ""
            return
        member.outcome = MemberOutcome.UNANSWERED
        member.status = participant.status
        member.reason = participant.reason or participant.state.value

    async def _abandon(self, rollcall: RollCall) -> None:
        """Cancelled (or crashed): hang up members still ringing, skip the rest."""
        if rollcall.done.is_set():
            return
        reason = "rollcall-cancelled"
        for member in rollcall.members:
            if member.outcome is MemberOutcome.PENDING:
                member.outcome = MemberOutcome.CANCELLED
                member.reason = "not called: roll call cancelled"
            elif member.outcome is MemberOutcome.CALLING and member.participant is not None:
                try:
                    participant = self.service.participant(rollcall.conference, member.participant)
                except ConferenceError:
                    participant = None
                if participant is not None and participant.joined_ts is not None:
                    self._record(member, participant)  # it answered as we were cancelled
                    continue
                if participant is not None:
                    await self._hang_up(rollcall, participant, reason)
                member.outcome = MemberOutcome.CANCELLED
                member.settled_ts = time.time()
                member.reason = "hung up: roll call cancelled"
        self._finish(rollcall, RollCallState.CANCELLED)

    async def _hang_up(self, rollcall: RollCall, participant: Participant, reason: str) -> None:
        if not participant.active:
            return
        try:
            await self.service.remove(
                rollcall.conference, participant.id, actor=rollcall.actor, reason=reason
            )
        except ConferenceError as err:
            logger.info(
                "[conf=%s] could not hang up %s: %s", rollcall.conference, participant.id, err
            )

    def _finish(self, rollcall: RollCall, state: RollCallState) -> None:
        rollcall.state = state
        rollcall.finished_ts = time.time()
        answered = len(rollcall.with_outcome(MemberOutcome.ANSWERED))
        logger.info(
            "[conf=%s rollcall=%s] running -> %s: %d of %d answered",
            rollcall.conference,
            rollcall.id,
            state.value,
            answered,
            len(rollcall.members),
        )
        self._publish(rollcall)
        rollcall.done.set()
        finished = [r for r in self._rollcalls.values() if r.done.is_set()]
        for old in finished[: max(0, len(finished) - KEPT)]:
            self._rollcalls.pop(old.id, None)

    def _publish(self, rollcall: RollCall) -> None:
        report = rollcall.report()
        self.bus.publish(
            ConferenceRollCall(
                conference=rollcall.conference,
                rollcall=rollcall.id,
                state=rollcall.state.value,
                answered=[m for m in report["members"] if m["outcome"] == "answered"],
                unanswered=[
                    m for m in report["members"] if m["outcome"] in ("unanswered", "cancelled")
                ],
            )
        )

    # -- two-party calls and barge --------------------------------------------------------------

    async def call(
        self,
        a: str,
        b: str,
        *,
        actor: str,
        name: str | None = None,
        ring_timeout: float | None = None,
    ) -> Conference:
        """A two-party call the hub bridges: a conference of kind "call" with both dialled.
        Both targets are checked before anything is dialled."""
        self.check_target(a)
        self.check_target(b)
        conference = self.service.create(name=name or f"{a} - {b}", actor=actor, kind="call")
        try:
            for target in (a, b):
                await self.service.dial(
                    conference.id, target, actor=actor, ring_timeout=ring_timeout
                )
        except ConferenceError:
            await self.service.end(conference.id, actor=actor, reason="call-setup-failed")
            raise
        return conference

    async def barge(
        self, conf_id: str, target: str, *, actor: str, ring_timeout: float | None = None
    ) -> Participant:
        """强插: dial ``target`` talking into a two-party call; once it answers, every party
        hears ``BARGE_TONE``. 409 unless the call has exactly two joined parties."""
        conference = self.service.get(conf_id)
        if conference.kind != "call":
            raise BargeRefused(
                f"conference {conf_id} is a {conference.kind}, not a two-party call: "
                "barge only into a call"
            )
        joined = [p.id for p in conference.participants.values() if p.counted]
        waiting = [
            p.id
            for p in conference.active_participants()
            if p.role is not ParticipantRole.MONITOR and p.state is not ParticipantState.JOINED
        ]
        if len(joined) != 2 or waiting:
            raise BargeRefused(
                f"call {conf_id} has {len(joined)} joined parties"
                + (f" and {len(waiting)} still being called" if waiting else "")
                + ": barge needs exactly two joined parties"
            )
        self.check_target(target)
        participant = await self.service.dial(
            conf_id,
            target,
            actor=actor,
            role=ParticipantRole.PARTICIPANT,
            ring_timeout=ring_timeout,
        )
        self.bus.publish(
            ConferenceControl(
                conference=conf_id,
                action="barge",
                participant=participant.id,
                actor=actor,
                detail={"target": target, "parties": joined},
            )
        )
        self._tasks.spawn(self._barge_tone(conf_id, participant, actor), f"barge-{participant.id}")
        return participant

    async def _barge_tone(self, conf_id: str, participant: Participant, actor: str) -> None:
        await participant.settled.wait()
        if participant.state is not ParticipantState.JOINED:
            logger.info(
                "[conf=%s] barge by %s not answered: %s",
                conf_id,
                participant.id,
                participant.reason,
            )
            return
        try:
            await self.service.announce(conf_id, actor=actor, tone=BARGE_TONE)
        except ConferenceError as err:
            logger.info("[conf=%s] no barge tone: %s", conf_id, err)

    # -- releasing the other party of a call ----------------------------------------------------

    def _subscribe(self) -> Subscription:
        return self.bus.subscribe(
            "conference-calls",
            maxsize=10_000,
            accept=lambda e: (
                isinstance(e, ConferenceParticipantChanged)
                and e.state in (ParticipantState.LEFT.value, ParticipantState.FAILED.value)
            ),
        )

    async def _watch_calls(self, subscription: Subscription) -> None:
        while self._listening:
            try:
                async for event in subscription:
                    self._party_gone(event)
                return
            except SubscriberDropped as err:
                logger.error("call release fell behind (%s); resubscribing", err)
                subscription = self._subscribe()

    def _party_gone(self, event: Event) -> None:
        if not isinstance(event, ConferenceParticipantChanged):
            return
        try:
            conference = self.service.get(event.conference)
        except ConferenceError:
            return
        if conference.kind != "call" or conference.ended:
            return
        parties = [
            p for p in conference.active_participants() if p.role is not ParticipantRole.MONITOR
        ]
        if len(parties) >= 2:
            return  # a barger left, or someone is still there to talk to
        logger.info(
            "[conf=%s] call party %s %s (%s): releasing %s",
            conference.id,
            event.participant,
            event.state,
            event.reason,
            ", ".join(p.id for p in parties) or "nobody",
        )
        self._tasks.spawn(self._end_call(conference.id), f"call-end-{conference.id}")

    async def _end_call(self, conf_id: str) -> None:
        try:
            await self.service.end(conf_id, actor="hub", reason=_ENDED_BY_PARTY)
        except ConferenceError as err:  # ended meanwhile by someone else
            logger.debug("[conf=%s] call already over: %s", conf_id, err)
