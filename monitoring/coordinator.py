"""One coordinator per polled target (STYLE §4): a jittered schedule, a bound on every poll,
back-off after failures, the outage logged once and the recovery once.

A subclass implements ``_fetch()`` returning the poll's samples and translates its library's
errors into :class:`PollFailed` at that boundary. The base feeds the samples in, adds
``target.up`` (1 or 0) every poll and raises/clears a ``target.down`` occurrence on the edges.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from devices.tasks import TaskOwner
from monitoring.errors import MonitoringError
from monitoring.samples import NO_LABELS, Occurrence, OccurrenceState, Sample, freeze_labels
from monitoring.targets import PollPolicy

logger = logging.getLogger(__name__)

TARGET_UP = "target.up"
"""Metric fed after every poll: 1 when the target answered, 0 when it did not."""
TARGET_DOWN = "target.down"
"""Occurrence kind raised when a target stops answering and cleared when it answers again."""
FIRST_POLL_WITHIN = 2.0  # seconds: the first poll of each target is spread over this


class PollFailed(MonitoringError):
    """A poll gave no data; ``code`` classifies why (``timeout``, ``refused``, ``auth``,
    ``protocol``, ``device``, ``internal``), the message says exactly what happened."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Feed(Protocol):
    """Where producers put what they learn (the hub's intake: warning core and series)."""

    def sample(self, sample: Sample) -> bool: ...

    def occur(self, occurrence: Occurrence) -> None: ...


class TargetLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every record with ``[target=<id>]``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return f"[target={self.extra['target'] if self.extra else '?'}] {msg}", kwargs


@dataclass
class PollStats:
    """What the coordinator did, for ``/metrics`` and ``/health`` (counters only grow)."""

    polls_ok: int = 0
    polls_failed: int = 0
    samples: int = 0
    consecutive_failures: int = 0
    last_duration: float = 0.0
    last_ok_ts: float | None = None
    last_error: str = ""
    errors: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def up(self) -> bool | None:
        """None until the first poll has finished."""
        if self.polls_ok == 0 and self.polls_failed == 0:
            return None
        return self.consecutive_failures == 0


class Coordinator(abc.ABC):
    """Polls one target on its own schedule; ``async with`` starts and stops it."""

    kind: ClassVar[str] = ""

    def __init__(
        self,
        target: PollPolicy,
        feed: Feed,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.target = target
        self.id = target.id
        self.feed = feed
        self.log = TargetLog(logging.getLogger(type(self).__module__), {"target": target.id})
        self.stats = PollStats()
        self._clock = clock
        self._rng = rng or random.Random()
        self._tasks = TaskOwner(self.log)
        self._lock = asyncio.Lock()
        self._outage_since: float | None = None
        self._cleared_once = False
        self._running = False

    # -- what subclasses implement ---------------------------------------------------------

    @abc.abstractmethod
    async def _fetch(self) -> Sequence[Sample]:
        """Read the target; raise :class:`PollFailed` when it cannot be read."""

    @property
    def deadline(self) -> float:
        """How long one poll may take in all before it is abandoned."""
        return self.target.deadline

    async def _close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection or engine (idempotent, never raises)."""

    # -- helpers for subclasses --------------------------------------------------------------

    def make_sample(
        self,
        metric: str,
        value: float | None,
        ts: float,
        unit: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Sample:
        return Sample(
            metric, self.id, value, ts, unit, freeze_labels(labels) if labels else NO_LABELS
        )

    def count(self, what: str, n: int = 1) -> None:
        """Count a protocol-level event (bad frame, exception reply, varbind error)."""
        self.stats.errors[what] += n

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._tasks.spawn(self._run(), f"poll-{self.id}")

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        await self._tasks.close()
        await self._close()

    async def __aenter__(self) -> Coordinator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        await asyncio.sleep(self._rng.uniform(0, min(FIRST_POLL_WITHIN, self.target.interval)))
        while True:
            await self.poll()
            await asyncio.sleep(self.next_delay())

    def next_delay(self) -> float:
        """The interval (±10 %); after n failures in a row interval·2^(n-1), capped."""
        interval = self.target.interval
        failures = self.stats.consecutive_failures
        if failures > 1:
            cap = max(self.target.backoff_max, interval)
            interval = min(cap, interval * 2 ** min(failures - 1, 20))
        return interval * self._rng.uniform(0.9, 1.1)

    # -- one poll ----------------------------------------------------------------------------

    async def poll(self) -> bool:
        """Poll now (one at a time); True when the target answered."""
        async with self._lock:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.deadline):
                    samples = await self._fetch()
            except PollFailed as err:
                failure: PollFailed | None = err
            except TimeoutError:
                failure = PollFailed(
                    "timeout", f"no answer within {self.deadline:g} s (poll abandoned)"
                )
            except Exception as err:  # a bug in a coordinator must not stop the schedule
                self.log.exception("poll failed unexpectedly")
                failure = PollFailed("internal", f"poll failed unexpectedly: {err!r}")
            else:
                failure = None
            self.stats.last_duration = time.perf_counter() - started
            now = self._clock()
            if failure is not None:
                with contextlib.suppress(Exception):
                    await self._close()  # a half-open session is not reused
                self._failed(failure, now)
                return False
            self._succeeded(samples, now)
            return True

    def _succeeded(self, samples: Sequence[Sample], now: float) -> None:
        stats = self.stats
        stats.polls_ok += 1
        stats.last_ok_ts = now
        if self._outage_since is not None:
            self.log.info(
                "answers again after %d failed poll(s) over %.0f s",
                stats.consecutive_failures,
                now - self._outage_since,
            )
            self._outage_since = None
        stats.consecutive_failures = 0
        stats.last_error = ""
        for sample in samples:
            if self.feed.sample(sample):
                stats.samples += 1
        self.feed.sample(self.make_sample(TARGET_UP, 1.0, now))
        if not self._cleared_once:
            # clears an outage alarm that survived a restart (a no-op otherwise)
            self._cleared_once = True
            self._edge(OccurrenceState.CLEAR, now, f"{self.kind} target {self.id} answers")

    def _failed(self, failure: PollFailed, now: float) -> None:
        stats = self.stats
        stats.polls_failed += 1
        stats.consecutive_failures += 1
        stats.errors[failure.code] += 1
        stats.last_error = f"{failure.code}: {failure}"
        self.feed.sample(self.make_sample(TARGET_UP, 0.0, now))
        if self._outage_since is None:
            self._outage_since = now
            self._cleared_once = False
            self.log.warning("not answering (%s): %s", failure.code, failure)
            self._edge(OccurrenceState.RAISE, now, f"{self.kind} target {self.id}: {failure}")
        else:
            self.log.debug("still not answering (%s): %s", failure.code, failure)

    def _edge(self, state: OccurrenceState, now: float, message: str) -> None:
        labels = freeze_labels({"kind": self.kind})
        self.feed.occur(Occurrence(TARGET_DOWN, self.id, now, state, message, labels))
