"""What the hub's SNMP agent reads from a running hub: its health, devices and alarms, and
the tables other layers provide — all read when a request comes, never copied ahead. The
alarm rows are the exception: kept (a tuple) until an alarm changes or ``ALARM_ROWS_TTL``
passes, so that a GETNEXT walk of many alarms does not rebuild and sort them per request."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from hub import __version__
from hub.snmp.mib import HubState, SystemInfo
from hub.snmp.rows import AlarmRow, DeviceRow, SubsystemRow, TableProviders
from monitoring.actions import ActionRequest
from monitoring.alarms import AlarmSnapshot
from monitoring.errors import AlarmNotFound

if TYPE_CHECKING:
    from hub.runtime import Hub

ALARM_ROWS_TTL = 1.0
"""Seconds the alarm rows are reused while no alarm changes (a bound on any change the
alarm service does not count, e.g. a repeat counted between two ticks)."""


class AlarmIndex:
    """Rows of the alarm table: one number per alarm id, given when first seen and kept
    while the agent runs (a notification and the table then name the same row)."""

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}

    def __call__(self, alarm_id: str) -> int:
        index = self._rows.get(alarm_id)
        if index is None:
            index = self._rows[alarm_id] = len(self._rows) + 1
        return index


class HubSources:
    """The agent's sources for one hub."""

    def __init__(
        self, hub: Hub, tables: TableProviders, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._hub = hub
        self._tables = tables
        self._clock = clock
        self._started = clock()
        self.alarm_index = AlarmIndex()
        self._alarm_rows: tuple[AlarmRow, ...] = ()
        self._alarm_rows_key: tuple[int, float] | None = None  # (revision, built at)
        snmp = hub.site.snmp
        self._system = SystemInfo(
            descr=f"cchub {__version__} converged-communications hub",
            contact=snmp.contact if snmp else "",
            name=hub.site.hub.name,
            location=snmp.location if snmp else "",
        )

    def _row(self, alarm: AlarmSnapshot) -> AlarmRow:
        return AlarmRow(
            index=self.alarm_index(alarm.id),
            name=alarm.id,
            source=alarm.source,
            rule=alarm.rule,
            level=alarm.level.value,
            state=alarm.state.value,
            text=alarm.message,
            raised=alarm.raised_ts,
            count=alarm.count,
        )

    def state(self, agent_uptime: float) -> HubState:
        tables = self._tables
        return HubState(
            system=self._system,
            version=__version__,
            site=self._hub.site.hub.name,
            uptime=self._clock() - self._started,
            agent_uptime=agent_uptime,
            subsystems=self._subsystems,
            devices=self._devices,
            alarms=self._alarms,
            conferences=tables.conferences,
            legs=tables.legs,
            radio_nets=tables.radio_nets,
        )

    def _subsystems(self) -> list[SubsystemRow]:
        return [
            SubsystemRow(i, h.name, h.state.value, h.detail)
            for i, h in enumerate(self._hub.health(), start=1)
        ]

    def _devices(self) -> list[DeviceRow]:
        snapshots = self._hub.equipment.snapshots()
        rows = []
        for position, device in enumerate(self._hub.site.devices, start=1):
            snap = snapshots.get(device.id)
            if snap is not None:
                rows.append(
                    DeviceRow(position, snap.id, snap.type, snap.online, snap.updated, snap.error)
                )
        return rows

    def _alarms(self) -> tuple[AlarmRow, ...]:
        service = self._hub.alarms
        now = self._clock()
        key = self._alarm_rows_key
        if key is None or key[0] != service.revision or now - key[1] >= ALARM_ROWS_TTL:
            # rows are numbered when first seen, oldest alarm first
            raised = sorted(service.core.alarms(), key=lambda a: (a.raised_ts, a.id))
            self._alarm_rows = tuple(self._row(a) for a in raised)
            self._alarm_rows_key = (service.revision, now)
        return self._alarm_rows

    def alarm(self, alarm_id: str) -> AlarmRow | None:
        try:
            return self._row(self._hub.alarms.core.get(alarm_id))
        except AlarmNotFound:
            return None

    def alarm_row(self, request: ActionRequest) -> AlarmRow:
        return self._row(request.alarm)
