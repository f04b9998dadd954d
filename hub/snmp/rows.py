"""Rows of the hub MIB's tables, and the registry through which layers provide them.

The hub itself fills the subsystem, device and alarm tables. Conferences, legs and radio
nets come from the conference and radio layers: each registers a provider callback
(``hub.snmp_tables.provide(Table.CONFERENCES, callback)``) that returns its rows when the
agent is asked. Until a layer registers, its tables answer with zero rows.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from hub.errors import HubError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubsystemRow:
    index: int
    name: str
    state: str  # hub.events.SubsystemState value: up, degraded, down, starting
    detail: str


@dataclass(frozen=True)
class DeviceRow:
    index: int  # the device's position in the site file (1-based)
    name: str
    type: str
    online: bool
    last_change: float  # UNIX seconds
    error: str


@dataclass(frozen=True)
class AlarmRow:
    index: int
    name: str
    source: str
    rule: str
    level: str  # monitoring.config.WarningLevel value
    state: str  # monitoring.alarms.AlarmState value
    text: str
    raised: float  # UNIX seconds
    count: int


@dataclass(frozen=True)
class ConferenceRow:
    index: int
    name: str
    state: str
    legs: int
    started: float  # UNIX seconds


@dataclass(frozen=True)
class LegRow:
    conference: int  # the ConferenceRow.index it belongs to
    index: int
    party: str
    bearer: str
    state: str
    muted: bool
    talking: bool


@dataclass(frozen=True)
class RadioNetRow:
    index: int
    name: str
    state: str
    keyed: bool
    floor_holder: str


class Table(enum.StrEnum):
    """The tables other layers fill."""

    CONFERENCES = "conferences"
    LEGS = "legs"
    RADIO_NETS = "radio_nets"


ROW_TYPES: dict[Table, type] = {
    Table.CONFERENCES: ConferenceRow,
    Table.LEGS: LegRow,
    Table.RADIO_NETS: RadioNetRow,
}

Row = ConferenceRow | LegRow | RadioNetRow
Provider = Callable[[], Iterable[Row]]


class RowsUnavailable(HubError):
    """A provider failed; the agent answers the request with genErr."""

    status = 503
    title = "Rows unavailable"


class TableProviders:
    """Provider callbacks by table. A provider is called on every SNMP request that
    touches its table (values are never cached) and must not block."""

    def __init__(self) -> None:
        self._providers: dict[Table, Provider] = {}

    def provide(self, table: Table, provider: Provider) -> None:
        if table in self._providers:
            raise ValueError(f"table {table.value!r} already has a provider")
        self._providers[table] = provider

    def withdraw(self, table: Table) -> None:
        """The layer stops (its tables are empty again)."""
        self._providers.pop(table, None)

    def provided(self) -> list[Table]:
        return sorted(self._providers)

    def rows(self, table: Table) -> Sequence[Row]:
        provider = self._providers.get(table)
        if provider is None:
            return ()
        try:
            rows = list(provider())
        except Exception as err:  # a layer's bug must not take the agent down
            logger.exception("the %s provider failed", table.value)
            raise RowsUnavailable(f"the {table.value} provider failed: {err}") from err
        expected = ROW_TYPES[table]
        wrong = [type(row).__name__ for row in rows if not isinstance(row, expected)]
        if wrong:
            raise RowsUnavailable(
                f"the {table.value} provider returned {', '.join(sorted(set(wrong)))}"
                f" (expected {expected.__name__})"
            )
        return rows

    def conferences(self) -> list[ConferenceRow]:
        return [r for r in self.rows(Table.CONFERENCES) if isinstance(r, ConferenceRow)]

    def legs(self) -> list[LegRow]:
        return [r for r in self.rows(Table.LEGS) if isinstance(r, LegRow)]

    def radio_nets(self) -> list[RadioNetRow]:
        return [r for r in self.rows(Table.RADIO_NETS) if isinstance(r, RadioNetRow)]
