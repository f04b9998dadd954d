"""Scenes (一键场景): named sets of device commands applied in order, each verified from the
device's state, rolled back in reverse order when one fails, with a per-step report.

The site file describes scenes (:class:`SceneConfig`); :class:`SceneEngine` applies them
through the device manager's queues. Capabilities (``devices.capabilities``) say how to
verify a command from a snapshot and which command restores the state before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devices.base import Device
from devices.capabilities import REFRESH, Capability, capabilities_of, capability_for
from devices.config import DeviceConfig, Model, Name
from devices.errors import DeviceError, InvalidCommand
from devices.registry import driver_for
from devices.snapshot import DeviceSnapshot
from devices.tasks import TaskOwner

logger = logging.getLogger(__name__)

KeyPath = tuple[str | int, ...]

# keys of a step that belong to the scene, not to the device command
STEP_KEYS = ("device", "command", "parallel_group", "verify_timeout")


# --- site file ---------------------------------------------------------------------------


class OnFailure(enum.StrEnum):
    ROLLBACK = "rollback"  # undo the steps already applied, newest first
    STOP = "stop"  # leave the applied steps as they are, skip the rest
    CONTINUE = "continue"  # go on with the next steps


class SceneStep(BaseModel):
    """``{device, command, ...args}``: the args are the device command's own fields."""

    model_config = ConfigDict(extra="allow", frozen=True)

    device: Name
    command: str = Field(min_length=1)
    parallel_group: str | int | None = Field(
        None, description="contiguous steps with the same group run together"
    )
    verify_timeout: float | None = Field(None, gt=0, le=600, description="overrides the scene's")

    def device_command(self) -> dict[str, Any]:
        """The command dict the device receives (``{"command": "route", "input": 3, ...}``)."""
        return {"command": self.command, **(self.model_extra or {})}


class SceneConfig(Model):
    id: Name
    name: str = ""
    steps: list[SceneStep] = Field(min_length=1)
    verify_timeout: float = Field(5.0, gt=0, le=600, description="s for a step to show in state")
    on_failure: OnFailure = OnFailure.ROLLBACK

    @property
    def devices(self) -> tuple[str, ...]:
        """The devices the scene touches, in first-use order."""
        return tuple(dict.fromkeys(step.device for step in self.steps))


def check_scenes(
    scenes: Sequence[SceneConfig], devices: Sequence[DeviceConfig]
) -> list[tuple[KeyPath, str]]:
    """Cross-check scenes against the site's devices: each problem with its key path.

    Finds unknown devices, commands outside the device's capability vocabulary, bad
    command arguments, and parallel groups that are not contiguous.
    """
    configs = {d.id: d for d in devices}
    drivers = _Drivers(configs)
    problems: list[tuple[KeyPath, str]] = []
    for i, scene in enumerate(scenes):
        closed: set[str | int] = set()
        previous: str | int | None = None
        for j, step in enumerate(scene.steps):
            path: KeyPath = ("scenes", i, "steps", j)
            group = step.parallel_group
            if group != previous and previous is not None:
                closed.add(previous)
            if group is not None and group in closed:
                problems.append(
                    (
                        (*path, "parallel_group"),
                        f"group {group!r} must be contiguous (it was interrupted by another step)",
                    )
                )
            previous = group
            problems += _check_step(path, step, configs, drivers)
    return problems


class _Drivers:
    """Drivers built (no I/O) only to check commands against a device's own limits: its
    options (outputs, presets) and, for declarative devices, what the profile maps."""

    def __init__(self, configs: Mapping[str, DeviceConfig]) -> None:
        self._configs = configs
        self._built: dict[str, Device[Any] | None] = {}

    def check(self, device: str, command: Mapping[str, Any]) -> str | None:
        """Why the device would refuse ``command`` (None: it would take it)."""
        if device not in self._built:
            config = self._configs[device]
            try:
                self._built[device] = driver_for(config.type)(config)
            except DeviceError:
                self._built[device] = None  # bad options are reported when the hub starts
        driver = self._built[device]
        if driver is None:
            return None
        try:
            driver._prepare(command)  # the driver's own validation, nothing is sent
        except InvalidCommand as err:
            return str(err)
        return None


def _check_step(
    path: KeyPath, step: SceneStep, configs: Mapping[str, DeviceConfig], drivers: _Drivers
) -> list[tuple[KeyPath, str]]:
    config = configs.get(step.device)
    if config is None:
        known = ", ".join(configs) or "none are configured"
        return [((*path, "device"), f"unknown device {step.device!r} (devices: {known})")]
    type_name = config.type
    capabilities = capabilities_of(type_name)
    capability = capability_for(capabilities, step.command)
    if capability is None:
        names = sorted({n for c in capabilities for n in c.command_names()})
        legal = f"commands: {', '.join(names)}" if names else "it takes no commands"
        return [
            (
                (*path, "command"),
                f"{step.device} ({type_name}) has no command {step.command!r} ({legal})",
            )
        ]
    model = capability.model_for(step.command)
    assert model is not None
    try:
        model.model_validate(step.device_command())
    except ValidationError as err:
        fields = [f for f in model.model_fields if f != "command"]
        out = []
        for error in err.errors():
            where = (*path, *error["loc"])
            if error["type"] == "extra_forbidden":
                message = (
                    f"not an argument of {step.command!r} "
                    f"(arguments: {', '.join(fields) or 'none'}; step keys: {', '.join(STEP_KEYS)})"
                )
            elif error["type"] == "missing":
                message = f"required by {step.command!r}"
            else:
                message = f"{_phrase(error)}, got {error['input']!r}"
            out.append((where, message))
        return out
    refusal = drivers.check(step.device, step.device_command())
    if refusal is not None:
        return [((*path, "command"), f"{step.device} would refuse it: {refusal}")]
    return []


_BOUNDS = {
    "greater_than_equal": ">=",
    "less_than_equal": "<=",
    "greater_than": ">",
    "less_than": "<",
}


def _phrase(error: Any) -> str:
    """A pydantic error in the site file's words (``must be >= 0``)."""
    kind, ctx = error["type"], error.get("ctx", {})
    if kind in _BOUNDS:
        return f"must be {_BOUNDS[kind]} {next(iter(ctx.values()))}"
    if kind == "literal_error":
        return f"expected one of {ctx['expected']}"
    message: str = error["msg"]
    return message.removeprefix("Value error, ")


# --- reports -----------------------------------------------------------------------------


class StepStatus(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    SKIPPED = "skipped"


class Outcome(enum.StrEnum):
    APPLIED = "applied"  # every step verified
    ROLLED_BACK = "rolled_back"  # a step failed; every applied step was restored
    ROLLBACK_FAILED = "rollback_failed"  # a step failed and some could not be restored
    STOPPED = "stopped"  # a step failed; on_failure: stop left the rest undone
    PARTIAL = "partial"  # on_failure: continue; some steps failed


@dataclass(frozen=True)
class Rollback:
    """How a step was undone: ``command`` None when the state needed no restoring."""

    command: dict[str, Any] | None
    ok: bool
    code: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.command, "ok": self.ok, "code": self.code, "error": self.error}


@dataclass(frozen=True)
class StepResult:
    index: int
    device: str
    command: dict[str, Any]
    status: StepStatus
    code: str = ""  # the device's own code (E13, ERR003) or the engine's (verify-timeout)
    error: str = ""
    answer: dict[str, Any] = field(default_factory=dict)
    rollback: Rollback | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "device": self.device,
            "command": self.command,
            "status": self.status.value,
            "code": self.code,
            "error": self.error,
            "answer": self.answer,
            "rollback": self.rollback.as_dict() if self.rollback else None,
            "seconds": round(self.seconds, 4),
        }


@dataclass(frozen=True)
class SceneReport:
    scene: str
    name: str
    actor: str
    outcome: Outcome
    steps: tuple[StepResult, ...]
    started: float  # wall clock
    seconds: float

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.APPLIED

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if s.status is StepStatus.FAILED), None)

    @property
    def error(self) -> str:
        """One sentence: which step failed and why, and what became of the others."""
        failed = self.failed_step
        if failed is None:
            return ""
        what = f"step {failed.index} ({failed.device} {failed.command.get('command')})"
        text = f"{what} failed: {failed.error}"
        if self.outcome is Outcome.ROLLED_BACK:
            text += "; the steps applied before were rolled back"
        elif self.outcome is Outcome.ROLLBACK_FAILED:
            bad = [s.index for s in self.steps if s.status is StepStatus.ROLLBACK_FAILED]
            if failed.rollback is not None and not failed.rollback.ok:
                bad.append(failed.index)
            text += f"; rollback failed for step(s) {', '.join(map(str, sorted(bad)))}"
        elif self.outcome is Outcome.STOPPED:
            text += "; the remaining steps were skipped"
        return text

    def as_dict(self) -> dict[str, Any]:
        failed = self.failed_step
        return {
            "scene": self.scene,
            "name": self.name,
            "actor": self.actor,
            "outcome": self.outcome.value,
            "ok": self.ok,
            "failed_step": failed.index if failed else None,
            "error": self.error,
            "started": self.started,
            "seconds": round(self.seconds, 4),
            "steps": [s.as_dict() for s in self.steps],
        }


# --- errors ------------------------------------------------------------------------------


class SceneError(DeviceError):
    """Root of the scene errors (a scene is device work)."""

    code = "scene"


class SceneNotFound(SceneError, KeyError):
    code = "not-found"

    def __init__(self, scene_id: str, known: Sequence[str]) -> None:
        self.scene_id = scene_id
        self.known = list(known)
        super().__init__(scene_id)

    def __str__(self) -> str:
        return f"no scene {self.scene_id!r} (scenes: {', '.join(self.known) or 'none'})"


class SceneBusy(SceneError):
    """Another scene application holds some of this scene's devices; nothing was sent."""

    code = "busy"

    def __init__(self, scene_id: str, held: Mapping[str, str]) -> None:
        self.scene_id = scene_id
        self.held = dict(held)
        by = ", ".join(f"{dev} (by scene {scene!r})" for dev, scene in self.held.items())
        super().__init__(f"scene {scene_id!r} cannot start: devices in use: {by}")


# --- engine ------------------------------------------------------------------------------


class SceneTarget(Protocol):
    """What the engine needs from the device manager (``devices.manager.DeviceManager``)."""

    def snapshots(self) -> dict[str, DeviceSnapshot]: ...

    def add_listener(self, cb: Callable[[DeviceSnapshot], None]) -> None: ...

    async def command(self, device_id: str, command: Mapping[str, Any]) -> dict[str, Any]: ...


class SceneObserver(Protocol):
    """Told when an application starts and ends (the hub publishes events from this)."""

    def scene_started(self, scene: SceneConfig, actor: str) -> None: ...

    def scene_finished(self, report: SceneReport) -> None: ...


class _SceneLog(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[scene={self.extra['scene'] if self.extra else '?'}] {msg}", kwargs


@dataclass
class _Run:
    """One step while the scene runs (frozen into a :class:`StepResult` at the end)."""

    index: int
    step: SceneStep
    command: dict[str, Any]
    timeout: float
    status: StepStatus = StepStatus.SKIPPED
    capability: type[Capability] | None = None
    before: Mapping[str, Any] | None = None
    accepted: bool = False  # the device took the command (so rollback must undo it)
    code: str = ""
    error: str = ""
    answer: dict[str, Any] = field(default_factory=dict)
    rollback: Rollback | None = None
    seconds: float = 0.0

    def fail(self, code: str, error: str) -> None:
        self.status, self.code, self.error = StepStatus.FAILED, code, error

    def result(self) -> StepResult:
        return StepResult(
            self.index,
            self.step.device,
            self.command,
            self.status,
            self.code,
            self.error,
            self.answer,
            self.rollback,
            self.seconds,
        )


class SceneEngine:
    """Applies the site's scenes, one application at a time per device."""

    def __init__(
        self,
        target: SceneTarget,
        scenes: Sequence[SceneConfig],
        observer: SceneObserver | None = None,
    ) -> None:
        self._target = target
        self._scenes = {scene.id: scene for scene in scenes}
        self._observer = observer
        self._held: dict[str, str] = {}  # device -> scene applying to it now
        self._last: dict[str, SceneReport] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._tasks = TaskOwner(logger)
        target.add_listener(self._on_snapshot)

    # -- queries --------------------------------------------------------------------------

    def scenes(self) -> list[SceneConfig]:
        return list(self._scenes.values())

    def get(self, scene_id: str) -> SceneConfig:
        try:
            return self._scenes[scene_id]
        except KeyError:
            raise SceneNotFound(scene_id, list(self._scenes)) from None

    def running(self, scene_id: str) -> bool:
        return scene_id in self._held.values()

    def last_report(self, scene_id: str) -> SceneReport | None:
        return self._last.get(scene_id)

    # -- applying -------------------------------------------------------------------------

    async def apply(self, scene_id: str, actor: str = "") -> SceneReport:
        """Apply a scene and return its report (a failed step is a report, not an error).

        Raises :class:`SceneNotFound`, or :class:`SceneBusy` when another application
        holds one of its devices. The application runs to its end (rollback included)
        even if the caller stops waiting.
        """
        scene = self.get(scene_id)
        held = {d: self._held[d] for d in scene.devices if d in self._held}
        if held:
            raise SceneBusy(scene_id, held)
        for device in scene.devices:
            self._held[device] = scene_id
        task = self._tasks.spawn(self._run(scene, actor), f"scene-{scene_id}")
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Cancel applications in progress (the hub is stopping)."""
        await self._tasks.close()

    async def _run(self, scene: SceneConfig, actor: str) -> SceneReport:
        log = _SceneLog(logger, {"scene": scene.id})
        try:
            self._notify("scene_started", scene, actor)
            log.info("applying (%d steps) for %s", len(scene.steps), actor or "?")
            report = await self._apply_steps(scene, actor, log)
            self._last[scene.id] = report
            if report.ok:
                log.info("applied in %.2f s", report.seconds)
            else:
                log.warning("%s: %s", report.outcome.value, report.error)
            self._notify("scene_finished", report)
            return report
        finally:
            for device in scene.devices:
                if self._held.get(device) == scene.id:
                    del self._held[device]

    async def _apply_steps(
        self, scene: SceneConfig, actor: str, log: logging.LoggerAdapter[logging.Logger]
    ) -> SceneReport:
        started, t0 = time.time(), time.monotonic()
        runs = [
            _Run(i, step, step.device_command(), step.verify_timeout or scene.verify_timeout)
            for i, step in enumerate(scene.steps)
        ]
        failed = False
        for group in _groups(runs):
            if failed and scene.on_failure is not OnFailure.CONTINUE:
                break  # the rest stay "skipped"
            await asyncio.gather(*(self._apply_step(run, log) for run in group))
            failed = failed or any(run.status is StepStatus.FAILED for run in group)
        if failed and scene.on_failure is OnFailure.ROLLBACK:
            for run in reversed(runs):
                if run.accepted:
                    await self._roll_back(run, log)
        return SceneReport(
            scene.id,
            scene.name,
            actor,
            _outcome(scene.on_failure, runs),
            tuple(run.result() for run in runs),
            started,
            time.monotonic() - t0,
        )

    async def _apply_step(self, run: _Run, log: logging.LoggerAdapter[logging.Logger]) -> None:
        t0 = time.monotonic()
        device = run.step.device
        try:
            snapshot = self._target.snapshots().get(device)
            if snapshot is None:
                run.fail("not-found", f"no device {device!r}")
                return
            run.before = snapshot.state
            run.capability = capability_for(capabilities_of(snapshot.type), run.step.command)
            if run.capability is None:
                run.fail("invalid-command", f"{snapshot.type} has no command {run.step.command!r}")
                return
            try:
                run.answer = await self._target.command(device, run.command)
            except DeviceError as err:
                run.fail(err.code, str(err))
                return
            run.accepted = True
            if await self._verified(device, run.capability, run.command, run.timeout):
                run.status = StepStatus.OK
            else:
                run.fail("verify-timeout", self._unverified(device, run.command, run.timeout))
        except Exception as err:  # a driver or capability bug must not strand the scene
            log.exception("step %d (%s) failed unexpectedly", run.index, device)
            run.fail("internal", f"unexpected error: {err}")
        finally:
            run.seconds = time.monotonic() - t0
            log.debug("step %d %s %s: %s %s", run.index, device, run.command, run.status, run.code)

    async def _roll_back(self, run: _Run, log: logging.LoggerAdapter[logging.Logger]) -> None:
        undone = StepStatus.ROLLED_BACK if run.status is StepStatus.OK else run.status
        not_undone = StepStatus.ROLLBACK_FAILED if run.status is StepStatus.OK else run.status
        capability, before = run.capability, run.before
        assert capability is not None and before is not None
        device = run.step.device
        try:
            if capability.verify(run.command, before):
                # the device already was in this state before the step: nothing to restore
                run.rollback, run.status = Rollback(None, True), undone
                return
            inverse = capability.inverse(run.command, before)
            if inverse is None:
                run.rollback = Rollback(
                    None,
                    False,
                    "no-inverse",
                    f"the state of {device} before this step is not known well enough to "
                    f"restore it ({capability.name} cannot invert {run.command})",
                )
                run.status = not_undone
                return
            try:
                await self._target.command(device, inverse)
            except DeviceError as err:
                run.rollback, run.status = Rollback(inverse, False, err.code, str(err)), not_undone
                return
            if await self._verified(device, capability, inverse, run.timeout):
                run.rollback, run.status = Rollback(inverse, True), undone
            else:
                message = self._unverified(device, inverse, run.timeout)
                run.rollback, run.status = (
                    Rollback(inverse, False, "verify-timeout", message),
                    (not_undone),
                )
        except Exception as err:  # loop boundary: keep rolling back the other steps
            log.exception("rolling back step %d (%s) failed unexpectedly", run.index, device)
            run.rollback = Rollback(None, False, "internal", f"unexpected error: {err}")
            run.status = not_undone
        finally:
            log.info("step %d rolled back: %s", run.index, run.rollback)

    @staticmethod
    def _unverified(device: str, command: Mapping[str, Any], timeout: float) -> str:
        return f"{device} took {command} but its state did not show it within {timeout:g} s"

    async def _verified(
        self,
        device: str,
        capability: type[Capability],
        command: Mapping[str, Any],
        within: float,
    ) -> bool:
        """Wait until the device's snapshot satisfies ``capability.verify``.

        Devices may confirm late (next poll, an unsolicited report); if the snapshot has
        not confirmed halfway through ``within`` s, ask the device for a fresh poll once.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        refresh_at = loop.time() + within / 2
        refreshed = False
        changed = asyncio.Event()
        self._waiters.setdefault(device, set()).add(changed)
        try:
            while True:
                changed.clear()
                snapshot = self._target.snapshots().get(device)
                if (
                    snapshot is not None
                    and snapshot.online
                    and capability.verify(command, snapshot.state)
                ):
                    return True
                now = loop.time()
                if now >= deadline:
                    return False
                if not refreshed and now >= refresh_at:
                    refreshed = True
                    with contextlib.suppress(DeviceError, TimeoutError):
                        async with asyncio.timeout(deadline - now):
                            await self._target.command(device, {"command": REFRESH})
                    continue
                wake = deadline if refreshed else min(deadline, refresh_at)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wake - now):
                        await changed.wait()
        finally:
            waiters = self._waiters.get(device)
            if waiters is not None:
                waiters.discard(changed)
                if not waiters:
                    del self._waiters[device]

    def _on_snapshot(self, snapshot: DeviceSnapshot) -> None:
        for event in self._waiters.get(snapshot.id, ()):
            event.set()

    def _notify(self, method: str, *args: Any) -> None:
        if self._observer is None:
            return
        try:
            getattr(self._observer, method)(*args)
        except Exception:
            logger.exception("scene observer %s failed", method)


def _groups(runs: list[_Run]) -> Iterator[list[_Run]]:
    """Contiguous steps with the same ``parallel_group`` together; others one by one."""
    group: list[_Run] = []
    for run in runs:
        key = run.step.parallel_group
        if group and (key is None or key != group[0].step.parallel_group):
            yield group
            group = []
        group.append(run)
    if group:
        yield group


def _outcome(on_failure: OnFailure, runs: list[_Run]) -> Outcome:
    if not any(run.status is StepStatus.FAILED for run in runs):
        return Outcome.APPLIED
    if on_failure is OnFailure.STOP:
        return Outcome.STOPPED
    if on_failure is OnFailure.CONTINUE:
        return Outcome.PARTIAL
    unrestored = any(
        run.status is StepStatus.ROLLBACK_FAILED
        or (run.rollback is not None and not run.rollback.ok)
        for run in runs
    )
    return Outcome.ROLLBACK_FAILED if unrestored else Outcome.ROLLED_BACK
