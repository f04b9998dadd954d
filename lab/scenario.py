"""Scenario files: faults and front-panel changes scripted over time against a running bench.

Each step fires ``at`` seconds after the start: ``fault:`` (optionally ``for:`` seconds),
``clear:`` a fault kind or ``all``, or ``set:`` state values.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.config import validate_yaml
from hub.errors import ConfigError
from hub.yamlsource import load_yaml
from lab.faults import FaultKind, FaultSpec

if TYPE_CHECKING:
    from lab.bench import Bench

logger = logging.getLogger(__name__)


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    at: float = Field(ge=0, description="seconds after the scenario starts")
    device: str
    fault: FaultSpec | None = None
    for_: float | None = Field(None, alias="for", gt=0, description="fault clears after this")
    clear: FaultKind | Literal["all"] | None = None
    set: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        actions = [a for a in (self.fault, self.clear, self.set) if a is not None]
        if len(actions) != 1:
            raise ValueError("a step needs exactly one of 'fault', 'clear' or 'set'")
        return self


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str
    description: str = ""
    steps: list[Step] = Field(min_length=1)


class ScenarioError(ConfigError):
    """The scenario file is invalid; ``problems`` lists each finding with key path and line."""


def load_scenario(path: Path | str) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError([f"cannot read scenario: {err.strerror}"], str(path)) from err
    return validate_yaml(load_yaml(text), Scenario, ScenarioError, str(path))


async def run_scenario(bench: Bench, scenario: Scenario) -> None:
    """Play the steps in time order; a step naming an unknown device is logged and skipped."""
    start = time.monotonic()
    for step in sorted(scenario.steps, key=lambda s: s.at):
        wait = start + step.at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            await apply_step(bench, step)
        except Exception as err:  # one bad step never stops the scenario or the bench
            logger.error("[scenario=%s] step at %.1f s failed: %s", scenario.scenario, step.at, err)
    logger.info("[scenario=%s] done", scenario.scenario)


async def apply_step(bench: Bench, step: Step) -> None:
    logger.info("[scenario] t=%.1f %s: %s", step.at, step.device, _summary(step))
    if step.fault is not None:
        spec = step.fault
        if step.for_ is not None:
            spec = spec.model_copy(update={"duration": step.for_})
        bench.inject(step.device, spec)
    elif step.clear is not None:
        bench.clear(step.device, None if step.clear == "all" else FaultKind(step.clear))
    elif step.set is not None:
        await bench.set_state(step.device, step.set)


def _summary(step: Step) -> str:
    if step.fault is not None:
        return f"fault {step.fault.kind.value}"
    if step.clear is not None:
        return f"clear {step.clear}"
    return f"set {step.set}"
