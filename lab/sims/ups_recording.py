"""The UPS-MIB (RFC 1628) recording served by snmpsim, and how the simulator state maps onto it.

``render(state, uptime)`` turns the shipped ``lab/data/ups-mib.snmprec`` into the live file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from lab.simulator import SimState

RECORDING = Path(__file__).resolve().parent.parent / "data" / "ups-mib.snmprec"
UPS_MIB = "1.3.6.1.2.1.33.1"

BATTERY_STATUS = {"unknown": 1, "normal": 2, "low": 3, "depleted": 4}
OUTPUT_SOURCE = {
    "other": 1,
    "none": 2,
    "normal": 3,
    "bypass": 4,
    "battery": 5,
    "booster": 6,
    "reducer": 7,
}
# upsWellKnownAlarms (RFC 1628 section 1.3.6.1.2.1.33.1.6.3)
ALARMS = {
    "battery_bad": 1,
    "on_battery": 2,
    "low_battery": 3,
    "depleted_battery": 4,
    "temperature_bad": 5,
    "input_bad": 6,
    "output_bad": 7,
    "output_overload": 8,
    "on_bypass": 9,
    "bypass_bad": 10,
    "output_off_as_requested": 11,
    "ups_off_as_requested": 12,
    "charger_failed": 13,
    "ups_output_off": 14,
    "ups_system_off": 15,
    "fan_failure": 16,
    "fuse_failure": 17,
    "general_fault": 18,
    "diagnostic_test_failed": 19,
    "communications_lost": 20,
    "awaiting_power": 21,
    "shutdown_pending": 22,
    "shutdown_imminent": 23,
    "test_in_progress": 24,
}

BatteryStatus = Literal["unknown", "normal", "low", "depleted"]
OutputSource = Literal["other", "none", "normal", "bypass", "battery", "booster", "reducer"]
AlarmName = Literal[
    "battery_bad", "on_battery", "low_battery", "depleted_battery", "temperature_bad",
    "input_bad", "output_bad", "output_overload", "on_bypass", "bypass_bad",
    "output_off_as_requested", "ups_off_as_requested", "charger_failed", "ups_output_off",
    "ups_system_off", "fan_failure", "fuse_failure", "general_fault", "diagnostic_test_failed",
    "communications_lost", "awaiting_power", "shutdown_pending", "shutdown_imminent",
    "test_in_progress",
]  # fmt: skip


class UpsState(SimState):
    sys_name: str = "ups-1"
    manufacturer: str = "APC"
    model: str = "Smart-UPS 3000 RM"
    battery_status: BatteryStatus = "normal"
    seconds_on_battery: int = Field(0, ge=0)
    minutes_remaining: int = Field(52, ge=0)
    charge_remaining: int = Field(100, ge=0, le=100, description="%")
    battery_voltage: float = Field(54.6, ge=0, description="V")
    battery_temperature: int = Field(27, description="°C")
    input_voltage: int = Field(230, ge=0, description="V RMS")
    input_frequency: float = Field(50.0, ge=0, description="Hz")
    output_source: OutputSource = "normal"
    output_voltage: int = Field(230, ge=0, description="V RMS")
    output_load: int = Field(34, ge=0, le=200, description="% of rated")
    alarms: list[AlarmName] = []


@dataclass(frozen=True)
class UpsObject:
    """One recorded object whose value comes from the simulator state."""

    name: str
    oid: str
    tag: int  # snmprec type: 2 Integer, 4 OctetString, 66 Gauge32
    value: Callable[[UpsState], Any]


UPS_OBJECTS = (
    UpsObject("sysName", "1.3.6.1.2.1.1.5.0", 4, lambda s: s.sys_name),
    UpsObject("upsIdentManufacturer", f"{UPS_MIB}.1.1.0", 4, lambda s: s.manufacturer),
    UpsObject("upsIdentModel", f"{UPS_MIB}.1.2.0", 4, lambda s: s.model),
    UpsObject("upsIdentName", f"{UPS_MIB}.1.5.0", 4, lambda s: s.sys_name),
    UpsObject(
        "upsBatteryStatus", f"{UPS_MIB}.2.1.0", 2, lambda s: BATTERY_STATUS[s.battery_status]
    ),
    UpsObject("upsSecondsOnBattery", f"{UPS_MIB}.2.2.0", 2, lambda s: s.seconds_on_battery),
    UpsObject("upsEstimatedMinutesRemaining", f"{UPS_MIB}.2.3.0", 2, lambda s: s.minutes_remaining),
    UpsObject("upsEstimatedChargeRemaining", f"{UPS_MIB}.2.4.0", 2, lambda s: s.charge_remaining),
    UpsObject("upsBatteryVoltage", f"{UPS_MIB}.2.5.0", 2, lambda s: round(s.battery_voltage * 10)),
    UpsObject("upsBatteryTemperature", f"{UPS_MIB}.2.7.0", 2, lambda s: s.battery_temperature),
    UpsObject(
        "upsInputFrequency", f"{UPS_MIB}.3.3.1.2.1", 2, lambda s: round(s.input_frequency * 10)
    ),
    UpsObject("upsInputVoltage", f"{UPS_MIB}.3.3.1.3.1", 2, lambda s: s.input_voltage),
    UpsObject("upsOutputSource", f"{UPS_MIB}.4.1.0", 2, lambda s: OUTPUT_SOURCE[s.output_source]),
    UpsObject("upsOutputVoltage", f"{UPS_MIB}.4.4.1.2.1", 2, lambda s: s.output_voltage),
    UpsObject("upsOutputPercentLoad", f"{UPS_MIB}.4.4.1.5.1", 2, lambda s: s.output_load),
    UpsObject("upsAlarmsPresent", f"{UPS_MIB}.6.1.0", 66, lambda s: len(s.alarms)),
)


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.split("."))


def render(state: UpsState, uptime_ticks: int, template: str | None = None) -> str:
    """The snmprec text for ``state``: recorded values, state-driven ones, the alarm table."""
    text = template if template is not None else RECORDING.read_text(encoding="utf-8")
    records: dict[str, tuple[int, str]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        oid, tag, value = line.split("|", 2)
        records[oid] = (int(tag), value)
    records["1.3.6.1.2.1.1.3.0"] = (67, str(uptime_ticks))
    for obj in UPS_OBJECTS:
        records[obj.oid] = (obj.tag, str(obj.value(state)))
    # upsAlarmTable: upsAlarmId, upsAlarmDescr (a upsWellKnownAlarms OID), upsAlarmTime
    for row, alarm in enumerate(state.alarms, start=1):
        records[f"{UPS_MIB}.6.2.1.1.{row}"] = (2, str(row))
        records[f"{UPS_MIB}.6.2.1.2.{row}"] = (6, f"{UPS_MIB}.6.3.{ALARMS[alarm]}")
        records[f"{UPS_MIB}.6.2.1.3.{row}"] = (67, str(uptime_ticks))
    lines = [f"{oid}|{tag}|{value}" for oid, (tag, value) in sorted(
        records.items(), key=lambda item: _oid_key(item[0]))]  # fmt: skip
    return "\n".join(lines) + "\n"


def object_named(name: str) -> UpsObject:
    for obj in UPS_OBJECTS:
        if obj.name == name:
            return obj
    raise KeyError(name)


__all__ = ["ALARMS", "UPS_OBJECTS", "UpsObject", "UpsState", "object_named", "render"]
