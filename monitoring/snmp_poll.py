"""SNMP polling coordinator: one GET for the scalars of the target's MIBs and vendor objects,
one set of column walks (GETBULK; GETNEXT on v1) for its tables; counters become rates.

Samples are named by the description tables (``if.oper_status``, ``ups.on_battery``,
``sensor.temperature``, the site file's vendor metrics), sourced as the target id and
labelled by row (``ifIndex``/``ifDescr``, ``entPhysicalIndex``, ``index``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitoring.coordinator import Coordinator, Feed
from monitoring.mibs import MIBS, Reading, vendor_readings
from monitoring.samples import Sample
from monitoring.snmp_client import SnmpSession, Value
from monitoring.targets import SnmpTarget

REQUESTS_PER_POLL = 4  # a poll may take several requests: its deadline allows for that


class SnmpCoordinator(Coordinator):
    """Polls one SNMP agent."""

    kind = "snmp"
    target: SnmpTarget

    def __init__(self, target: SnmpTarget, feed: Feed, **kwargs: Any) -> None:
        super().__init__(target, feed, **kwargs)
        self.session = SnmpSession(
            target, timeout=target.timeout, retries=target.retries, label=target.id
        )
        self._mibs = [MIBS[name] for name in target.mibs]
        self._scalars = [o for m in self._mibs for o in m.scalars]
        self._scalars += [o.oid.lstrip(".") for o in target.objects if not o.walk]
        self._columns = [c for m in self._mibs for t in m.tables for c in t.oids]
        self._columns += [o.oid.lstrip(".") for o in target.objects if o.walk]
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float]] = {}
        self._absent_logged: set[str] = set()

    @property
    def deadline(self) -> float:
        return self.target.deadline * REQUESTS_PER_POLL

    async def _close(self) -> None:
        await self.session.close()

    async def _fetch(self) -> Sequence[Sample]:
        values: dict[str, Value | None] = {}
        rows: dict[str, dict[str, Value]] = {}
        if self._scalars:
            values = await self.session.get(self._scalars)
        if self._columns:
            rows = await self.session.walk(
                self._columns, max_repetitions=self.target.max_repetitions
            )
        now = self._clock()
        self._note_absent(values)
        readings: list[Reading] = []
        for mib in self._mibs:
            if mib.decode_scalars is not None:
                readings += mib.decode_scalars(values)
            for table in mib.tables:
                if table.decode is not None:
                    readings += table.decode(table, {c: rows.get(c, {}) for c in table.oids})
        readings += vendor_readings(self.target.objects, values, rows)
        samples = [self._sample(r, now) for r in readings]
        return [s for s in samples if s is not None]

    def _note_absent(self, values: dict[str, Value | None]) -> None:
        absent = [oid for oid, value in values.items() if value is None]
        if absent:
            self.count("absent_object", len(absent))
        new = [oid for oid in absent if oid not in self._absent_logged]
        if new:
            self._absent_logged.update(new)
            self.log.info("the agent lacks %s", ", ".join(new))

    def _sample(self, reading: Reading, now: float) -> Sample | None:
        if not reading.counter_bits:
            return self.make_sample(
                reading.metric, reading.value, now, reading.unit, reading.labels
            )
        # a counter: its rate per second since the previous poll
        key = (reading.metric, tuple(sorted(reading.labels.items())))
        if reading.value is None:
            self._counters.pop(key, None)
            return None
        previous = self._counters.get(key)
        self._counters[key] = (reading.value, now)
        if previous is None or now <= previous[1]:
            return None
        delta = reading.value - previous[0]
        if delta < 0:
            if reading.counter_bits != 32:
                return None  # a Counter64 going back is a reset (reboot), not a wrap
            delta += 2**32
        rate = delta / (now - previous[1]) * reading.scale
        unit = f"{reading.unit}/s" if reading.unit else "/s"
        return self.make_sample(f"{reading.metric}_rate", rate, now, unit, reading.labels)
