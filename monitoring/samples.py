"""What producers feed the warning core: metric samples and discrete occurrences.

Any producer (device managers, SNMP/Modbus/NUT coordinators, trap and MQTT ingest, HTTP
push) builds these. ``check_sample`` turns whatever arrived into a clean ``Sample`` or
raises ``SampleRejected`` saying why; the core counts and logs rejections.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Labels = Mapping[str, str]
NO_LABELS: Labels = MappingProxyType({})


def freeze_labels(labels: Mapping[str, Any] | None) -> Labels:
    if not labels:
        return NO_LABELS
    return MappingProxyType({str(k): str(v) for k, v in sorted(labels.items())})


@dataclass(frozen=True)
class Sample:
    """One reading of a metric: ``value`` None means "polled, but no value" (not OK)."""

    metric: str
    source: str
    value: float | None
    ts: float
    unit: str = ""
    labels: Labels = field(default_factory=lambda: NO_LABELS)

    @property
    def series(self) -> SeriesKey:
        return SeriesKey(self.metric, self.source, tuple(self.labels.items()))


@dataclass(frozen=True)
class SeriesKey:
    """Identity of one series: metric, source and the producer's labels."""

    metric: str
    source: str
    labels: tuple[tuple[str, str], ...] = ()


class OccurrenceState(enum.Enum):
    """RAISE holds until a matching CLEAR; PULSE (a trap) lapses after a quiet time."""

    RAISE = "raise"
    CLEAR = "clear"
    PULSE = "pulse"


@dataclass(frozen=True)
class Occurrence:
    """A discrete event: "device switch-1 offline", "trap upsOnBattery from 10.0.0.5"."""

    kind: str
    source: str
    ts: float
    state: OccurrenceState = OccurrenceState.RAISE
    message: str = ""
    labels: Labels = field(default_factory=lambda: NO_LABELS)


class Rejection(enum.Enum):
    """Why a sample was refused (the label of the rejected-samples counter)."""

    BAD_FIELD = "bad_field"
    BAD_TYPE = "bad_type"
    NOT_FINITE = "not_finite"
    FUTURE = "future"
    OUT_OF_ORDER = "out_of_order"
    WRONG_UNIT = "wrong_unit"


class SampleRejected(ValueError):
    """A sample the core refuses; ``reason`` classifies it, the message is precise."""

    def __init__(self, reason: Rejection, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _text(name: str, value: Any, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise SampleRejected(Rejection.BAD_FIELD, f"{name} must be a non-empty string: {value!r}")
    return value


def check_sample(
    metric: Any,
    source: Any,
    value: Any,
    ts: Any,
    unit: Any = "",
    labels: Any = None,
    *,
    now: float,
    max_future_skew: float,
) -> Sample:
    """Validate raw fields into a ``Sample``; raise ``SampleRejected`` naming the problem.

    ``value``: a real number or a bool (1/0) or None; never NaN/inf, never text.
    ``ts``: UNIX seconds, at most ``max_future_skew`` ahead of ``now``.
    """
    metric = _text("metric", metric)
    source = _text("source", source)
    unit = _text("unit", unit, empty=True)
    if labels is not None and not isinstance(labels, Mapping):
        raise SampleRejected(Rejection.BAD_FIELD, f"labels must be a mapping: {labels!r}")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise SampleRejected(Rejection.BAD_FIELD, f"timestamp must be UNIX seconds: {ts!r}")
    if ts > now + max_future_skew:
        raise SampleRejected(
            Rejection.FUTURE,
            f"timestamp {ts:.3f} is {ts - now:.0f} s in the future (limit {max_future_skew:g} s)",
        )
    number: float | None
    if value is None:
        number = None
    elif isinstance(value, bool):
        number = 1.0 if value else 0.0
    elif isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise SampleRejected(Rejection.NOT_FINITE, f"value is not a finite number: {value!r}")
    else:
        raise SampleRejected(
            Rejection.BAD_TYPE, f"value must be a number, bool or null, not {type(value).__name__}"
        )
    return Sample(metric, source, number, float(ts), unit, freeze_labels(labels))


def check_occurrence(occurrence: Occurrence) -> None:
    """Raise ``SampleRejected`` if a producer built an occurrence from garbage."""
    _text("kind", occurrence.kind)
    _text("source", occurrence.source)
    if not isinstance(occurrence.state, OccurrenceState):
        what = f"state must be an OccurrenceState: {occurrence.state!r}"
        raise SampleRejected(Rejection.BAD_FIELD, what)
    ts = occurrence.ts
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise SampleRejected(Rejection.BAD_FIELD, f"timestamp must be UNIX seconds: {ts!r}")
    if not isinstance(occurrence.labels, Mapping):
        raise SampleRejected(
            Rejection.BAD_FIELD, f"labels must be a mapping: {occurrence.labels!r}"
        )
