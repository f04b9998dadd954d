"""RFC 1628 UPS-MIB objects cchub reads, as a table of frozen descriptions, and their decoding."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class BatteryStatus(enum.IntEnum):
    """upsBatteryStatus (RFC 1628)."""

    UNKNOWN = 1
    NORMAL = 2
    LOW = 3
    DEPLETED = 4


class OutputSource(enum.IntEnum):
    """upsOutputSource (RFC 1628); BATTERY means the mains are gone."""

    OTHER = 1
    NONE = 2
    NORMAL = 3
    BYPASS = 4
    BATTERY = 5
    BOOSTER = 6
    REDUCER = 7


@dataclass(frozen=True)
class UpsObject:
    """One UPS-MIB scalar: snapshot ``key``, numeric ``oid``, multiplier ``scale``, ``unit``."""

    key: str
    oid: str
    scale: float = 1.0
    unit: str = ""
    enum: type[enum.IntEnum] | None = None

    def decode(self, raw: int) -> int | float | str:
        """Turn the agent's integer into the snapshot value (enum name, or scaled number)."""
        if self.enum is not None:
            try:
                return self.enum(raw).name.lower()
            except ValueError:
                raise ValueError(f"{self.key}: {raw} is not a legal {self.enum.__name__}") from None
        if self.scale == 1.0:
            return raw
        return round(raw * self.scale, 3)


UPS_OBJECTS: tuple[UpsObject, ...] = (
    UpsObject("battery_status", "1.3.6.1.2.1.33.1.2.1.0", enum=BatteryStatus),
    UpsObject("minutes_remaining", "1.3.6.1.2.1.33.1.2.3.0", unit="min"),
    UpsObject("charge_percent", "1.3.6.1.2.1.33.1.2.4.0", unit="%"),
    UpsObject("input_voltage", "1.3.6.1.2.1.33.1.3.3.1.3.1", unit="V"),
    UpsObject("output_source", "1.3.6.1.2.1.33.1.4.1.0", enum=OutputSource),
    UpsObject("output_voltage", "1.3.6.1.2.1.33.1.4.4.1.2.1", unit="V"),
    UpsObject("output_load_percent", "1.3.6.1.2.1.33.1.4.4.1.5.1", unit="%"),
    UpsObject("alarms_present", "1.3.6.1.2.1.33.1.6.1.0"),
)


# upsAlarmTable (1.3.6.1.2.1.33.1.6.2): one row per present alarm; upsAlarmDescr is an OID,
# usually one of upsWellKnownAlarms (1.3.6.1.2.1.33.1.6.3.N)
ALARM_DESCR_COLUMN = "1.3.6.1.2.1.33.1.6.2.1.2"
WELL_KNOWN_ALARMS = "1.3.6.1.2.1.33.1.6.3"
WELL_KNOWN_ALARM_NAMES: Mapping[int, str] = {
    1: "upsAlarmBatteryBad",
    2: "upsAlarmOnBattery",
    3: "upsAlarmLowBattery",
    4: "upsAlarmDepletedBattery",
    5: "upsAlarmTempBad",
    6: "upsAlarmInputBad",
    7: "upsAlarmOutputBad",
    8: "upsAlarmOutputOverload",
    9: "upsAlarmOnBypass",
    10: "upsAlarmBypassBad",
    11: "upsAlarmOutputOffAsRequested",
    12: "upsAlarmUpsOffAsRequested",
    13: "upsAlarmChargerFailed",
    14: "upsAlarmUpsOutputOff",
    15: "upsAlarmUpsSystemOff",
    16: "upsAlarmFanFailure",
    17: "upsAlarmFuseFailure",
    18: "upsAlarmGeneralFault",
    19: "upsAlarmDiagnosticTestFailed",
    20: "upsAlarmCommunicationsLost",
    21: "upsAlarmAwaitingPower",
    22: "upsAlarmShutdownPending",
    23: "upsAlarmShutdownImminent",
    24: "upsAlarmTestInProgress",
}


def alarm_name(descr: str) -> str:
    """upsAlarmDescr as a name: a well-known alarm's descriptor, else the OID (vendor alarm)."""
    oid = descr.strip(".")
    prefix = WELL_KNOWN_ALARMS + "."
    if oid.startswith(prefix) and oid[len(prefix) :].isdigit():
        name = WELL_KNOWN_ALARM_NAMES.get(int(oid[len(prefix) :]))
        if name is not None:
            return name
    return oid


def ups_status(source: int | None, battery: int | None) -> str:
    """The Ups capability status: off, low_battery, on_battery, bypass, online or unknown."""
    if source == OutputSource.NONE:
        return "off"
    if battery in (BatteryStatus.LOW, BatteryStatus.DEPLETED):
        return "low_battery"
    if source == OutputSource.BATTERY:
        return "on_battery"
    if source == OutputSource.BYPASS:
        return "bypass"
    if source in (OutputSource.NORMAL, OutputSource.BOOSTER, OutputSource.REDUCER):
        return "online"
    return "unknown"


def decode_ups(
    values: Mapping[str, int | None], alarms: Sequence[str] = ()
) -> dict[str, int | float | str | bool | list[str] | None]:
    """Build the UPS state from raw integers by OID (None = the agent lacks the object).

    Adds ``on_battery`` (output source is battery), ``battery_low``, the Ups capability
    ``status`` and ``alarms`` (names from the alarm table, see :func:`alarm_name`).
    """
    state: dict[str, int | float | str | bool | list[str] | None] = {}
    for obj in UPS_OBJECTS:
        raw = values.get(obj.oid)
        state[obj.key] = None if raw is None else obj.decode(raw)
    source, battery = values.get(_SOURCE_OID), values.get(_BATTERY_OID)
    state["on_battery"] = source == OutputSource.BATTERY
    state["battery_low"] = battery in (BatteryStatus.LOW, BatteryStatus.DEPLETED)
    state["status"] = ups_status(source, battery)
    state["alarms"] = [alarm_name(a) for a in alarms]
    return state


_SOURCE_OID = "1.3.6.1.2.1.33.1.4.1.0"
_BATTERY_OID = "1.3.6.1.2.1.33.1.2.1.0"
