"""Recent metric series in memory (a bounded ring per series) and their 1-minute roll-ups
(min/avg/max/count), handed to the store as each minute closes."""

from __future__ import annotations

import collections
import fnmatch
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from monitoring.samples import Sample, SeriesKey
from monitoring.targets import SeriesPolicy

MINUTE = 60.0


@dataclass(frozen=True)
class Point:
    ts: float
    value: float


@dataclass(frozen=True)
class Rollup:
    """One minute of one series: ``minute`` is the UNIX time the minute starts."""

    metric: str
    source: str
    labels: tuple[tuple[str, str], ...]
    unit: str
    minute: float
    min: float
    avg: float
    max: float
    count: int


class _Bucket:
    __slots__ = ("count", "high", "low", "minute", "total")

    def __init__(self, minute: float, value: float) -> None:
        self.minute = minute
        self.low = self.high = self.total = value
        self.count = 1

    def add(self, value: float) -> None:
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        self.total += value
        self.count += 1


class Series:
    """One series: its unit, its recent points (oldest first) and the open minute."""

    __slots__ = ("_bucket", "key", "last_ts", "points", "unit")

    def __init__(self, key: SeriesKey, unit: str, capacity: int) -> None:
        self.key = key
        self.unit = unit
        self.points: collections.deque[Point] = collections.deque(maxlen=capacity)
        self.last_ts = float("-inf")
        self._bucket: _Bucket | None = None

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.key.labels)

    @property
    def last(self) -> Point | None:
        return self.points[-1] if self.points else None

    def add(self, ts: float, value: float) -> Rollup | None:
        """Append a point; returns the roll-up of the minute this point closed, if any."""
        self.points.append(Point(ts, value))
        self.last_ts = ts
        minute = ts - ts % MINUTE
        bucket = self._bucket
        if bucket is not None and bucket.minute == minute:
            bucket.add(value)
            return None
        self._bucket = _Bucket(minute, value)
        return self._close(bucket) if bucket is not None else None

    def close_before(self, now: float) -> Rollup | None:
        """The open minute's roll-up if that minute is over by ``now``."""
        bucket = self._bucket
        if bucket is None or bucket.minute + MINUTE > now:
            return None
        self._bucket = None
        return self._close(bucket)

    def _close(self, bucket: _Bucket) -> Rollup:
        key = self.key
        return Rollup(
            key.metric,
            key.source,
            key.labels,
            self.unit,
            bucket.minute,
            bucket.low,
            bucket.total / bucket.count,
            bucket.high,
            bucket.count,
        )

    def window(self, since: float | None = None, until: float | None = None) -> list[Point]:
        lo = float("-inf") if since is None else since
        hi = float("inf") if until is None else until
        return [p for p in self.points if lo <= p.ts <= hi]


@dataclass
class SeriesStats:
    points: int = 0
    refused_new_series: int = 0
    rollups: int = 0


class SeriesStore:
    """Every series the hub has seen recently; bounded in series and in points per series."""

    def __init__(
        self,
        policy: SeriesPolicy,
        on_rollups: Callable[[list[Rollup]], None] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self._on_rollups = on_rollups
        self._clock = clock
        self._series: dict[SeriesKey, Series] = {}
        self._by_metric: dict[str, set[SeriesKey]] = {}
        self._closed: list[Rollup] = []
        self.stats = SeriesStats()

    def __len__(self) -> int:
        return len(self._series)

    def get(self, key: SeriesKey) -> Series | None:
        return self._series.get(key)

    def conflict(self, sample: Sample) -> str | None:
        """Why ``sample`` does not fit its series (another unit, older than the last
        point), or None."""
        series = self._series.get(sample.series)
        if series is None:
            return None
        if sample.unit != series.unit:
            return f"unit {sample.unit!r} differs from the series' unit {series.unit!r}"
        if sample.ts < series.last_ts:
            return (
                f"timestamp {sample.ts:.3f} is older than the series' last ({series.last_ts:.3f})"
            )
        return None

    def add(self, sample: Sample) -> bool:
        """Keep an accepted sample (None values are not points); False when the series
        would be new and the store is full."""
        if sample.value is None:
            return True
        key = sample.series
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= self.policy.max_series:
                self.stats.refused_new_series += 1
                return False
            series = Series(key, sample.unit, self.policy.points)
            self._series[key] = series
            self._by_metric.setdefault(key.metric, set()).add(key)
        rollup = series.add(sample.ts, sample.value)
        self.stats.points += 1
        if rollup is not None:
            self._closed.append(rollup)
        return True

    def flush(self, now: float | None = None, *, everything: bool = False) -> list[Rollup]:
        """Close every minute that is over (every open one with ``everything``) and hand the
        roll-ups to the store."""
        now = self._clock() if now is None else now
        horizon = float("inf") if everything else now
        closed, self._closed = self._closed, []
        for series in self._series.values():
            rollup = series.close_before(horizon)
            if rollup is not None:
                closed.append(rollup)
        if closed:
            self.stats.rollups += len(closed)
            if self._on_rollups is not None:
                self._on_rollups(closed)
        return closed

    def find(
        self,
        metric: str | None = None,
        source: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[Series]:
        """Series by metric (a glob), source and label values (globs), sorted by key."""
        if metric is not None and not any(c in metric for c in "*?["):
            keys: Iterable[SeriesKey] = self._by_metric.get(metric, ())
        else:
            keys = self._series.keys()
        out = []
        for key in keys:
            if metric is not None and not fnmatch.fnmatchcase(key.metric, metric):
                continue
            if source is not None and not fnmatch.fnmatchcase(key.source, source):
                continue
            if labels:
                have = dict(key.labels)
                if not all(
                    k in have and fnmatch.fnmatchcase(have[k], v) for k, v in labels.items()
                ):
                    continue
            out.append(self._series[key])
        out.sort(key=lambda s: (s.key.metric, s.key.source, s.key.labels))
        return out
