"""The one door for samples from every producer (pollers, traps, MQTT, HTTP push): checked,
fitted to their series, evaluated by the warning core, then kept in the series store.

Every refusal has a reason (the label of a counter) and a precise message; a source's
refusals are logged once per reason, its recovery once.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from monitoring.samples import Occurrence, Sample, SampleRejected, check_sample
from monitoring.series import SeriesStore

logger = logging.getLogger(__name__)

MAX_LOGGED_SOURCES = 10_000


class Core(Protocol):
    """What the intake needs of the warning core."""

    def ingest(self, sample: Sample) -> bool: ...

    def occur(self, occurrence: Occurrence) -> None: ...


@dataclass(frozen=True)
class Verdict:
    """The fate of one record: accepted, or the reason (a counter label) and why."""

    accepted: bool
    reason: str = ""
    detail: str = ""


ACCEPTED = Verdict(True)


class Intake:
    """Samples and occurrences in; counts per channel (``poll``, ``trap``, ``mqtt``, ``push``)."""

    def __init__(
        self,
        core: Core,
        series: SeriesStore,
        *,
        clock: Callable[[], float] = time.time,
        max_future_skew: float = 60.0,
    ) -> None:
        self.core = core
        self.series = series
        self._clock = clock
        self._skew = max_future_skew
        self.accepted: collections.Counter[str] = collections.Counter()
        self.rejected: collections.Counter[tuple[str, str]] = collections.Counter()
        self.occurrences: collections.Counter[str] = collections.Counter()
        self._logged: dict[tuple[str, str], set[str]] = {}

    def now(self) -> float:
        return self._clock()

    # -- producers ---------------------------------------------------------------------------

    def sample(self, sample: Sample, channel: str = "poll") -> bool:
        return self.offer(sample, channel).accepted

    def occur(self, occurrence: Occurrence, channel: str = "poll") -> None:
        self.occurrences[channel] += 1
        self.core.occur(occurrence)

    def offer(self, sample: Sample, channel: str) -> Verdict:
        """A sample a producer built (its fields are checked all the same)."""
        return self.record(
            sample.metric,
            sample.source,
            sample.value,
            sample.ts,
            sample.unit,
            sample.labels,
            channel=channel,
        )

    def record(
        self,
        metric: Any,
        source: Any,
        value: Any,
        ts: Any,
        unit: Any = "",
        labels: Any = None,
        *,
        channel: str,
    ) -> Verdict:
        """Raw fields (HTTP push, MQTT): the verdict says why a record was refused."""
        try:
            sample = check_sample(
                metric,
                source,
                value,
                ts,
                unit,
                labels,
                now=self._clock(),
                max_future_skew=self._skew,
            )
        except SampleRejected as err:
            return self.refuse(channel, str(source), err.reason.value, str(err))
        conflict = self.series.conflict(sample)
        if conflict is not None:
            reason = "wrong_unit" if conflict.startswith("unit") else "out_of_order"
            return self.refuse(channel, sample.source, reason, f"{sample.metric}: {conflict}")
        if not self.core.ingest(sample):
            return self.refuse(
                channel,
                sample.source,
                "refused",
                f"{sample.metric}: the warning core refused it (a rule on it expects another"
                " unit, or it is older than that rule's last sample)",
            )
        self.series.add(sample)
        self.accepted[channel] += 1
        logged = self._logged.pop((channel, sample.source), None)
        if logged:
            logger.info("[%s source=%s] records accepted again", channel, sample.source)
        return ACCEPTED

    def refuse(self, channel: str, source: str, reason: str, detail: str) -> Verdict:
        """Count and log (once per channel, source and reason) a refused record."""
        self.rejected[(channel, reason)] += 1
        if len(self._logged) >= MAX_LOGGED_SOURCES:
            self._logged.clear()  # garbage from ever new sources must not grow memory
        reasons = self._logged.setdefault((channel, source), set())
        if reason in reasons:
            logger.debug("[%s source=%s] refused (%s): %s", channel, source, reason, detail)
        else:
            reasons.add(reason)
            logger.warning("[%s source=%s] refused (%s): %s", channel, source, reason, detail)
        return Verdict(False, reason, detail)

    def channel(self, name: str) -> ChannelFeed:
        """A :class:`monitoring.coordinator.Feed` that counts under ``name``."""
        return ChannelFeed(self, name)


class ChannelFeed:
    """The intake as one producer's feed."""

    def __init__(self, intake: Intake, channel: str) -> None:
        self.intake = intake
        self.name = channel

    def sample(self, sample: Sample) -> bool:
        return self.intake.sample(sample, self.name)

    def occur(self, occurrence: Occurrence) -> None:
        self.intake.occur(occurrence, self.name)
