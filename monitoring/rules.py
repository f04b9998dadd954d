"""Rules compiled for evaluation: matching (globs on names and labels) and the per-series
verdict (thresholds with hysteresis, N consecutive breaches, rate of change, no data).

Pure logic: no clock, no I/O. The warning core owns one ``SeriesState`` per rule and series.
"""

from __future__ import annotations

import collections
import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from monitoring.alarms import Condition
from monitoring.config import ActionStep, FlapPolicy, Rule
from monitoring.samples import Occurrence, Sample, SeriesKey

_GLOB = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@:=,+\-]")


def is_glob(pattern: str) -> bool:
    return bool(_GLOB.search(pattern))


class Glob:
    """A compiled shell-style pattern (literal patterns compare as strings)."""

    __slots__ = ("literal", "pattern", "regex")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.literal = not is_glob(pattern)
        self.regex = None if self.literal else re.compile(fnmatch.translate(pattern))

    def __call__(self, text: str) -> bool:
        if self.regex is None:
            return text == self.pattern
        return self.regex.match(text) is not None


def alarm_id(rule: str, source: str, subject: str | None, labels: Mapping[str, str]) -> str:
    """``rule@source`` (+ ``:subject`` for class rules, + ``,k=v`` for labelled series);
    characters unfit for a URL path segment become ``_``."""
    text = f"{rule}@{source}"
    if subject is not None:
        text += f":{subject}"
    for key, value in labels.items():
        text += f",{key}={value}"
    return _UNSAFE.sub("_", text)


@dataclass(frozen=True)
class Verdict:
    """What a sample says: the new condition (None: no change) and how to describe it."""

    condition: Condition | None
    message: str
    value: float | None


@dataclass
class SeriesState:
    """A rule's memory of one series: consecutive breaches, recent points, last arrival."""

    alarm_id: str
    key: SeriesKey
    labels: Mapping[str, str]
    last_seen: float
    last_ts: float = float("-inf")
    breaches: int = 0
    points: collections.deque[tuple[float, float]] = field(default_factory=collections.deque)


class CompiledRule:
    """A site-file rule ready to match and evaluate."""

    def __init__(self, config: Rule, default_flap: FlapPolicy) -> None:
        self.config = config
        self.id = config.id
        self.flap = config.flap or default_flap
        self.steps: list[ActionStep] | None = config.steps
        pattern = config.metric if config.metric is not None else config.event
        assert pattern is not None
        self._subject = Glob(pattern)
        self._source = Glob(config.source)
        self._labels = {k: Glob(v) for k, v in config.labels.items()}
        self.class_rule = not self._subject.literal
        threshold = config.above if config.above is not None else config.below
        self._fire = threshold if threshold is not None else 0.0
        self._clear_at = config.clear if config.clear is not None else self._fire

    @property
    def for_events(self) -> bool:
        return self.config.event is not None

    def matches(self, subject: str, source: str, labels: Mapping[str, str]) -> bool:
        if not self._subject(subject) or not self._source(source):
            return False
        return all(k in labels and glob(labels[k]) for k, glob in self._labels.items())

    def matches_sample(self, sample: Sample, labels: Mapping[str, str]) -> bool:
        return not self.for_events and self.matches(sample.metric, sample.source, labels)

    def matches_occurrence(self, occurrence: Occurrence, labels: Mapping[str, str]) -> bool:
        return self.for_events and self.matches(occurrence.kind, occurrence.source, labels)

    def alarm_id_for(self, source: str, subject: str, labels: Mapping[str, str]) -> str:
        return alarm_id(self.id, source, subject if self.class_rule else None, labels)

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, state: SeriesState, sample: Sample, active: bool) -> Verdict:
        """The verdict of one accepted sample; ``active``: the alarm's condition is active."""
        cfg = self.config
        if sample.value is None:
            return Verdict(None, f"{sample.metric}: the source gave no value", None)
        state.last_ts = sample.ts
        x = sample.value
        what = f"{sample.metric} on {sample.source}"
        unit = f" {sample.unit}" if sample.unit else ""
        if cfg.of == "rate":
            rate = self._rate(state, sample.ts, x)
            if rate is None:
                return Verdict(None, f"{what}: rate needs a second point", x)
            x, what, unit = rate, f"rate of {what}", f"{unit}/min" if unit else "/min"
        if cfg.above is None and cfg.below is None:  # a staleness-only rule: data is OK
            return Verdict(Condition.NORMAL, f"{what} = {x:g}{unit}", x)
        above = cfg.above is not None
        if active:
            cleared = x < self._clear_at if above else x > self._clear_at
            if cleared:
                state.breaches = 0
                return Verdict(Condition.NORMAL, f"{what} = {x:g}{unit} (cleared)", x)
            return Verdict(Condition.ACTIVE, self._describe(what, x, unit), x)
        breach = x >= self._fire if above else x <= self._fire
        if not breach:
            state.breaches = 0
            return Verdict(Condition.NORMAL, f"{what} = {x:g}{unit}", x)
        state.breaches += 1
        if state.breaches < cfg.consecutive:
            return Verdict(
                Condition.NORMAL,
                f"{what} = {x:g}{unit}: breach {state.breaches} of {cfg.consecutive}",
                x,
            )
        return Verdict(Condition.ACTIVE, self._describe(what, x, unit), x)

    def _describe(self, what: str, x: float, unit: str) -> str:
        side = "above" if self.config.above is not None else "below"
        return f"{what} = {x:g}{unit} ({side} {self._fire:g})"

    def _rate(self, state: SeriesState, ts: float, x: float) -> float | None:
        """Change per minute between this point and the oldest one within ``rate_window``."""
        points = state.points
        points.append((ts, x))
        horizon = ts - self.config.rate_window
        while len(points) > 2 and points[1][0] <= horizon:
            points.popleft()
        first_ts, first = points[0]
        if len(points) < 2 or ts - first_ts <= 0:
            return None
        return (x - first) / (ts - first_ts) * 60.0
