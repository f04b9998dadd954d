"""Rules over samples: hysteresis, consecutive breaches, rate of change, no data, bad input."""

from __future__ import annotations

import logging
import math

import pytest
from pydantic import ValidationError

from monitoring.alarms import AlarmState, Condition
from monitoring.config import Rule
from monitoring.samples import Rejection
from tests.monitoring.harness import Rig

TEMP = {"id": "room-hot", "metric": "room.temperature", "above": 35, "clear": 30, "unit": "C"}


async def test_hysteresis_fires_at_above_and_clears_only_below_clear() -> None:
    rig = Rig([TEMP])
    aid = "room-hot@sensor-1"
    for value in (20, 34.9):
        rig.sample("room.temperature", "sensor-1", value, "C")
    assert rig.core.alarms() == []
    rig.sample("room.temperature", "sensor-1", 35, "C")  # at the threshold: fires
    assert rig.state(aid) is AlarmState.ACTIVE_UNACK
    assert rig.core.get(aid).message == "room.temperature on sensor-1 = 35 C (above 35)"
    for value in (33, 30, 34.9):  # inside the band: still active
        rig.sample("room.temperature", "sensor-1", value, "C")
        assert rig.core.get(aid).condition is Condition.ACTIVE, value
    rig.sample("room.temperature", "sensor-1", 29.9, "C")
    assert rig.state(aid) is AlarmState.RTN_UNACK
    rig.sample("room.temperature", "sensor-1", 34, "C")  # below 'above': no re-fire
    assert rig.state(aid) is AlarmState.RTN_UNACK
    assert rig.sink.path(aid) == ["normal", "active-unack", "rtn-unack"]


async def test_below_rule_with_hysteresis() -> None:
    rig = Rig([{"id": "batt", "metric": "ups.charge_percent", "below": 40, "clear": 50}])
    rig.sample("ups.charge_percent", "ups-1", 40)
    rig.sample("ups.charge_percent", "ups-1", 49)
    assert rig.core.get("batt@ups-1").condition is Condition.ACTIVE
    rig.sample("ups.charge_percent", "ups-1", 50.5)
    assert rig.core.get("batt@ups-1").condition is Condition.NORMAL


async def test_consecutive_breaches_before_firing() -> None:
    rig = Rig([{**TEMP, "consecutive": 3}])
    aid = "room-hot@sensor-1"
    rig.sample("room.temperature", "sensor-1", 40, "C")
    rig.sample("room.temperature", "sensor-1", 40, "C")
    rig.sample("room.temperature", "sensor-1", 20, "C")  # a good reading starts over
    rig.sample("room.temperature", "sensor-1", 40, "C")
    rig.sample("room.temperature", "sensor-1", 40, "C")
    assert rig.core.alarms() == []
    rig.sample("room.temperature", "sensor-1", 40, "C")
    assert rig.state(aid) is AlarmState.ACTIVE_UNACK


async def test_rate_of_change_per_minute() -> None:
    rule = {"id": "pressure-climb", "metric": "tank.pressure", "of": "rate", "above": 10,
            "clear": 2, "rate_window": 60, "unit": "kPa"}  # fmt: skip
    rig = Rig([rule])
    aid = "pressure-climb@tank-1"
    for value in range(100, 107):  # +1 kPa every 10 s: 6 kPa/min
        rig.sample("tank.pressure", "tank-1", value, "kPa")
        rig.clock.advance(10)
    assert rig.core.alarms() == []
    rig.sample("tank.pressure", "tank-1", 120, "kPa")  # 101 -> 120 over the last minute
    alarm = rig.core.get(aid)
    assert alarm.state is AlarmState.ACTIVE_UNACK
    assert alarm.value == pytest.approx(19.0)
    assert alarm.message == "rate of tank.pressure on tank-1 = 19 kPa/min (above 10)"
    for _ in range(7):  # flat: the rate falls to 0 once the window has passed
        rig.clock.advance(10)
        rig.sample("tank.pressure", "tank-1", 120, "kPa")
    assert rig.state(aid) is AlarmState.RTN_UNACK


async def test_no_data_is_its_own_state_never_ok() -> None:
    rule = {"id": "feed", "metric": "ups.charge_percent", "below": 20, "stale_after": 30}
    rig = Rig([rule])
    aid = "feed@ups-1"
    rig.sample("ups.charge_percent", "ups-1", 90)
    rig.tick(29)
    assert rig.core.alarms() == []
    rig.sample("ups.charge_percent", "ups-1", None)  # polled, no value: not fresh data
    rig.tick(2)
    alarm = rig.core.get(aid)
    assert alarm.condition is Condition.NO_DATA
    assert alarm.state is AlarmState.ACTIVE_UNACK
    assert alarm.message == "no data for ups.charge_percent from ups-1 for 31 s"
    rig.tick(60)  # still silent: one alarm, not one per tick
    assert rig.sink.path(aid) == ["normal", "active-unack"]
    rig.sample("ups.charge_percent", "ups-1", 88)
    assert rig.core.get(aid).condition is Condition.NORMAL
    assert rig.state(aid) is AlarmState.RTN_UNACK


async def test_staleness_only_rule_and_no_data_then_breach() -> None:
    rig = Rig([{"id": "alive", "metric": "gw.*", "stale_after": 10}])
    rig.sample("gw.calls", "gw-1", 3)
    rig.tick(11)
    aid = "alive@gw-1:gw.calls"  # a class rule names the metric in the id
    assert rig.core.get(aid).condition is Condition.NO_DATA
    rig.sample("gw.calls", "gw-1", 4)
    assert rig.core.get(aid).condition is Condition.NORMAL


async def test_class_rules_match_metric_globs_and_labels() -> None:
    rule = {"id": "hot", "metric": "*.temperature", "labels": {"room": "equip-*"}, "above": 40}
    rig = Rig([rule])
    rig.sample("rack.temperature", "modbus-1", 45, room="equip-2", sensor="7")
    rig.sample("rack.temperature", "modbus-1", 45, room="office")
    rig.sample("rack.humidity", "modbus-1", 45, room="equip-2")
    assert [a.id for a in rig.core.alarms()] == [
        "hot@modbus-1:rack.temperature,room=equip-2,sensor=7"
    ]


@pytest.mark.parametrize(
    ("value", "unit", "ts_offset", "reason"),
    [
        (math.nan, "C", 0, Rejection.NOT_FINITE),
        (math.inf, "C", 0, Rejection.NOT_FINITE),
        (10**400, "C", 0, Rejection.NOT_FINITE),
        ("hot", "C", 0, Rejection.BAD_TYPE),
        ([1], "C", 0, Rejection.BAD_TYPE),
        (20, "F", 0, Rejection.WRONG_UNIT),
        (20, "", 0, Rejection.WRONG_UNIT),
        (20, "C", 3600, Rejection.FUTURE),
    ],
)
async def test_bad_samples_are_rejected_and_counted(
    value: object, unit: str, ts_offset: float, reason: Rejection
) -> None:
    rig = Rig([TEMP])
    accepted = rig.core.submit(
        "room.temperature", "sensor-1", value, rig.clock.now + ts_offset, unit
    )
    assert accepted is False
    assert rig.core.stats.rejected == {reason: 1}
    assert rig.core.stats.samples_ingested == 0
    assert rig.core.alarms() == []


async def test_garbage_fields_never_raise() -> None:
    rig = Rig([TEMP])
    calls = [
        (None, "s", 1, rig.clock.now),
        ("m", 7, 1, rig.clock.now),
        ("m", "s", 1, "yesterday"),
        ("m", "s", 1, math.nan),
        ("m", "s", 1, rig.clock.now, 5),
        ("m", "s", 1, rig.clock.now, "", "not-a-mapping"),
    ]
    for args in calls:
        assert rig.core.submit(*args) is False, args
    assert rig.core.stats.rejected == {Rejection.BAD_FIELD: len(calls)}


async def test_out_of_order_sample_is_rejected() -> None:
    rig = Rig([TEMP])
    assert rig.core.submit("room.temperature", "s1", 20, rig.clock.now, "C")
    assert not rig.core.submit("room.temperature", "s1", 50, rig.clock.now - 5, "C")
    assert rig.core.stats.rejected == {Rejection.OUT_OF_ORDER: 1}
    assert rig.core.alarms() == []


async def test_rejections_are_logged_once_per_source_and_recovery_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig([TEMP])
    caplog.set_level(logging.INFO, logger="monitoring.warning")
    for _ in range(50):
        rig.sample("room.temperature", "sensor-1", "garbage", "C")
        rig.sample("room.temperature", "sensor-1", 20, "F")
    rig.sample("room.temperature", "sensor-2", math.nan, "C")
    rig.sample("room.temperature", "sensor-1", 20, "C")
    rig.sample("room.temperature", "sensor-1", 21, "C")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert lines == [
        "[source=sensor-1] sample rejected (bad_type): value must be a number, bool or null, "
        "not str",
        "[source=sensor-1] sample rejected (wrong_unit): room.temperature: unit 'F' does not "
        "match rule 'room-hot' (expects 'C')",
        "[source=sensor-2] sample rejected (not_finite): value is not a finite number: nan",
        "[source=sensor-1] samples accepted again",
    ]
    assert rig.core.stats.samples_rejected == 101


async def test_rule_validation_messages() -> None:
    cases = {
        "a rule needs either 'metric' or 'event'": {"id": "r"},
        "a rule needs 'above' or 'below'": {"id": "r", "metric": "m"},
        "'clear' (5) must be <= 'above' (3)": {"id": "r", "metric": "m", "above": 3, "clear": 5},
        "'clear' (1) must be >= 'below' (3)": {"id": "r", "metric": "m", "below": 3, "clear": 1},
        "an event rule takes no thresholds": {"id": "r", "event": "e", "above": 1},
        "a webhook step needs 'url'": {"id": "r", "event": "e", "actions": [{"do": "webhook"}]},
        "action steps must be listed in the order": {
            "id": "r",
            "event": "e",
            "actions": [{"do": "notify", "after": 60}, {"do": "notify"}],
        },
    }
    for message, data in cases.items():
        with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
            Rule.model_validate(data)
