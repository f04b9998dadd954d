"""A warning core on a hand-driven clock, with a sink that keeps what the core reported."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitoring.actions import ActionRegistry, ActionRequest, ActionResult, ActionRunner
from monitoring.alarms import AlarmSnapshot, AlarmState, AlarmTransition
from monitoring.config import AlarmPolicy, Dependency, Rule
from monitoring.samples import Occurrence, OccurrenceState
from monitoring.warning import WarningCore

T0 = 1_800_000_000.0


class Clock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class Recorder:
    """The core's sink: every transition, quiet update and action result, in order."""

    def __init__(self) -> None:
        self.transitions: list[AlarmTransition] = []
        self.updates: list[AlarmSnapshot] = []
        self.results: list[ActionResult] = []

    def transition(self, transition: AlarmTransition) -> None:
        self.transitions.append(transition)

    def updated(self, alarm: AlarmSnapshot) -> None:
        self.updates.append(alarm)

    def action_result(self, result: ActionResult) -> None:
        self.results.append(result)

    def path(self, alarm_id: str) -> list[str]:
        """The states an alarm went through: ``["normal", "active-unack", ...]``."""
        moves = [t for t in self.transitions if t.alarm.id == alarm_id]
        if not moves:
            return []
        return [moves[0].old.value] + [t.new.value for t in moves]


class Consoles:
    """The ``notify`` action kind: what a console would have been told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, int, str]] = []

    async def __call__(self, request: ActionRequest) -> str:
        self.told.append((request.alarm.id, request.index, request.alarm.level.value))
        return "consoles notified"


class Rig:
    """One core with its clock, sink, consoles and action runner."""

    def __init__(
        self,
        rules: Sequence[dict[str, Any]],
        policy: dict[str, Any] | None = None,
        dependencies: Sequence[dict[str, Any]] = (),
        source_labels: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.clock = Clock()
        self.sink = Recorder()
        self.consoles = Consoles()
        registry = ActionRegistry()
        registry.register("notify", self.consoles)
        self.registry = registry
        self.runner = ActionRunner(registry, self.sink.action_result, clock=self.clock)
        self.core = WarningCore(
            [Rule.model_validate(r) for r in rules],
            AlarmPolicy.model_validate(policy or {}),
            [Dependency.model_validate(d) for d in dependencies],
            sink=self.sink,
            actions=self.runner,
            clock=self.clock,
            source_labels=source_labels,
        )

    def sample(self, metric: str, source: str, value: Any, unit: str = "", **labels: str) -> bool:
        return self.core.submit(metric, source, value, self.clock.now, unit, labels or None)

    def event(self, kind: str, source: str, state: OccurrenceState = OccurrenceState.RAISE) -> None:
        self.core.occur(Occurrence(kind, source, self.clock.now, state))

    def state(self, alarm_id: str) -> AlarmState:
        return self.core.get(alarm_id).state

    def tick(self, seconds: float = 0.0) -> None:
        self.clock.advance(seconds)
        self.core.tick()

    async def settle(self) -> None:
        await self.runner.drain()
