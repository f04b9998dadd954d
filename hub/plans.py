"""Plans (预案): named lists of steps, started by a warning rule (``plan.requested``), by the
API or from the console. Each step is of a registered kind; every step's result is an
event on the bus, and a failed step does not stop the steps that do not depend on it.

Steps run as soon as the steps they name in ``depends_on`` have succeeded (steps without
``depends_on`` start together); a step whose dependency failed or was skipped is skipped,
with the reason. Kinds whose layer is absent (``dial`` before conferences exist) fail
with a precise result instead of being dropped.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Protocol

import httpx
from pydantic import ConfigDict, Field

from devices.config import DeviceConfig, Model, Name
from devices.errors import DeviceError
from devices.scenes import (
    STEP_KEYS,
    SceneBusy,
    SceneConfig,
    SceneError,
    SceneStep,
    check_scenes,
)
from devices.tasks import TaskOwner
from hub.bus import EventBus, SubscriberDropped, Subscription
from hub.errors import HubError, InvalidStateError, NotFound
from hub.events import (
    Event,
    PlanFinished,
    PlanNotified,
    PlanRejected,
    PlanRequested,
    PlanStarted,
    PlanStepChanged,
)
from monitoring.config import WarningLevel

logger = logging.getLogger(__name__)

KeyPath = tuple[str | int, ...]

# -- site file ---------------------------------------------------------------------------

LAYER_KINDS: Mapping[str, str] = {
    "create_conference": "conferences",
    "dial": "conferences",
    "announce": "conferences",
    "key_radio": "radio nets",
    "send_message": "messages",
}
"""Step kinds whose handlers the conference, radio and message layers register."""

RESERVED_PLAN_IDS = frozenset({"runs"})  # /api/v1/plans/runs/... is the runs' path


class StepBase(Model):
    """Keys every step has. Extra keys are a kind's arguments where it takes them
    (``device_command``, the layers' kinds); elsewhere ``check_plans`` reports them, with
    the kind's own keys (pydantic would list another union member's)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    takes_arguments: ClassVar[bool] = False

    id: Name | None = Field(None, description="default: step-<n> (1-based)")
    depends_on: list[Name] = Field([], description="ids of earlier steps that must succeed")
    timeout: float | None = Field(None, gt=0, le=3600, description="seconds; default by kind")


class ApplySceneStep(StepBase):
    """Apply a scene (一键场景) through the scene engine; fails with the scene's report."""

    action: Literal["apply_scene"]
    scene: Name


class DeviceCommandStep(StepBase):
    """``{device, command, ...args}``: one typed device command, as in scenes."""

    takes_arguments: ClassVar[bool] = True

    action: Literal["device_command"]
    device: Name
    command: str = Field(min_length=1)

    def device_command(self) -> dict[str, Any]:
        return {"command": self.command, **(self.model_extra or {})}


class NotifyStep(StepBase):
    """A ``plan.notify`` event for the consoles (default text: the plan's name)."""

    action: Literal["notify"]
    text: str = ""
    level: WarningLevel | None = None


class WebhookStep(StepBase):
    """POST the run as JSON; a 2xx answer is success."""

    action: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")


class WaitStep(StepBase):
    action: Literal["wait"]
    seconds: float = Field(gt=0, le=3600)


class LayerStep(StepBase):
    """A kind another layer carries out; its arguments are that layer's own."""

    takes_arguments: ClassVar[bool] = True

    action: Literal["create_conference", "dial", "announce", "key_radio", "send_message"]

    def arguments(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


PlanStep = Annotated[
    ApplySceneStep | DeviceCommandStep | NotifyStep | WebhookStep | WaitStep | LayerStep,
    Field(discriminator="action"),
]

STEP_KINDS: tuple[str, ...] = (
    "apply_scene",
    "device_command",
    "notify",
    "webhook",
    "wait",
    *LAYER_KINDS,
)


class PlanConfig(Model):
    id: Name
    name: str = ""
    description: str = ""
    steps: list[PlanStep] = Field(min_length=1)

    def step_id(self, index: int) -> str:
        return self.steps[index].id or f"step-{index + 1}"

    @property
    def step_ids(self) -> list[str]:
        return [self.step_id(i) for i in range(len(self.steps))]

    @property
    def title(self) -> str:
        return self.name or self.id


def check_plans(
    plans: Sequence[PlanConfig],
    scenes: Sequence[SceneConfig],
    devices: Sequence[DeviceConfig],
) -> list[tuple[KeyPath, str]]:
    """Cross-check plans against each other, the scenes and the devices, each problem at
    its key path: ids, ``depends_on`` naming earlier steps, scenes that exist, device
    commands the device takes."""
    problems: list[tuple[KeyPath, str]] = []
    scene_ids = [s.id for s in scenes]
    for i, plan in enumerate(plans):
        if plan.id in RESERVED_PLAN_IDS:
            problems.append((("plans", i, "id"), f"{plan.id!r} is reserved (API paths)"))
        seen: dict[str, int] = {}
        for j, step in enumerate(plan.steps):
            path: KeyPath = ("plans", i, "steps", j)
            sid = plan.step_id(j)
            if sid in seen:
                problems.append(((*path, "id"), f"{sid!r} is also the id of step {seen[sid]}"))
            for k, dep in enumerate(step.depends_on):
                if dep not in seen:
                    earlier = ", ".join(seen) or "none"
                    problems.append(
                        (
                            (*path, "depends_on", k),
                            f"{dep!r} is not an earlier step (earlier steps: {earlier})",
                        )
                    )
            seen.setdefault(sid, j)
            if not step.takes_arguments:
                allowed = ", ".join(type(step).model_fields)
                problems += [
                    ((*path, key), f"unknown key for {step.action!r} (allowed: {allowed})")
                    for key in step.model_extra or {}
                ]
            if isinstance(step, ApplySceneStep) and step.scene not in scene_ids:
                legal = ", ".join(scene_ids) or "none"
                problems.append(((*path, "scene"), f"no scene {step.scene!r} (scenes: {legal})"))
            elif isinstance(step, DeviceCommandStep):
                problems += _check_command(path, step, devices)
    return problems


_SCENE_KEYS = f"; step keys: {', '.join(STEP_KEYS)}"


def _check_command(
    path: KeyPath, step: DeviceCommandStep, devices: Sequence[DeviceConfig]
) -> list[tuple[KeyPath, str]]:
    """The scenes' checks of a device command (vocabulary, arguments, device limits)."""
    scene_step = SceneStep.model_validate(
        {"device": step.device, "command": step.command, **(step.model_extra or {})}
    )
    probe = SceneConfig(id="plan-step", steps=[scene_step])
    out = []
    for where, message in check_scenes([probe], devices):
        rest = where[4:]  # ("scenes", 0, "steps", 0, ...)
        message = message.replace(
            "; step keys: device, command, parallel_group, verify_timeout", ""
        )
        out.append(((*path, *rest), message))
    return out


# -- runs --------------------------------------------------------------------------------


class StepState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


_STEP_MOVES: Mapping[StepState, frozenset[StepState]] = {
    StepState.PENDING: frozenset({StepState.RUNNING, StepState.SKIPPED, StepState.CANCELLED}),
    StepState.RUNNING: frozenset({StepState.OK, StepState.FAILED, StepState.CANCELLED}),
}
STEP_DONE = frozenset({StepState.OK, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED})


class RunState(enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every step ok
    FAILED = "failed"  # some step failed or was skipped
    CANCELLED = "cancelled"  # the hub stopped while it ran


@dataclass(frozen=True)
class StepReport:
    id: str
    action: str
    state: StepState
    detail: str = ""
    code: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    started: float | None = None
    seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "state": self.state.value,
            "detail": self.detail,
            "code": self.code,
            "data": dict(self.data),
            "started": self.started,
            "seconds": None if self.seconds is None else round(self.seconds, 4),
        }


@dataclass(frozen=True)
class RunReport:
    run: str
    plan: str
    name: str
    state: RunState
    requested_by: str
    alarm: str
    reason: str
    started: float
    finished: float | None
    steps: tuple[StepReport, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "plan": self.plan,
            "name": self.name,
            "state": self.state.value,
            "requested_by": self.requested_by,
            "alarm": self.alarm,
            "reason": self.reason,
            "started": self.started,
            "finished": self.finished,
            "steps": [s.as_dict() for s in self.steps],
        }


class PlanError(HubError):
    """Root of the plan errors."""


class PlanNotFound(PlanError, NotFound):
    pass


class PlanBusy(PlanError, InvalidStateError):
    """The plan is running already; a second run would repeat its calls and commands."""


class StepFailed(PlanError):
    """A step handler's failure: ``code`` is the device's or layer's own when it has one."""

    def __init__(self, message: str, code: str = "", data: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.data = dict(data or {})


@dataclass(frozen=True)
class StepContext:
    """What a handler knows about the step it carries out."""

    run: str
    plan: PlanConfig
    step_id: str
    step: Any  # the step's model (ApplySceneStep, LayerStep...)
    requested_by: str
    alarm: str
    reason: str


@dataclass(frozen=True)
class StepOutcome:
    detail: str
    data: Mapping[str, Any] = field(default_factory=dict)


StepHandler = Callable[[StepContext], Awaitable[StepOutcome]]


class StepKinds:
    """Handlers by step kind. Only the kinds the site file knows (``STEP_KINDS``) can be
    registered; a layer registers its kinds when it starts."""

    def __init__(self) -> None:
        self._handlers: dict[str, StepHandler] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def register(
        self,
        kind: str,
        handler: StepHandler,
        *,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if kind not in STEP_KINDS:
            raise ValueError(f"unknown step kind {kind!r} (kinds: {', '.join(STEP_KINDS)})")
        if kind in self._handlers:
            raise ValueError(f"step kind {kind!r} already has a handler")
        self._handlers[kind] = handler
        if close is not None:
            self._closers.append(close)

    def get(self, kind: str) -> StepHandler | None:
        return self._handlers.get(kind)

    def available(self) -> list[str]:
        return [k for k in STEP_KINDS if k in self._handlers]

    @staticmethod
    def missing(kind: str) -> str:
        layer = LAYER_KINDS.get(kind)
        why = f"{layer} are not available in this hub" if layer else "not registered"
        return f"no handler for step kind {kind!r} ({why})"

    async def close(self) -> None:
        for close in self._closers:
            try:
                await close()
            except Exception:
                logger.exception("closing a plan step handler failed")


class _RunLog(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        return f"[plan={extra.get('plan')} run={extra.get('run')}] {msg}", kwargs


class _StepRun:
    """One step of one run: an explicit state machine whose every move is an event."""

    def __init__(self, run: PlanRun, index: int) -> None:
        self.run = run
        self.index = index
        self.step = run.plan.steps[index]
        self.id = run.plan.step_id(index)
        self.state = StepState.PENDING
        self.detail = ""
        self.code = ""
        self.data: dict[str, Any] = {}
        self.started: float | None = None
        self.seconds: float | None = None
        self.done = asyncio.Event()

    def set_state(
        self,
        new: StepState,
        detail: str = "",
        code: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> None:
        old = self.state
        if new not in _STEP_MOVES.get(old, frozenset()):
            self.run.log.error("step %s: illegal move %s -> %s ignored", self.id, old, new)
            return
        self.state, self.detail, self.code = new, detail, code
        self.data = dict(data or {})
        now = time.time()
        if new is StepState.RUNNING:
            self.started = now
        elif self.started is not None:
            self.seconds = now - self.started
        level = logging.WARNING if new in (StepState.FAILED, StepState.SKIPPED) else logging.INFO
        self.run.log.log(
            level,
            "step %s (%s): %s -> %s %s",
            self.id,
            self.step.action,
            old.value,
            new.value,
            detail,
        )
        self.run.publish(
            PlanStepChanged(
                run=self.run.id,
                plan=self.run.plan.id,
                step=self.id,
                action=self.step.action,
                old=old.value,
                new=new.value,
                detail=detail,
                code=code,
                data=self.data,
            )
        )
        if new in STEP_DONE:
            self.done.set()

    def report(self) -> StepReport:
        return StepReport(
            self.id,
            self.step.action,
            self.state,
            self.detail,
            self.code,
            dict(self.data),
            self.started,
            self.seconds,
        )


class PlanRun:
    """One run of one plan."""

    def __init__(
        self,
        plan: PlanConfig,
        run_id: str,
        requested_by: str,
        alarm: str,
        reason: str,
        publish: Callable[[Event], Event],
    ) -> None:
        self.plan = plan
        self.id = run_id
        self.requested_by = requested_by
        self.alarm = alarm
        self.reason = reason
        self.publish = publish
        self.state = RunState.RUNNING
        self.started = time.time()
        self.finished: float | None = None
        self.log = _RunLog(logger, {"plan": plan.id, "run": run_id})
        self.steps = [_StepRun(self, i) for i in range(len(plan.steps))]
        self.by_id = {s.id: s for s in self.steps}
        self.ended = asyncio.Event()

    def report(self) -> RunReport:
        return RunReport(
            self.id,
            self.plan.id,
            self.plan.title,
            self.state,
            self.requested_by,
            self.alarm,
            self.reason,
            self.started,
            self.finished,
            tuple(s.report() for s in self.steps),
        )


class SceneApplier(Protocol):
    """What the ``apply_scene`` kind needs (``devices.scenes.SceneEngine``)."""

    async def apply(self, scene_id: str, actor: str = "") -> Any: ...


class DeviceCommander(Protocol):
    """What the ``device_command`` kind needs (``hub.equipment.Equipment``)."""

    async def command(self, device_id: str, command: Mapping[str, Any]) -> dict[str, Any]: ...


DEFAULT_TIMEOUT = 120.0
WAIT_MARGIN = 5.0


class PlanEngine:
    """Runs the site's plans: one run at a time per plan, any number of plans at once."""

    def __init__(
        self,
        plans: Iterable[PlanConfig],
        bus: EventBus,
        kinds: StepKinds,
        *,
        keep_runs: int = 200,
    ) -> None:
        self._plans = {p.id: p for p in plans}
        self._bus = bus
        self.kinds = kinds
        self._keep = keep_runs
        self._runs: collections.OrderedDict[str, PlanRun] = collections.OrderedDict()
        self._active: dict[str, PlanRun] = {}  # plan id -> its run in progress
        self._tasks = TaskOwner(logger)
        self._listening = False

    # -- queries ---------------------------------------------------------------------------

    def plans(self) -> list[PlanConfig]:
        return list(self._plans.values())

    def get(self, plan_id: str) -> PlanConfig:
        plan = self._plans.get(plan_id)
        if plan is None:
            known = ", ".join(self._plans) or "none"
            raise PlanNotFound(f"no plan {plan_id!r} (plans: {known})")
        return plan

    def active_run(self, plan_id: str) -> str | None:
        run = self._active.get(plan_id)
        return run.id if run else None

    def last_run(self, plan_id: str) -> RunReport | None:
        for run in reversed(self._runs.values()):
            if run.plan.id == plan_id:
                return run.report()
        return None

    def runs(self, plan_id: str | None = None) -> list[RunReport]:
        """Runs kept in memory (the newest ``keep_runs``), newest first."""
        return [
            r.report()
            for r in reversed(self._runs.values())
            if plan_id is None or r.plan.id == plan_id
        ]

    def run(self, run_id: str) -> RunReport:
        return self._get_run(run_id).report()

    def _get_run(self, run_id: str) -> PlanRun:
        run = self._runs.get(run_id)
        if run is None:
            raise NotFound(
                f"no run {run_id!r} (runs are kept in memory: the newest {self._keep}; "
                "older runs are in the event log as plan.* events)"
            )
        return run

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for ``plan.requested`` (a rule's ``plan`` step)."""
        self._listening = True
        self._tasks.spawn(self._consume(self._subscribe()), "plans-requests")

    async def stop(self) -> None:
        self._listening = False
        await self._tasks.close()
        for run in list(self._active.values()):
            self._finish_cancelled(run)
        await self.kinds.close()

    def _subscribe(self) -> Subscription:
        return self._bus.subscribe(
            "plans", maxsize=10_000, accept=lambda e: isinstance(e, PlanRequested)
        )

    async def _consume(self, subscription: Subscription) -> None:
        while self._listening:
            try:
                async for event in subscription:
                    if isinstance(event, PlanRequested):
                        self._requested(event)
                return
            except SubscriberDropped as err:
                logger.error("plan requests fell behind (%s); resubscribing", err)
                subscription = self._subscribe()

    def _requested(self, event: PlanRequested) -> None:
        try:
            self.launch(event.plan, event.requested_by, alarm=event.alarm, reason=event.reason)
        except PlanError as err:
            logger.warning(
                "plan %r requested by %s not started: %s", event.plan, event.requested_by, err
            )
            self._bus.publish(
                PlanRejected(
                    plan=event.plan,
                    requested_by=event.requested_by,
                    alarm=event.alarm,
                    reason=str(err),
                )
            )

    # -- running ---------------------------------------------------------------------------

    def launch(
        self, plan_id: str, requested_by: str, *, alarm: str = "", reason: str = ""
    ) -> RunReport:
        """Start a run now; returns its first report (``running``). Raises
        :class:`PlanNotFound`, or :class:`PlanBusy` while a run of the plan is going on."""
        plan = self.get(plan_id)
        busy = self._active.get(plan_id)
        if busy is not None:
            raise PlanBusy(f"plan {plan_id!r} is running already (run {busy.id})")
        run = PlanRun(plan, secrets.token_hex(6), requested_by, alarm, reason, self._bus.publish)
        self._active[plan_id] = run
        self._runs[run.id] = run
        while len(self._runs) > self._keep:
            oldest = next(iter(self._runs))
            if self._runs[oldest].state is RunState.RUNNING:
                break
            del self._runs[oldest]
        self._bus.publish(
            PlanStarted(
                run=run.id,
                plan=plan.id,
                name=plan.title,
                requested_by=requested_by,
                alarm=alarm,
                reason=reason,
                steps=[s.id for s in run.steps],
            )
        )
        run.log.info("started by %s (%d steps)", requested_by, len(run.steps))
        self._tasks.spawn(self._execute(run), f"plan-{plan.id}-{run.id}")
        return run.report()

    async def wait(self, run_id: str) -> RunReport:
        """Wait until a run has finished (tests, the CLI)."""
        run = self._get_run(run_id)
        await run.ended.wait()
        return run.report()

    async def _execute(self, run: PlanRun) -> None:
        try:
            await asyncio.gather(*(self._step(run, s) for s in run.steps))
        except asyncio.CancelledError:
            self._finish_cancelled(run)
            raise
        self._finish(run)

    async def _step(self, run: PlanRun, step: _StepRun) -> None:
        for dep in step.step.depends_on:
            await run.by_id[dep].done.wait()
        blocked = [run.by_id[d] for d in step.step.depends_on]
        blocked = [d for d in blocked if d.state is not StepState.OK]
        if blocked:
            why = "; ".join(f"step {d.id!r} {d.state.value}" for d in blocked)
            step.set_state(StepState.SKIPPED, f"depends on {why}", "dependency")
            return
        step.set_state(StepState.RUNNING)
        handler = self.kinds.get(step.step.action)
        if handler is None:
            step.set_state(StepState.FAILED, self.kinds.missing(step.step.action), "unavailable")
            return
        ctx = StepContext(
            run.id, run.plan, step.id, step.step, run.requested_by, run.alarm, run.reason
        )
        limit = _timeout(step.step)
        try:
            async with asyncio.timeout(limit):
                outcome = await handler(ctx)
        except StepFailed as err:
            step.set_state(StepState.FAILED, str(err), err.code, err.data)
        except TimeoutError:
            step.set_state(StepState.FAILED, f"timed out after {limit:g} s", "timeout")
        except asyncio.CancelledError:
            step.set_state(StepState.CANCELLED, "the hub is stopping", "cancelled")
            raise
        except Exception as err:  # a handler bug fails its step, never the run
            run.log.exception("step %s crashed", step.id)
            step.set_state(
                StepState.FAILED, f"handler error: {type(err).__name__}: {err}", "internal"
            )
        else:
            step.set_state(StepState.OK, outcome.detail, "", outcome.data)

    def _finish(self, run: PlanRun) -> None:
        states = [s.state for s in run.steps]
        run.state = (
            RunState.SUCCEEDED if all(s is StepState.OK for s in states) else RunState.FAILED
        )
        self._close(run)

    def _finish_cancelled(self, run: PlanRun) -> None:
        if run.state is not RunState.RUNNING:
            return
        for step in run.steps:
            if step.state not in STEP_DONE:
                step.set_state(StepState.CANCELLED, "the hub is stopping", "cancelled")
        run.state = RunState.CANCELLED
        self._close(run)

    def _close(self, run: PlanRun) -> None:
        run.finished = time.time()
        if self._active.get(run.plan.id) is run:
            del self._active[run.plan.id]
        report = run.report()
        failed = [s.id for s in report.steps if s.state is StepState.FAILED]
        skipped = [s.id for s in report.steps if s.state is StepState.SKIPPED]
        run.log.log(
            logging.INFO if run.state is RunState.SUCCEEDED else logging.WARNING,
            "%s (failed: %s; skipped: %s)",
            run.state.value,
            ", ".join(failed) or "none",
            ", ".join(skipped) or "none",
        )
        run.publish(
            PlanFinished(
                run=run.id,
                plan=run.plan.id,
                state=run.state.value,
                failed=failed,
                skipped=skipped,
                report=report.as_dict(),
            )
        )
        run.ended.set()


def _timeout(step: Any) -> float:
    if step.timeout is not None:
        return float(step.timeout)
    if isinstance(step, WaitStep):
        return step.seconds + WAIT_MARGIN
    return DEFAULT_TIMEOUT


# -- the built-in kinds ------------------------------------------------------------------


class BuiltinSteps:
    """Handlers of ``apply_scene``, ``device_command``, ``notify``, ``webhook``, ``wait``."""

    def __init__(
        self,
        *,
        scenes: SceneApplier,
        devices: DeviceCommander,
        bus: EventBus,
        origin: str = "cchub",
        webhook_timeout: float = 10.0,
    ) -> None:
        self._scenes = scenes
        self._devices = devices
        self._bus = bus
        self._origin = origin
        self._webhook_timeout = webhook_timeout
        self._client: httpx.AsyncClient | None = None

    def register(self, kinds: StepKinds) -> StepKinds:
        kinds.register("apply_scene", self.apply_scene)
        kinds.register("device_command", self.device_command)
        kinds.register("notify", self.notify)
        kinds.register("webhook", self.webhook, close=self.close)
        kinds.register("wait", self.wait)
        return kinds

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def apply_scene(self, ctx: StepContext) -> StepOutcome:
        step: ApplySceneStep = ctx.step
        try:
            report = await self._scenes.apply(step.scene, actor=f"plan:{ctx.plan.id}/{ctx.run}")
        except SceneBusy as err:
            raise StepFailed(str(err), err.code, {"held": err.held}) from None
        except SceneError as err:
            raise StepFailed(str(err), err.code) from None
        data = report.as_dict()
        if not report.ok:
            failed = report.failed_step
            raise StepFailed(report.error, failed.code if failed else "scene", data)
        return StepOutcome(f"scene {step.scene!r} applied ({len(report.steps)} steps)", data)

    async def device_command(self, ctx: StepContext) -> StepOutcome:
        step: DeviceCommandStep = ctx.step
        command = step.device_command()
        try:
            answer = await self._devices.command(step.device, command)
        except DeviceError as err:
            raise StepFailed(str(err), err.code, {"command": command}) from None
        return StepOutcome(f"{step.device} took {step.command}", {"answer": answer})

    async def notify(self, ctx: StepContext) -> StepOutcome:
        step: NotifyStep = ctx.step
        event = self._bus.publish(
            PlanNotified(
                run=ctx.run,
                plan=ctx.plan.id,
                step=ctx.step_id,
                text=step.text or ctx.plan.title,
                level=step.level.value if step.level else "",
                alarm=ctx.alarm,
            )
        )
        return StepOutcome(f"consoles notified (event {event.id})")

    async def webhook(self, ctx: StepContext) -> StepOutcome:
        step: WebhookStep = ctx.step
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._webhook_timeout, follow_redirects=False, trust_env=False
            )
        body = {
            "origin": self._origin,
            "plan": ctx.plan.id,
            "name": ctx.plan.title,
            "run": ctx.run,
            "step": ctx.step_id,
            "requested_by": ctx.requested_by,
            "alarm": ctx.alarm,
            "reason": ctx.reason,
        }
        try:
            response = await self._client.post(step.url, json=body)
        except httpx.HTTPError as err:
            what = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            raise StepFailed(f"{step.url}: {what}", "http-error") from None
        if response.status_code >= 300:
            raise StepFailed(
                f"{step.url}: HTTP {response.status_code}", f"http-{response.status_code}"
            )
        return StepOutcome(f"{step.url}: HTTP {response.status_code}")

    async def wait(self, ctx: StepContext) -> StepOutcome:
        step: WaitStep = ctx.step
        await asyncio.sleep(step.seconds)
        return StepOutcome(f"waited {step.seconds:g} s")
