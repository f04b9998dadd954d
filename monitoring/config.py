"""Site-file models of the warning core: rules, actions, alarm policy and dependencies.

The hub's site-file loader embeds these (``rules:``, ``alarm:``, ``dependencies:``); the
warning core receives them as they are.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from devices.config import Model, Name


class WarningLevel(enum.StrEnum):
    """The four warning levels (预警级别), lowest first: blue < yellow < orange < red."""

    BLUE = "blue"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {level: i for i, level in enumerate(WarningLevel)}

Seconds = Annotated[float, Field(gt=0)]


class ActionStep(Model):
    """One step of an alarm's response; ``after`` seconds from annunciation, if still unacked.

    ``notify`` puts an event on the bus for consoles, ``webhook`` POSTs the alarm as JSON,
    ``plan`` asks for a plan (预案) to start, ``trap`` forwards to the NMS, ``sms`` texts.
    """

    do: Literal["notify", "webhook", "trap", "plan", "sms"]
    after: float = Field(0.0, ge=0, description="seconds after annunciation")
    url: str | None = Field(None, pattern=r"^https?://")
    plan: Name | None = None
    to: list[str] = Field([], description="sms: numbers or roster roles")
    target: str | None = Field(None, description="trap: the NMS address")

    @model_validator(mode="after")
    def _needs(self) -> ActionStep:
        if self.do == "webhook" and self.url is None:
            raise ValueError("a webhook step needs 'url'")
        if self.do == "plan" and self.plan is None:
            raise ValueError("a plan step needs 'plan'")
        return self


def _ordered(steps: list[ActionStep]) -> None:
    afters = [s.after for s in steps]
    if afters != sorted(afters):
        raise ValueError("action steps must be listed in the order of their 'after'")


class FlapPolicy(Model):
    """``changes`` condition changes within ``window`` seconds make an alarm flapping."""

    changes: int = Field(6, ge=2)
    window: Seconds = 600.0


class Rule(Model):
    """A warning rule over samples (``metric``) or over discrete events (``event``).

    Thresholds: a breach is ``value >= above`` or ``value <= below``; an active alarm
    clears only when the value is back past ``clear`` (hysteresis; default: the threshold).
    ``of: rate`` applies the thresholds to the change per minute over ``rate_window``.
    """

    id: Name
    description: str = ""
    metric: str | None = Field(None, min_length=1, description="glob over metric names")
    event: str | None = Field(None, min_length=1, description="glob over event kinds")
    source: str = Field("*", min_length=1, description="glob over source names")
    labels: dict[str, str] = Field({}, description="label name -> glob")
    unit: str | None = Field(None, description="samples must carry this unit")
    of: Literal["value", "rate"] = "value"
    rate_window: Seconds = 60.0
    above: float | None = None
    below: float | None = None
    clear: float | None = None
    consecutive: int = Field(1, ge=1)
    stale_after: Seconds | None = None
    clear_after: Seconds | None = Field(
        None, description="events: a one-shot event's condition lapses after this quiet time"
    )
    level: WarningLevel = WarningLevel.BLUE
    latch: bool = False
    impairs: bool = Field(False, description="while active, what sits behind the source suffers")
    unreachable: bool = Field(False, description="means the source is unreachable (suppressible)")
    flap: FlapPolicy | None = None
    actions: list[ActionStep] | None = None
    plan: Name | None = Field(None, description="shorthand for a 'plan' action step")

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if (self.metric is None) == (self.event is None):
            raise ValueError("a rule needs either 'metric' or 'event'")
        thresholds = self.above is not None or self.below is not None
        if self.metric is not None and not thresholds and self.stale_after is None:
            raise ValueError("a rule needs 'above' or 'below'")
        if self.event is not None and (thresholds or self.stale_after is not None):
            raise ValueError("an event rule takes no thresholds and no 'stale_after'")
        if self.above is not None and self.below is not None:
            raise ValueError("a rule has 'above' or 'below', not both (write two rules)")
        if self.clear is not None:
            if self.above is not None and self.clear > self.above:
                raise ValueError(f"'clear' ({self.clear:g}) must be <= 'above' ({self.above:g})")
            if self.below is not None and self.clear < self.below:
                raise ValueError(f"'clear' ({self.clear:g}) must be >= 'below' ({self.below:g})")
            if not thresholds:
                raise ValueError("'clear' needs 'above' or 'below'")
        if self.actions is not None:
            _ordered(self.actions)
        return self

    @property
    def steps(self) -> list[ActionStep] | None:
        """The rule's own steps (``plan:`` appended as a plan step), or None for defaults."""
        if self.plan is None:
            return self.actions
        base = list(self.actions) if self.actions is not None else [ActionStep(do="notify")]
        return [*base, ActionStep(do="plan", plan=self.plan)]


class Escalation(Model):
    """``count`` alarms of ``level`` raised within ``within`` s with the same ``by`` label
    make one alarm of level ``to``."""

    id: Name
    level: WarningLevel
    count: int = Field(ge=2)
    within: Seconds = 600.0
    by: str | None = Field("site", description="label to group by; null: the whole centre")
    to: WarningLevel

    @model_validator(mode="after")
    def _upwards(self) -> Escalation:
        if self.to.rank <= self.level.rank:
            raise ValueError(f"'to' ({self.to}) must be above 'level' ({self.level})")
        return self


class WebhookPolicy(Model):
    timeout: Seconds = 5.0
    attempts: int = Field(3, ge=1, le=10)
    backoff: float = Field(1.0, ge=0, description="first retry delay, doubled each time")


class AlarmPolicy(Model):
    """Site-wide alarm handling: dedupe, flapping, bad-sample limits, default actions."""

    dedupe_window: Seconds = 300.0
    max_future_skew: Seconds = 60.0
    max_shelve: Seconds = 86400.0
    tick: Annotated[float, Field(gt=0, le=10)] = 1.0
    retention: Seconds = Field(
        30 * 86400.0,
        description="seconds a normal alarm (cleared and acknowledged) is kept with its history",
    )
    flap: FlapPolicy = FlapPolicy()
    actions: dict[WarningLevel, list[ActionStep]] = {}
    escalations: list[Escalation] = []
    webhook: WebhookPolicy = WebhookPolicy()

    @model_validator(mode="after")
    def _steps_ordered(self) -> AlarmPolicy:
        for steps in self.actions.values():
            _ordered(steps)
        return self


class Dependency(Model):
    """``children`` sit behind ``parent`` (powered by it, carried by it)."""

    parent: Name
    children: list[Name] = Field(min_length=1)
    via: Literal["power", "network", "other"] = "other"


def dependency_problems(dependencies: list[Dependency]) -> list[str]:
    """Cycles in the dependency graph, as messages (``[]`` when it is a forest/DAG)."""
    edges: dict[str, set[str]] = {}
    for dep in dependencies:
        edges.setdefault(dep.parent, set()).update(dep.children)
    problems: list[str] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            problems.append("dependencies: cycle " + " -> ".join(cycle))
            return
        if node in done:
            return
        for child in sorted(edges.get(node, ())):
            visit(child, [*path, node])
        done.add(node)

    for root in sorted(edges):
        visit(root, [])
    return sorted(set(problems))
