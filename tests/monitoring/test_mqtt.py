"""MQTT sensor feeds through a real broker (mosquitto) published to by mosquitto_pub: a
water-leak sensor raises an alarm; garbage, wrong units and bad timestamps are refused with
reasons; a flood is bounded (dropped and counted) and the feed keeps working after it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from lab.mosquitto import Mosquitto
from monitoring.ingest import Intake
from monitoring.mqtt import Inbox, MqttIngest, Route, parse_timestamp
from monitoring.targets import MqttFeed, MqttSubscription
from tests.monitoring.harness import Rig
from tests.monitoring.producers import eventually, wired

pytestmark = pytest.mark.slow
SHARED_LOOP = pytest.mark.asyncio(loop_scope="module")

SUBSCRIPTIONS: list[dict[str, Any]] = [
    # a water-leak sensor per room: {"leak": true, "battery": 87}
    {"topic": "site/+/+/leak", "metric": "water.leak", "source": "leak-{1}-{2}",
     "field": "leak", "labels": {"site": "{1}", "room": "{2}"}},
    # pressure transmitters: {"value": 3.2, "unit": "bar", "ts": "2026-...+08:00"}
    {"topic": "plant/pressure/#", "metric": "tank.pressure", "source": "{1}", "field": "value",
     "unit": "bar", "unit_field": "unit", "ts_field": "ts"},
    # a plain-number feed in tenths of a degree
    {"topic": "room/+/temperature", "metric": "room.temperature", "source": "{1}",
     "scale": 0.1, "unit": "°C", "qos": 0},
]  # fmt: skip
RULES = [
    {"id": "leak", "metric": "water.leak", "above": 1, "level": "red", "plan": "flood-response"},
    {"id": "overpressure", "metric": "tank.pressure", "above": 6, "unit": "bar", "level": "orange"},
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def broker() -> AsyncIterator[Mosquitto]:
    async with Mosquitto() as running:
        yield running


def feed(broker: Mosquitto, **fields: Any) -> MqttFeed:
    return MqttFeed.model_validate(
        {"host": broker.host, "port": broker.port, "subscriptions": SUBSCRIPTIONS, **fields}
    )


@pytest_asyncio.fixture(loop_scope="module")
async def ingest(broker: Mosquitto) -> AsyncIterator[tuple[Rig, Intake, MqttIngest]]:
    core, intake = wired(RULES)
    core.registry.register("plan", _plans)  # what a plan step would have been asked
    mqtt = MqttIngest(feed(broker, client_id="cchub-test"), intake, clock=core.clock)
    async with mqtt:
        await mqtt.subscribed(within=10)
        yield core, intake, mqtt


PLANS: list[str] = []


async def _plans(request: Any) -> str:
    PLANS.append(request.step.plan)
    return "plan requested"


def test_topic_filters_and_captures() -> None:
    route = Route(MqttSubscription.model_validate(SUBSCRIPTIONS[0]))
    assert route.match("site/hq/b2-pump-room/leak") == ["hq", "b2-pump-room"]
    assert route.match("site/hq/leak") is None
    assert route.match("site/hq/b2/leak/extra") is None
    deep = Route(MqttSubscription.model_validate(SUBSCRIPTIONS[1]))
    assert deep.match("plant/pressure/tank-1") == ["tank-1"]
    assert deep.match("plant/pressure/a/b") == ["a/b"]
    anything = Route(MqttSubscription(topic="#", metric="m", source="s"))
    assert anything.match("$SYS/broker/uptime") is None  # MQTT 4.7.2
    with pytest.raises(ValueError, match="wildcard level"):
        MqttSubscription(topic="a/+/b", metric="x.{2}", source="s")
    with pytest.raises(ValueError, match="'#' must be a whole last level"):
        MqttSubscription(topic="a/#/b", metric="x", source="s")


def test_timestamps() -> None:
    assert parse_timestamp("2026-11-01T08:00:00+08:00") == 1793491200.0
    assert parse_timestamp(1793491200) == 1793491200.0
    assert "milliseconds" in str(parse_timestamp(1793491200000))
    assert "no time zone" in str(parse_timestamp("2026-11-01T08:00:00"))
    assert "not ISO 8601" in str(parse_timestamp("yesterday"))
    assert "not" in str(parse_timestamp(True))


async def test_inbox_is_bounded() -> None:
    inbox: Inbox[int] = Inbox(3)
    assert [inbox.offer(i) for i in range(5)] == [True, True, True, False, False]
    assert (len(inbox), inbox.dropped, inbox.high_water) == (3, 2, 3)
    assert await inbox.take(2) == [0, 1]
    assert await inbox.take(10) == [2]


@SHARED_LOOP
async def test_a_water_leak_message_raises_an_alarm_that_asks_for_its_plan(
    broker: Mosquitto, ingest: tuple[Rig, Intake, MqttIngest]
) -> None:
    core, intake, _ = ingest
    await broker.publish("site/hq/b2-pump-room/leak", json.dumps({"leak": False, "battery": 87}))
    await eventually(lambda: intake.accepted["mqtt"] == 1)
    assert core.core.alarms() == []
    core.clock.advance(5)
    await broker.publish("site/hq/b2-pump-room/leak", json.dumps({"leak": True, "battery": 86}))
    await eventually(lambda: intake.accepted["mqtt"] == 2)
    [alarm] = core.core.alarms()
    assert alarm.id == "leak@leak-hq-b2-pump-room,room=b2-pump-room,site=hq"
    assert alarm.state.value == "active-unack" and alarm.level.value == "red"
    assert alarm.labels == {"site": "hq", "room": "b2-pump-room"}
    await core.settle()
    assert PLANS == ["flood-response"]
    series = intake.series.find("water.leak")[0]
    assert [p.value for p in series.points] == [0.0, 1.0]


@SHARED_LOOP
async def test_garbage_wrong_units_and_bad_timestamps_are_refused_with_reasons(
    broker: Mosquitto, ingest: tuple[Rig, Intake, MqttIngest]
) -> None:
    core, intake, mqtt = ingest
    now = core.clock.now
    good = {"value": 3.2, "unit": "bar", "ts": now - 5}
    bad: list[tuple[str, bytes | str]] = [
        ("plant/pressure/tank-1", json.dumps(good)),
        ("plant/pressure/tank-1", b"\xff\xfe not text"),
        ("plant/pressure/tank-1", "{not json"),
        ("plant/pressure/tank-1", json.dumps({"value": 3.3, "ts": now})),  # no unit
        ("plant/pressure/tank-1", json.dumps({**good, "unit": "psi"})),  # wrong unit
        ("plant/pressure/tank-1", json.dumps({**good, "ts": (now - 1) * 1000})),  # ms
        ("plant/pressure/tank-1", json.dumps({**good, "value": "high"})),  # text value
        ("plant/pressure/tank-1", json.dumps({**good, "ts": now + 3600})),  # future
        ("room/r101/temperature", "warm"),
        ("room/r101/temperature", "215"),
    ]
    for topic, payload in bad:
        await broker.publish(topic, payload, qos=1)
    await eventually(lambda: mqtt.stats.received == len(bad))
    await eventually(lambda: len(mqtt.inbox) == 0)
    refused = {reason: n for (channel, reason), n in intake.rejected.items() if channel == "mqtt"}
    assert refused == {
        "not_text": 1,
        "not_json": 1,
        "missing_field": 1,
        "wrong_unit": 1,
        "bad_timestamp": 1,
        "bad_type": 1,
        "future": 1,
        "not_a_number": 1,
    }
    assert intake.series.find("tank.pressure", "tank-1")[0].last.value == 3.2  # type: ignore[union-attr]
    temperature = intake.series.find("room.temperature", "r101")[0]
    assert (temperature.unit, temperature.last.value) == ("°C", 21.5)  # type: ignore[union-attr]


@SHARED_LOOP
async def test_a_flood_is_bounded_and_the_feed_goes_on(broker: Mosquitto) -> None:
    """20,000 messages in one burst into an inbox of 100: whatever cannot wait is dropped
    and counted, every message is accounted for, and the next message still gets through."""
    core, intake = wired(RULES)
    mqtt = MqttIngest(feed(broker, client_id="cchub-flood", queue=100), intake, clock=core.clock)
    async with mqtt:
        await mqtt.subscribed(within=10)
        burst = [str(200 + i % 50) for i in range(20_000)]
        await broker.publish("room/r102/temperature", *burst, qos=0)
        await eventually(lambda: mqtt.stats.received == len(burst), within=30)
        await eventually(lambda: len(mqtt.inbox) == 0)
        handled = intake.accepted["mqtt"] + sum(
            n for (channel, _), n in intake.rejected.items() if channel == "mqtt"
        )
        assert handled + mqtt.inbox.dropped == len(burst)
        assert mqtt.inbox.high_water <= 100
        before = intake.accepted["mqtt"]
        await broker.publish("site/hq/r102/leak", json.dumps({"leak": True}), qos=1)
        await eventually(lambda: intake.accepted["mqtt"] == before + 1)
        [alarm] = core.core.alarms()
        assert (alarm.source, alarm.state.value) == ("leak-hq-r102", "active-unack")


@SHARED_LOOP
async def test_reconnects_after_the_broker_restarts() -> None:
    core, intake = wired(RULES)
    async with Mosquitto() as first:
        config = MqttFeed.model_validate(
            {"host": first.host, "port": first.port, "backoff_max": 0.5,
             "subscriptions": SUBSCRIPTIONS}
        )  # fmt: skip
        mqtt = MqttIngest(config, intake, clock=core.clock)
        async with mqtt:
            await mqtt.subscribed(within=10)
            await first.stop()
            await eventually(lambda: not mqtt.stats.connected)
            restarted = Mosquitto(port=config.port)
            await restarted.start()
            try:
                await mqtt.subscribed(within=15)
                await restarted.publish("room/r103/temperature", "190", qos=1)
                await eventually(lambda: intake.accepted["mqtt"] == 1)
                assert mqtt.stats.connects == 2
            finally:
                await restarted.stop()
