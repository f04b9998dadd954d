"""Plan (预案) step kinds of the conference layer: ``create_conference``, ``dial`` (by
target and/or by endpoint role: the duty roster) and ``announce``, registered with the plan
engine's :class:`~hub.plans.StepKinds`.

A ``dial`` or ``announce`` step names its conference either by the id of an earlier
``create_conference`` step of the same run (list it in ``depends_on``) or by a conference id.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from hub.conferences.announcement import InvalidAnnouncement, announcement_file
from hub.conferences.arguments import (
    AnnounceArgs,
    CreateConferenceArgs,
    DialArgs,
    StepArguments,
)
from hub.conferences.model import (
    ConferenceEnded,
    ConferenceError,
    ConferenceFull,
    ConferenceLocked,
    ConferenceNotFound,
    InvalidTarget,
    Participant,
)
from hub.config import describe_error
from hub.plans import DEFAULT_TIMEOUT, StepContext, StepFailed, StepKinds, StepOutcome

if TYPE_CHECKING:
    from hub.conferences.service import ConferenceService

logger = logging.getLogger(__name__)

KEEP_RUNS = 500  # runs whose created conferences later steps can still name
SETTLE_MARGIN = 2.0  # seconds of a dial step's timeout kept to write its report
MAX_TARGETS = 500

_CODES: tuple[tuple[type[ConferenceError], str], ...] = (
    (ConferenceNotFound, "not-found"),
    (ConferenceEnded, "ended"),
    (ConferenceLocked, "locked"),
    (ConferenceFull, "full"),
    (InvalidTarget, "invalid-target"),
    (InvalidAnnouncement, "file"),
)


def _code(err: ConferenceError) -> str:
    return next((code for kind, code in _CODES if isinstance(err, kind)), "conference")


A = TypeVar("A", bound=StepArguments)


def _arguments(model: type[A], ctx: StepContext) -> A:
    try:
        return model.model_validate(ctx.step.arguments())
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "arguments"
        raise StepFailed(
            f"{ctx.step.action}: {where}: {describe_error(first)}", "invalid-arguments"
        ) from None


# -- the kinds ----------------------------------------------------------------------------------


class ConferenceSteps:
    """Handlers of ``create_conference``, ``dial`` and ``announce`` over one service."""

    def __init__(self, service: ConferenceService, *, data_dir: Path | None = None) -> None:
        self._service = service
        self._data_dir = data_dir if data_dir is not None else service.site.hub.data_dir
        # run id -> step id -> the conference its create_conference step made
        self._created: collections.OrderedDict[str, dict[str, str]] = collections.OrderedDict()

    def register(self, kinds: StepKinds) -> StepKinds:
        kinds.register("create_conference", self.create_conference)
        kinds.register("dial", self.dial)
        kinds.register("announce", self.announce)
        return kinds

    @staticmethod
    def _actor(ctx: StepContext) -> str:
        return f"plan:{ctx.plan.id}/{ctx.run}"

    def _conference(self, ctx: StepContext, name: str) -> str:
        """The conference a step names: an earlier create_conference step's, or an id."""
        made = self._created.get(ctx.run, {})
        if name in made:
            return made[name]
        steps = {ctx.plan.step_id(i): s for i, s in enumerate(ctx.plan.steps)}
        step = steps.get(name)
        if step is not None and step.action == "create_conference":
            raise StepFailed(
                f"step {name!r} has not created a conference (list it in this step's depends_on)",
                "dependency",
            )
        try:
            return self._service.get(name).id
        except ConferenceError as err:
            raise StepFailed(
                f"no conference {name!r}: neither a create_conference step of plan"
                f" {ctx.plan.id!r} nor a conference id ({err})",
                "not-found",
            ) from None

    # -- create_conference --------------------------------------------------------------------

    async def create_conference(self, ctx: StepContext) -> StepOutcome:
        args = _arguments(CreateConferenceArgs, ctx)
        try:
            conf = self._service.create(
                name=args.name,
                actor=self._actor(ctx),
                pin=args.pin,
                profile=args.profile,
                max_duration=args.max_duration,
                record=args.record,
            )
        except ConferenceError as err:
            raise StepFailed(str(err), _code(err)) from None
        self._created.setdefault(ctx.run, {})[ctx.step_id] = conf.id
        self._created.move_to_end(ctx.run)
        while len(self._created) > KEEP_RUNS:
            self._created.popitem(last=False)
        return StepOutcome(
            f"conference {conf.id} ({conf.name}) created",
            {"conference": conf.id, "name": conf.name, "profile": conf.profile},
        )

    # -- dial ---------------------------------------------------------------------------------

    def _targets(self, args: DialArgs) -> list[tuple[str, str | None]]:
        """(target, role it was picked by): the listed ones, then the role's endpoints in
        site order; each dialled once."""
        out: dict[str, str | None] = {}
        for target in args.targets:
            out.setdefault(target.strip(), None)
        if args.role is not None:
            endpoints = self._service.site.endpoints
            matched = [e.id for e in endpoints if args.role in e.roles]
            if not matched:
                known = sorted({r for e in endpoints for r in e.roles})
                raise StepFailed(
                    f"no endpoint has role {args.role!r} (roles: {', '.join(known) or 'none'})",
                    "no-targets",
                )
            for endpoint in matched:
                out.setdefault(endpoint, args.role)
        if len(out) > MAX_TARGETS:
            raise StepFailed(f"{len(out)} targets, at most {MAX_TARGETS}", "invalid-arguments")
        return list(out.items())

    async def dial(self, ctx: StepContext) -> StepOutcome:
        args = _arguments(DialArgs, ctx)
        conf_id = self._conference(ctx, args.conference)
        targets = self._targets(args)
        actor = self._actor(ctx)
        started = time.monotonic()
        placed: list[tuple[dict[str, Any], Participant]] = []
        results: list[dict[str, Any]] = []
        for target, role in targets:
            result: dict[str, Any] = {"target": target, "via_role": role}
            results.append(result)
            try:
                participant = await self._service.dial(
                    conf_id,
                    target,
                    actor=actor,
                    role=args.as_role,
                    ring_timeout=args.ring_timeout,
                    override_lock=True,  # a lock keeps out dial-in, not the plan
                )
            except ConferenceError as err:
                result.update(outcome="failed", reason=str(err), code=_code(err))
                if isinstance(err, ConferenceNotFound | ConferenceEnded):
                    # the conference is gone: the other targets cannot join it either
                    raise StepFailed(str(err), _code(err), self._report(conf_id, results)) from None
                continue
            result.update(participant=participant.id, outcome="dialing")
            placed.append((result, participant))
        if args.wait and placed:
            limit = ctx.step.timeout if ctx.step.timeout is not None else DEFAULT_TIMEOUT
            remaining = max(0.1, limit - SETTLE_MARGIN - (time.monotonic() - started))
            await _settled([p for _, p in placed], remaining)
        for result, participant in placed:
            result.update(_outcome(participant, waited=args.wait))
        report = self._report(conf_id, results)
        answered = report["answered"]
        failed = [r for r in results if r["outcome"] == "failed"]
        summary = (
            f"{len(answered)} of {len(results)} answered"
            + (f" ({', '.join(answered)})" if answered else "")
            + (f"; failed: {_failures(failed)}" if failed else "")
        )
        if not args.wait:
            if not placed:
                raise StepFailed(f"no target could be dialled: {_failures(failed)}", "dial", report)
            return StepOutcome(f"{len(placed)} of {len(results)} dialled into {conf_id}", report)
        if not answered:
            raise StepFailed(f"nobody answered: {_failures(failed)}", "no-answer", report)
        return StepOutcome(summary, report)

    @staticmethod
    def _report(conf_id: str, results: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "conference": conf_id,
            "targets": results,
            "answered": [r["target"] for r in results if r["outcome"] == "answered"],
            "failed": [r["target"] for r in results if r["outcome"] == "failed"],
        }

    # -- announce -----------------------------------------------------------------------------

    async def announce(self, ctx: StepContext) -> StepOutcome:
        args = _arguments(AnnounceArgs, ctx)
        conf_id = self._conference(ctx, args.conference)
        tone = args.tone.tone() if args.tone else None
        file = None
        what = args.tone.describe() if args.tone else f"file {args.file}"
        try:
            if args.file is not None:
                file = await asyncio.to_thread(announcement_file, self._data_dir, args.file)
            number = await self._service.announce(
                conf_id, actor=self._actor(ctx), tone=tone, file=file
            )
        except ConferenceError as err:
            raise StepFailed(str(err), _code(err)) from None
        return StepOutcome(
            f"{what} played in {conf_id}", {"conference": conf_id, "announcement": number}
        )


async def _settled(participants: list[Participant], within: float) -> None:
    """Wait until every participant answered or failed, at most ``within`` seconds."""
    waits = [asyncio.ensure_future(p.settled.wait()) for p in participants]
    try:
        await asyncio.wait(waits, timeout=within)
    finally:
        for waiting in waits:
            waiting.cancel()


def _outcome(participant: Participant, *, waited: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "state": participant.state.value,
        "route": participant.route,
        "trunk": participant.trunk,
        "attempts": [dict(a) for a in participant.attempts],
    }
    if participant.joined_ts is not None:
        out["outcome"] = "answered"
    elif not participant.active:
        out.update(
            outcome="failed",
            status=participant.status,
            reason=participant.reason or participant.state.value,
        )
    else:
        out["outcome"] = "ringing" if waited else "dialing"
    return out


def _failures(failed: list[dict[str, Any]]) -> str:
    parts = []
    for r in failed:
        status = f"{r['status']} " if r.get("status") else ""
        parts.append(f"{r['target']} ({status}{r.get('reason', '')})".replace(" )", ")"))
    return ", ".join(parts) or "none"
