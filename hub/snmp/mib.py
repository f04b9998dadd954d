"""CCHUB-MIB (``mibs/CCHUB-MIB.txt``) as tables of descriptions, and the view an SNMP request
reads: every instance OID with its value, in lexicographic order. Sans-IO, no pysnmp.

ARC is RFC 5612's documentation enterprise number, a placeholder: replace it (here and in
the MIB file) with an IANA-assigned Private Enterprise Number before production.
"""

from __future__ import annotations

import bisect
import datetime
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hub.snmp.rows import (
    AlarmRow,
    ConferenceRow,
    DeviceRow,
    LegRow,
    RadioNetRow,
    SubsystemRow,
)

Oid = tuple[int, ...]

ARC: Oid = (1, 3, 6, 1, 4, 1, 32473)
"""enterprises.32473: RFC 5612's documentation PEN, a placeholder (see the module doc)."""

NOTIFICATIONS: Oid = (*ARC, 0)
OBJECTS: Oid = (*ARC, 1)
SYSTEM: Oid = (1, 3, 6, 1, 2, 1, 1)
SYS_UPTIME: Oid = (*SYSTEM, 3, 0)
SNMP_TRAP_OID: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)


class Syntax(enum.Enum):
    """SMIv2 base types the MIB uses (TCs map onto these)."""

    INTEGER = "Integer32"
    UNSIGNED = "Unsigned32"
    GAUGE = "Gauge32"
    TIMETICKS = "TimeTicks"
    OCTETS = "OCTET STRING"
    OID = "OBJECT IDENTIFIER"


Value = tuple[Syntax, Any]
"""``(syntax, int | bytes | Oid)``"""


class Absent(enum.Enum):
    """Why a GET found no value (RFC 3416 exceptions)."""

    NO_SUCH_OBJECT = "noSuchObject"
    NO_SUCH_INSTANCE = "noSuchInstance"


# -- value encoders ---------------------------------------------------------------------


def display(text: str, limit: int = 255) -> bytes:
    """UTF-8, cut to ``limit`` octets without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return raw
    return raw[:limit].decode("utf-8", errors="ignore").encode("utf-8")


def truth(value: bool) -> int:
    """SNMPv2-TC TruthValue: true(1), false(2)."""
    return 1 if value else 2


def date_and_time(ts: float) -> bytes:
    """SNMPv2-TC DateAndTime, 11 octets, UTC (``+0:0``); zero time is the TC's 'unknown'."""
    if ts <= 0:
        return bytes(8)
    when = datetime.datetime.fromtimestamp(ts, tz=datetime.UTC)
    return (
        when.year.to_bytes(2, "big")
        + bytes(
            [when.month, when.day, when.hour, when.minute, when.second, when.microsecond // 100_000]
        )
        + b"+\x00\x00"
    )


HEALTH = {"up": 1, "degraded": 2, "down": 3, "starting": 4}
"""CchubHealthState."""
_WORST = ("down", "degraded", "starting", "up")

LEVELS = {"blue": 1, "yellow": 2, "orange": 3, "red": 4}
"""CchubWarningLevel."""

ALARM_STATES = {
    "normal": 1,
    "active-unack": 2,
    "active-ack": 3,
    "rtn-unack": 4,
    "latched-unack": 5,
    "latched-ack": 6,
    "shelved": 7,
    "suppressed": 8,
}
"""CchubAlarmLifecycle."""


def overall_health(states: Iterable[str]) -> str:
    """The worst subsystem state (``up`` when there are none)."""
    present = set(states)
    return next((s for s in _WORST if s in present), "up")


# -- descriptions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scalar:
    """A scalar object; its instance is ``oid + (0,)``."""

    name: str
    oid: Oid
    syntax: Syntax
    read: Callable[[HubState], Any]


R = TypeVar("R")


@dataclass(frozen=True)
class Column(Generic[R]):
    name: str
    sub: int
    syntax: Syntax
    read: Callable[[R], Any]


@dataclass(frozen=True)
class TableDesc(Generic[R]):
    """A conceptual table: ``entry`` is the row OID, instances are ``entry.col.index``."""

    name: str
    entry: Oid
    index: Callable[[R], Oid]
    columns: tuple[Column[R], ...]
    rows: Callable[[HubState], Sequence[R]]


@dataclass(frozen=True)
class SystemInfo:
    """SNMPv2-MIB system group values."""

    descr: str
    contact: str = ""
    name: str = ""
    location: str = ""


RowReader = Callable[[], Sequence[Any]]


def _none() -> Sequence[Any]:
    return ()


class HubState:
    """One request's reading of the hub: the scalars now, each table's rows when the request
    first needs them (a GETNEXT in the alarm table reads the alarms, not the devices)."""

    def __init__(
        self,
        system: SystemInfo,
        version: str,
        site: str,
        uptime: float,
        agent_uptime: float,
        *,
        subsystems: RowReader = _none,
        devices: RowReader = _none,
        alarms: RowReader = _none,
        conferences: RowReader = _none,
        legs: RowReader = _none,
        radio_nets: RowReader = _none,
    ) -> None:
        self.system = system
        self.version = version
        self.site = site
        self.uptime = uptime  # seconds since the hub started
        self.agent_uptime = agent_uptime  # seconds since the agent started (sysUpTime)
        self._readers: dict[str, RowReader] = {
            "subsystems": subsystems,
            "devices": devices,
            "alarms": alarms,
            "conferences": conferences,
            "legs": legs,
            "radio_nets": radio_nets,
        }
        self._read: dict[str, Sequence[Any]] = {}

    def _rows(self, name: str) -> Sequence[Any]:
        rows = self._read.get(name)
        if rows is None:
            found = self._readers[name]()
            # a tuple is kept as it is: a reader that caches its rows returns the same one
            rows = self._read[name] = found if isinstance(found, tuple) else list(found)
        return rows

    @property
    def subsystems(self) -> Sequence[SubsystemRow]:
        return self._rows("subsystems")

    @property
    def devices(self) -> Sequence[DeviceRow]:
        return self._rows("devices")

    @property
    def alarms(self) -> Sequence[AlarmRow]:
        return self._rows("alarms")

    @property
    def conferences(self) -> Sequence[ConferenceRow]:
        return self._rows("conferences")

    @property
    def legs(self) -> Sequence[LegRow]:
        return self._rows("legs")

    @property
    def radio_nets(self) -> Sequence[RadioNetRow]:
        return self._rows("radio_nets")


def ticks(seconds: float) -> int:
    """TimeTicks (hundredths of a second), wrapped at 2^32 as the SMI says."""
    return int(seconds * 100) % (1 << 32)


HUB = (*OBJECTS, 1)
DEVICES = (*OBJECTS, 2)
ALARMS = (*OBJECTS, 3)
CONFERENCES = (*OBJECTS, 4)
RADIO = (*OBJECTS, 5)

SCALARS: tuple[Scalar, ...] = (
    Scalar("sysDescr", (*SYSTEM, 1), Syntax.OCTETS, lambda s: display(s.system.descr)),
    Scalar("sysObjectID", (*SYSTEM, 2), Syntax.OID, lambda s: ARC),
    Scalar("sysUpTime", (*SYSTEM, 3), Syntax.TIMETICKS, lambda s: ticks(s.agent_uptime)),
    Scalar("sysContact", (*SYSTEM, 4), Syntax.OCTETS, lambda s: display(s.system.contact)),
    Scalar("sysName", (*SYSTEM, 5), Syntax.OCTETS, lambda s: display(s.system.name)),
    Scalar("sysLocation", (*SYSTEM, 6), Syntax.OCTETS, lambda s: display(s.system.location)),
    Scalar("cchubVersion", (*HUB, 1), Syntax.OCTETS, lambda s: display(s.version, 64)),
    Scalar("cchubSiteName", (*HUB, 2), Syntax.OCTETS, lambda s: display(s.site, 64)),
    Scalar("cchubUptime", (*HUB, 3), Syntax.TIMETICKS, lambda s: ticks(s.uptime)),
    Scalar(
        "cchubHealth",
        (*HUB, 4),
        Syntax.INTEGER,
        lambda s: HEALTH[overall_health(r.state for r in s.subsystems)],
    ),
    Scalar("cchubDeviceCount", (*DEVICES, 1), Syntax.GAUGE, lambda s: len(s.devices)),
    Scalar("cchubAlarmActiveCount", (*ALARMS, 1), Syntax.GAUGE, lambda s: len(s.alarms)),
    Scalar("cchubConferenceCount", (*CONFERENCES, 1), Syntax.GAUGE, lambda s: len(s.conferences)),
    Scalar("cchubRadioNetCount", (*RADIO, 1), Syntax.GAUGE, lambda s: len(s.radio_nets)),
)

SUBSYSTEM_TABLE: TableDesc[SubsystemRow] = TableDesc(
    "cchubSubsystemTable",
    (*HUB, 5, 1),
    lambda r: (r.index,),
    (
        Column("cchubSubsystemName", 2, Syntax.OCTETS, lambda r: display(r.name, 64)),
        Column("cchubSubsystemState", 3, Syntax.INTEGER, lambda r: HEALTH.get(r.state, 3)),
        Column("cchubSubsystemDetail", 4, Syntax.OCTETS, lambda r: display(r.detail)),
    ),
    lambda s: s.subsystems,
)

DEVICE_TABLE: TableDesc[DeviceRow] = TableDesc(
    "cchubDeviceTable",
    (*DEVICES, 2, 1),
    lambda r: (r.index,),
    (
        Column("cchubDeviceName", 2, Syntax.OCTETS, lambda r: display(r.name, 64)),
        Column("cchubDeviceType", 3, Syntax.OCTETS, lambda r: display(r.type, 64)),
        Column("cchubDeviceOnline", 4, Syntax.INTEGER, lambda r: truth(r.online)),
        Column("cchubDeviceLastChange", 5, Syntax.OCTETS, lambda r: date_and_time(r.last_change)),
        Column("cchubDeviceError", 6, Syntax.OCTETS, lambda r: display(r.error)),
    ),
    lambda s: s.devices,
)

ALARM_COLUMNS: tuple[Column[AlarmRow], ...] = (
    Column("cchubAlarmName", 2, Syntax.OCTETS, lambda r: display(r.name)),
    Column("cchubAlarmSource", 3, Syntax.OCTETS, lambda r: display(r.source)),
    Column("cchubAlarmRule", 4, Syntax.OCTETS, lambda r: display(r.rule, 64)),
    Column("cchubAlarmLevel", 5, Syntax.INTEGER, lambda r: LEVELS[r.level]),
    Column("cchubAlarmState", 6, Syntax.INTEGER, lambda r: ALARM_STATES[r.state]),
    Column("cchubAlarmText", 7, Syntax.OCTETS, lambda r: display(r.text)),
    Column("cchubAlarmRaisedTime", 8, Syntax.OCTETS, lambda r: date_and_time(r.raised)),
    Column("cchubAlarmCount", 9, Syntax.UNSIGNED, lambda r: min(r.count, (1 << 32) - 1)),
)

ALARM_TABLE: TableDesc[AlarmRow] = TableDesc(
    "cchubAlarmTable", (*ALARMS, 2, 1), lambda r: (r.index,), ALARM_COLUMNS, lambda s: s.alarms
)

CONFERENCE_TABLE: TableDesc[ConferenceRow] = TableDesc(
    "cchubConferenceTable",
    (*CONFERENCES, 2, 1),
    lambda r: (r.index,),
    (
        Column("cchubConferenceName", 2, Syntax.OCTETS, lambda r: display(r.name)),
        Column("cchubConferenceState", 3, Syntax.OCTETS, lambda r: display(r.state, 32)),
        Column("cchubConferenceLegCount", 4, Syntax.GAUGE, lambda r: r.legs),
        Column("cchubConferenceStarted", 5, Syntax.OCTETS, lambda r: date_and_time(r.started)),
    ),
    lambda s: s.conferences,
)

LEG_TABLE: TableDesc[LegRow] = TableDesc(
    "cchubLegTable",
    (*CONFERENCES, 3, 1),
    lambda r: (r.conference, r.index),
    (
        Column("cchubLegParty", 2, Syntax.OCTETS, lambda r: display(r.party)),
        Column("cchubLegBearer", 3, Syntax.OCTETS, lambda r: display(r.bearer, 32)),
        Column("cchubLegState", 4, Syntax.OCTETS, lambda r: display(r.state, 32)),
        Column("cchubLegMuted", 5, Syntax.INTEGER, lambda r: truth(r.muted)),
        Column("cchubLegTalking", 6, Syntax.INTEGER, lambda r: truth(r.talking)),
    ),
    lambda s: s.legs,
)

RADIO_NET_TABLE: TableDesc[RadioNetRow] = TableDesc(
    "cchubRadioNetTable",
    (*RADIO, 2, 1),
    lambda r: (r.index,),
    (
        Column("cchubRadioNetName", 2, Syntax.OCTETS, lambda r: display(r.name)),
        Column("cchubRadioNetState", 3, Syntax.OCTETS, lambda r: display(r.state, 32)),
        Column("cchubRadioNetKeyed", 4, Syntax.INTEGER, lambda r: truth(r.keyed)),
        Column("cchubRadioNetFloorHolder", 5, Syntax.OCTETS, lambda r: display(r.floor_holder)),
    ),
    lambda s: s.radio_nets,
)

TABLES: tuple[TableDesc[Any], ...] = (
    SUBSYSTEM_TABLE,
    DEVICE_TABLE,
    ALARM_TABLE,
    CONFERENCE_TABLE,
    LEG_TABLE,
    RADIO_NET_TABLE,
)


class Notification(enum.Enum):
    """CCHUB-MIB notifications: (name, OID)."""

    ALARM_RAISED = ("cchubAlarmRaised", (*NOTIFICATIONS, 1))
    ALARM_CLEARED = ("cchubAlarmCleared", (*NOTIFICATIONS, 2))
    ALARM_FORWARDED = ("cchubAlarmForwarded", (*NOTIFICATIONS, 3))

    @property
    def oid(self) -> Oid:
        oid: Oid = self.value[1]
        return oid


def object_identifiers() -> dict[str, Oid]:
    """Every CCHUB-MIB object and notification the agent serves, by name (for checks
    against the MIB file)."""
    out = {s.name: s.oid for s in SCALARS if s.oid[: len(ARC)] == ARC}
    for table in TABLES:
        out.update({c.name: (*table.entry, c.sub) for c in table.columns})
    out.update({n.value[0]: n.oid for n in Notification})
    return out


def alarm_varbinds(
    notification: Notification, row: AlarmRow, uptime: float
) -> list[tuple[Oid, Value]]:
    """sysUpTime.0, snmpTrapOID.0, then the alarm's columns at its row's instance."""
    out: list[tuple[Oid, Value]] = [
        (SYS_UPTIME, (Syntax.TIMETICKS, ticks(uptime))),
        (SNMP_TRAP_OID, (Syntax.OID, notification.oid)),
    ]
    out += [
        ((*ALARM_TABLE.entry, c.sub, row.index), (c.syntax, c.read(row))) for c in ALARM_COLUMNS
    ]
    return out


# -- the view ---------------------------------------------------------------------------

Node = Scalar | TableDesc[Any]


def _root(node: Node) -> Oid:
    return node.oid if isinstance(node, Scalar) else node.entry


NODES: tuple[Node, ...] = tuple(sorted((*SCALARS, *TABLES), key=_root))
"""Scalars and tables in OID order (their subtrees do not overlap)."""

_COLUMNS: dict[Oid, tuple[TableDesc[Any], Column[Any]]] = {
    (*t.entry, c.sub): (t, c) for t in TABLES for c in t.columns
}
_SCALARS: dict[Oid, Scalar] = {s.oid: s for s in SCALARS}


@dataclass(frozen=True)
class _Rows:
    """One table's rows for one request: sorted indexes and rows by index."""

    indexes: list[Oid]
    by_index: dict[Oid, Any]


class IndexCache:
    """Sorted indexes of tables whose reader returned the very same tuple of rows as for an
    earlier request (a reader caching its rows between changes): a walk of a big table then
    sorts it once, not on every GETNEXT."""

    def __init__(self) -> None:
        self._tables: dict[str, tuple[tuple[Any, ...], _Rows]] = {}

    def get(self, table: str, source: Sequence[Any]) -> _Rows | None:
        kept = self._tables.get(table)
        return kept[1] if kept is not None and kept[0] is source else None

    def put(self, table: str, source: Sequence[Any], rows: _Rows) -> None:
        if isinstance(source, tuple):
            self._tables[table] = (source, rows)
        else:
            self._tables.pop(table, None)


class MibView:
    """What one request reads. Cells are computed when asked: a GET costs the rows of the
    tables it touches and one lookup, a GETNEXT one bisection, never the whole MIB."""

    def __init__(self, state: HubState, cache: IndexCache | None = None) -> None:
        self._state = state
        self._cache = cache
        self._tables: dict[str, _Rows] = {}

    def _rows(self, table: TableDesc[Any]) -> _Rows:
        rows = self._tables.get(table.name)
        if rows is None:
            source = table.rows(self._state)
            rows = self._cache.get(table.name, source) if self._cache is not None else None
            if rows is None:
                by_index = {table.index(row): row for row in source}
                if len(by_index) != len(source):
                    raise ValueError(f"two rows of {table.name} share an index")
                rows = _Rows(sorted(by_index), by_index)
                if self._cache is not None:
                    self._cache.put(table.name, source, rows)
            self._tables[table.name] = rows
        return rows

    def get(self, oid: Oid) -> Value | Absent:
        scalar = _SCALARS.get(oid[:-1])
        if scalar is not None and oid[-1] == 0:
            return scalar.syntax, scalar.read(self._state)
        for size in range(len(oid), 0, -1):
            if oid[:size] in _SCALARS:
                return Absent.NO_SUCH_INSTANCE
            found = _COLUMNS.get(oid[:size])
            if found is not None:
                table, column = found
                row = self._rows(table).by_index.get(oid[size:])
                if row is None:
                    return Absent.NO_SUCH_INSTANCE
                return column.syntax, column.read(row)
        return Absent.NO_SUCH_OBJECT

    def next_after(self, oid: Oid) -> tuple[Oid, Value] | None:
        """The first instance after ``oid`` in lexicographic order, or None at the end."""
        for node in NODES:
            root = _root(node)
            head = oid[: len(root)]
            if head > root:
                continue  # ``oid`` is past this whole subtree
            inside = oid if head == root else None
            found = (
                self._next_scalar(node, inside)
                if isinstance(node, Scalar)
                else self._next_cell(node, inside)
            )
            if found is not None:
                return found
        return None

    def _next_scalar(self, scalar: Scalar, oid: Oid | None) -> tuple[Oid, Value] | None:
        instance = (*scalar.oid, 0)
        if oid is not None and oid >= instance:
            return None
        return instance, (scalar.syntax, scalar.read(self._state))

    def _next_cell(self, table: TableDesc[Any], oid: Oid | None) -> tuple[Oid, Value] | None:
        rows = self._rows(table)
        if not rows.indexes:
            return None
        size = len(table.entry)
        column_at = oid[size] if oid is not None and len(oid) > size else -1
        after = oid[size + 1 :] if oid is not None and len(oid) > size else ()
        for column in table.columns:  # in sub-identifier order
            if column.sub < column_at:
                continue
            at = bisect.bisect_right(rows.indexes, after) if column.sub == column_at else 0
            if at < len(rows.indexes):
                index = rows.indexes[at]
                value = (column.syntax, column.read(rows.by_index[index]))
                return (*table.entry, column.sub, *index), value
        return None

    def items(self) -> list[tuple[Oid, Value]]:
        """Every instance, in order (a walk)."""
        out: list[tuple[Oid, Value]] = []
        found = self.next_after(())
        while found is not None:
            out.append(found)
            found = self.next_after(found[0])
        return out


def build_view(state: HubState, cache: IndexCache | None = None) -> MibView:
    return MibView(state, cache)
