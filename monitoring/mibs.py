"""What cchub reads from standard MIBs, as tables of frozen descriptions (numeric OIDs):
IF-MIB ``ifTable``, RFC 1628 UPS-MIB (the scalars of ``protocols.ups_mib``) and
ENTITY-SENSOR-MIB ``entPhySensorTable``; vendor objects come from the site file.

Each description turns raw values into readings ``(metric, value, unit, labels)``; counters
are marked so that the poller reports their rate.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from monitoring.snmp_client import Counter, Value
from monitoring.targets import SnmpObject
from protocols.ups_mib import UPS_OBJECTS, decode_ups


@dataclass(frozen=True)
class Reading:
    """One value read from an agent, before it becomes a sample."""

    metric: str
    value: float | None
    unit: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    counter_bits: int = 0  # >0: a counter (its rate per second is reported)
    scale: float = 1.0  # counters: applied to the rate


class ColumnKind(enum.Enum):
    GAUGE = "gauge"
    COUNTER = "counter"
    LABEL = "label"


@dataclass(frozen=True)
class Column:
    """One column of a table: ``name`` is the label (LABEL) or the metric."""

    oid: str
    name: str
    kind: ColumnKind = ColumnKind.GAUGE
    unit: str = ""


@dataclass(frozen=True)
class Table:
    """A conceptual table walked by columns; ``index`` names the row label."""

    name: str
    index: str
    columns: tuple[Column, ...]
    decode: Callable[[Table, Mapping[str, Mapping[str, Value]]], list[Reading]] | None = None

    @property
    def oids(self) -> list[str]:
        return [c.oid for c in self.columns]


@dataclass(frozen=True)
class Mib:
    """A description table: scalars read by GET, tables walked, and how to decode them."""

    name: str
    scalars: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    decode_scalars: Callable[[Mapping[str, Value | None]], list[Reading]] | None = None


def _number(value: Value | None) -> float | None:
    if isinstance(value, Counter):
        return float(value.value)
    if isinstance(value, int | float):
        return float(value)
    return None


def decode_columns(table: Table, rows: Mapping[str, Mapping[str, Value]]) -> list[Reading]:
    """Generic rows: LABEL columns label each row; GAUGE/COUNTER columns give readings."""
    labels_by_row: dict[str, dict[str, str]] = {}
    for column in table.columns:
        if column.kind is ColumnKind.LABEL:
            for index, value in rows.get(column.oid, {}).items():
                labels_by_row.setdefault(index, {})[column.name] = str(value)
    out: list[Reading] = []
    for column in table.columns:
        if column.kind is ColumnKind.LABEL:
            continue
        for index, value in rows.get(column.oid, {}).items():
            labels = {table.index: index, **labels_by_row.get(index, {})}
            bits = value.bits if isinstance(value, Counter) else 0
            if column.kind is ColumnKind.COUNTER and not bits:
                bits = 32  # agents that type a counter as an integer wrap like Counter32
            out.append(Reading(column.name, _number(value), column.unit, labels, bits))
    return out


# -- IF-MIB ---------------------------------------------------------------------------------

_IF = "1.3.6.1.2.1.2.2.1"
IF_TABLE = Table(
    "ifTable",
    "ifIndex",
    (
        Column(f"{_IF}.2", "ifDescr", ColumnKind.LABEL),
        Column(f"{_IF}.5", "if.speed", unit="bit/s"),
        Column(f"{_IF}.7", "if.admin_status"),  # 1 up, 2 down, 3 testing
        Column(f"{_IF}.8", "if.oper_status"),  # 1 up, 2 down, ... 7 lowerLayerDown
        Column(f"{_IF}.10", "if.in_octets", ColumnKind.COUNTER, "B"),
        Column(f"{_IF}.14", "if.in_errors", ColumnKind.COUNTER),
        Column(f"{_IF}.16", "if.out_octets", ColumnKind.COUNTER, "B"),
        Column(f"{_IF}.20", "if.out_errors", ColumnKind.COUNTER),
    ),
    decode_columns,
)


# -- UPS-MIB (RFC 1628) ----------------------------------------------------------------------

_UPS_UNITS = {obj.key: obj.unit for obj in UPS_OBJECTS}


def decode_ups_scalars(values: Mapping[str, Value | None]) -> list[Reading]:
    """The same ``ups.<key>`` metrics a UPS device feeds (``ups.on_battery``...), plus the
    raw enum codes (``ups.output_source`` = 5 on battery)."""
    raw: dict[str, int | None] = {}
    for obj in UPS_OBJECTS:
        value = values.get(obj.oid)
        raw[obj.oid] = value if isinstance(value, int) else None
    if all(v is None for v in raw.values()):
        return []
    out: list[Reading] = []
    for key, decoded in decode_ups(raw).items():
        if isinstance(decoded, bool):
            out.append(Reading(f"ups.{key}", 1.0 if decoded else 0.0))
        elif isinstance(decoded, int | float):
            out.append(Reading(f"ups.{key}", float(decoded), _UPS_UNITS.get(key, "")))
    for obj in UPS_OBJECTS:
        if obj.enum is not None and raw[obj.oid] is not None:
            out.append(Reading(f"ups.{obj.key}", float(raw[obj.oid] or 0)))
    return out


UPS_MIB = Mib("ups-mib", tuple(obj.oid for obj in UPS_OBJECTS), (), decode_ups_scalars)


# -- ENTITY-SENSOR-MIB (RFC 3433) -------------------------------------------------------------


class SensorType(enum.IntEnum):
    """EntitySensorDataType; each maps to a metric name and unit."""

    OTHER = 1
    UNKNOWN = 2
    VOLTS_AC = 3
    VOLTS_DC = 4
    AMPERES = 5
    WATTS = 6
    HERTZ = 7
    CELSIUS = 8
    PERCENT_RH = 9
    RPM = 10
    CMM = 11
    TRUTHVALUE = 12
    SPECIAL_ENUM = 13
    DBM = 14


SENSOR_METRICS: Mapping[SensorType, tuple[str, str]] = {
    SensorType.OTHER: ("sensor.other", ""),
    SensorType.UNKNOWN: ("sensor.unknown", ""),
    SensorType.VOLTS_AC: ("sensor.voltage_ac", "V"),
    SensorType.VOLTS_DC: ("sensor.voltage_dc", "V"),
    SensorType.AMPERES: ("sensor.current", "A"),
    SensorType.WATTS: ("sensor.power", "W"),
    SensorType.HERTZ: ("sensor.frequency", "Hz"),
    SensorType.CELSIUS: ("sensor.temperature", "°C"),
    SensorType.PERCENT_RH: ("sensor.humidity", "%RH"),
    SensorType.RPM: ("sensor.fan_speed", "rpm"),
    SensorType.CMM: ("sensor.airflow", "m3/min"),
    SensorType.TRUTHVALUE: ("sensor.state", ""),
    SensorType.SPECIAL_ENUM: ("sensor.enum", ""),
    SensorType.DBM: ("sensor.power_dbm", "dBm"),
}
SENSOR_OK = 1  # EntitySensorStatus: ok(1), unavailable(2), nonoperational(3)

_SENSOR = "1.3.6.1.2.1.99.1.1.1"
_ENT_PHYSICAL_NAME = "1.3.6.1.2.1.47.1.1.1.1.7"
SENSOR_TABLE = Table(
    "entPhySensorTable",
    "entPhysicalIndex",
    (
        Column(f"{_SENSOR}.1", "type"),
        Column(f"{_SENSOR}.2", "scale"),
        Column(f"{_SENSOR}.3", "precision"),
        Column(f"{_SENSOR}.4", "value"),
        Column(f"{_SENSOR}.5", "status"),
        Column(_ENT_PHYSICAL_NAME, "entPhysicalName", ColumnKind.LABEL),
    ),
)


def sensor_value(raw: int, scale: int, precision: int) -> float:
    """entPhySensorValue in units: scale 9 is units, each step is 10^3; precision is the
    number of decimal places (RFC 3433 EntitySensorDataScale / EntitySensorPrecision)."""
    return raw * 10.0 ** (3 * (scale - 9)) / 10.0**precision


def decode_sensors(table: Table, rows: Mapping[str, Mapping[str, Value]]) -> list[Reading]:
    by = {c.name: rows.get(c.oid, {}) for c in table.columns}
    out: list[Reading] = []
    for index, kind in sorted(by["type"].items()):
        try:
            sensor = SensorType(int(kind))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            sensor = SensorType.OTHER
        metric, unit = SENSOR_METRICS[sensor]
        labels = {table.index: index}
        name = by["entPhysicalName"].get(index)
        if name:
            labels["entPhysicalName"] = str(name)
        raw, scale = by["value"].get(index), by["scale"].get(index, 9)
        precision, status = by["precision"].get(index, 0), by["status"].get(index, SENSOR_OK)
        value: float | None = None
        if isinstance(raw, int) and isinstance(scale, int) and isinstance(precision, int):
            value = sensor_value(raw, scale, precision)
        if status != SENSOR_OK:
            value = None  # unavailable or nonoperational: polled, but no value
        out.append(Reading(metric, value, unit, labels))
    return out


ENTITY_SENSOR = Mib(
    "entity-sensor",
    tables=(Table(SENSOR_TABLE.name, SENSOR_TABLE.index, SENSOR_TABLE.columns, decode_sensors),),
)
IF_MIB = Mib("if-mib", tables=(IF_TABLE,))

MIBS: Mapping[str, Mib] = {m.name: m for m in (IF_MIB, UPS_MIB, ENTITY_SENSOR)}


# -- vendor objects from the site file --------------------------------------------------------


def decode_object(obj: SnmpObject, value: Value | None, index: str | None = None) -> Reading:
    number = _number(value)
    labels = {"index": index} if index is not None else {}
    if obj.counter:
        bits = value.bits if isinstance(value, Counter) else 32
        return Reading(obj.metric, number, obj.unit, labels, bits, obj.scale)
    if number is not None:
        number = number * obj.scale + obj.offset
    return Reading(obj.metric, number, obj.unit, labels)


def vendor_readings(
    objects: Sequence[SnmpObject],
    scalars: Mapping[str, Value | None],
    columns: Mapping[str, Mapping[str, Value]],
) -> list[Reading]:
    out: list[Reading] = []
    for obj in objects:
        oid = obj.oid.lstrip(".")
        if obj.walk:
            for index, value in columns.get(oid, {}).items():
                out.append(decode_object(obj, value, index))
        else:
            out.append(decode_object(obj, scalars.get(oid)))
    return out
