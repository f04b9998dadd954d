"""RFC 1628 UPS-MIB objects cchub reads, as a table of frozen descriptions, and their decoding."""

from __future__ import annotations

import enum
from collections.abc import Mapping
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
    UpsObject("output_load_percent", "1.3.6.1.2.1.33.1.4.4.1.5.1", unit="%"),
    UpsObject("alarms_present", "1.3.6.1.2.1.33.1.6.1.0"),
)


def decode_ups(values: Mapping[str, int | None]) -> dict[str, int | float | str | bool | None]:
    """Build the UPS state from raw integers by OID (None = the agent lacks the object).

    Adds ``on_battery`` (output source is battery) and ``battery_low``.
    """
    state: dict[str, int | float | str | bool | None] = {}
    for obj in UPS_OBJECTS:
        raw = values.get(obj.oid)
        state[obj.key] = None if raw is None else obj.decode(raw)
    state["on_battery"] = values.get(_SOURCE_OID) == OutputSource.BATTERY
    state["battery_low"] = values.get(_BATTERY_OID) in (BatteryStatus.LOW, BatteryStatus.DEPLETED)
    return state


_SOURCE_OID = "1.3.6.1.2.1.33.1.4.1.0"
_BATTERY_OID = "1.3.6.1.2.1.33.1.2.1.0"
