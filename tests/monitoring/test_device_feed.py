"""Device states as warning-core input: offline edges as occurrences, state keys as samples."""

from __future__ import annotations

from typing import Any

from hub.alarms import DeviceFeed, metric_prefix, unit_of
from hub.events import DeviceStateChanged
from monitoring.alarms import AlarmState, Condition
from tests.monitoring.harness import Rig

UPS_STATE: dict[str, Any] = {
    "battery_status": "normal",
    "charge_percent": 97,
    "minutes_remaining": 42,
    "input_voltage": 229,
    "on_battery": False,
    "battery_low": False,
    "alarms_present": None,
}


def snapshot(online: bool, error: str = "", **state: Any) -> DeviceStateChanged:
    return DeviceStateChanged(
        device="ups-1", type="ups-mib", online=online, state={**UPS_STATE, **state}, error=error
    )


def rig() -> tuple[Rig, DeviceFeed]:
    prefix = metric_prefix("ups-mib")
    rules: list[dict[str, Any]] = [
        {"id": "offline", "event": "device.offline"},
        {"id": "on-battery", "metric": f"{prefix}.on_battery", "above": 1},
        {"id": "charge", "metric": f"{prefix}.charge_percent", "below": 30, "unit": "%",
         "stale_after": 60},
    ]  # fmt: skip
    test_rig = Rig(rules)
    return test_rig, DeviceFeed(test_rig.core, test_rig.clock)


async def test_units_follow_the_state_key_names() -> None:
    assert [unit_of(k) for k in ("charge_percent", "input_voltage", "minutes_remaining")] == [
        "%",
        "V",
        "min",
    ]
    assert unit_of("on_battery") == ""


async def test_states_become_samples_and_offline_edges_occurrences() -> None:
    test_rig, feed = rig()
    feed.on_state(snapshot(False, "not started"))  # not a failure: nothing raised
    feed.on_state(snapshot(True))
    assert test_rig.core.alarms() == []
    # numbers and booleans are fed (None: "no value"); text such as battery_status is not
    assert test_rig.core.stats.samples_ingested == 6
    feed.on_state(snapshot(True, on_battery=True, charge_percent=25))
    assert {a.id for a in test_rig.core.alarms()} == {"on-battery@ups-1", "charge@ups-1"}
    feed.on_state(snapshot(False, "No SNMP response received before timeout"))
    feed.on_state(snapshot(False, "No SNMP response received before timeout"))
    offline = test_rig.core.get("offline@ups-1")
    assert offline.state is AlarmState.ACTIVE_UNACK and offline.count == 1
    assert offline.message == "device ups-1 (ups-mib): No SNMP response received before timeout"
    feed.on_state(snapshot(True))
    assert test_rig.state("offline@ups-1") is AlarmState.RTN_UNACK
    feed.on_state(snapshot(False, "stopped"))  # the hub shutting down is not an outage
    assert test_rig.core.get("offline@ups-1").condition is Condition.NORMAL


async def test_unchanged_states_are_fed_again_so_staleness_works() -> None:
    test_rig, feed = rig()
    feed.on_state(snapshot(True))
    for _ in range(3):
        test_rig.clock.advance(50)
        feed.resample()
        test_rig.core.tick()
    assert "charge@ups-1" not in [a.id for a in test_rig.core.alarms()]
    feed.on_state(snapshot(False, "timeout"))  # offline devices are not resampled
    test_rig.tick(61)
    feed.resample()
    assert test_rig.core.get("charge@ups-1").condition is Condition.NO_DATA
