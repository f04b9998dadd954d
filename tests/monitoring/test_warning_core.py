"""The core across alarms: dependencies, dedupe, flapping, escalation by count, webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from monitoring.actions import WebhookAction
from monitoring.alarms import AlarmState, Condition
from monitoring.config import WebhookPolicy
from monitoring.samples import Occurrence, OccurrenceState, Rejection
from tests.monitoring.harness import Rig

ON_BATTERY = {"id": "ups-on-battery", "metric": "ups.on_battery", "above": 1,
              "level": "orange", "impairs": True}  # fmt: skip
OFFLINE = {"id": "offline", "event": "device.offline", "level": "yellow",
           "unreachable": True, "impairs": True}  # fmt: skip
POWER = [
    {"parent": "ups-main", "children": ["switch-1", "nvr-1"], "via": "power"},
    {"parent": "switch-1", "children": ["gw-pstn"], "via": "network"},
]


def offline(rig: Rig, device: str) -> None:
    rig.event("device.offline", device, OccurrenceState.RAISE)


def online(rig: Rig, device: str) -> None:
    rig.event("device.offline", device, OccurrenceState.CLEAR)


async def test_ups_on_battery_suppresses_what_sits_behind_it() -> None:
    rig = Rig([ON_BATTERY, OFFLINE], dependencies=POWER)
    rig.sample("ups.on_battery", "ups-main", True)
    offline(rig, "switch-1")
    offline(rig, "gw-pstn")
    offline(rig, "pbx-9")  # not behind the UPS
    await rig.settle()
    ups = rig.core.get("ups-on-battery@ups-main")
    switch = rig.core.get("offline@switch-1")
    gateway = rig.core.get("offline@gw-pstn")
    assert ups.state is AlarmState.ACTIVE_UNACK
    assert (switch.state, switch.suppressed_by) == (AlarmState.SUPPRESSED, "ups-main")
    assert (gateway.state, gateway.suppressed_by) == (AlarmState.SUPPRESSED, "switch-1")
    assert rig.state("offline@pbx-9") is AlarmState.ACTIVE_UNACK
    # recorded, not notified
    assert sorted(a for a, _, _ in rig.consoles.told) == [
        "offline@pbx-9",
        "ups-on-battery@ups-main",
    ]
    # mains back, the switch still down: now it is news; the gateway stays behind the switch
    rig.sample("ups.on_battery", "ups-main", False)
    await rig.settle()
    assert rig.state("offline@switch-1") is AlarmState.ACTIVE_UNACK
    assert rig.state("offline@gw-pstn") is AlarmState.SUPPRESSED
    assert rig.core.get("offline@gw-pstn").suppressed_by == "switch-1"
    assert "offline@switch-1" in [a for a, _, _ in rig.consoles.told]
    online(rig, "gw-pstn")
    online(rig, "switch-1")
    assert rig.state("offline@switch-1") is AlarmState.RTN_UNACK
    assert rig.state("offline@gw-pstn") is AlarmState.NORMAL  # never annunciated
    assert rig.sink.path("offline@gw-pstn") == ["normal", "suppressed", "normal"]


async def test_a_child_down_first_is_suppressed_when_the_parent_fails() -> None:
    rig = Rig([ON_BATTERY, OFFLINE], dependencies=POWER)
    offline(rig, "nvr-1")
    rig.core.ack("offline@nvr-1", "duty-1", "looking")
    rig.sample("ups.on_battery", "ups-main", 1)
    assert rig.state("offline@nvr-1") is AlarmState.SUPPRESSED
    rig.sample("ups.on_battery", "ups-main", 0)
    assert rig.state("offline@nvr-1") is AlarmState.ACTIVE_ACK  # the ack still stands


async def test_a_thousand_identical_traps_make_one_alarm() -> None:
    rig = Rig([{"id": "ups-trap", "event": "trap.upsOnBattery", "level": "orange"}])
    for _ in range(1000):
        rig.event("trap.upsOnBattery", "10.0.0.5", OccurrenceState.PULSE)
        rig.clock.advance(0.01)
    rig.event("trap.upsOnBattery", "10.0.0.6", OccurrenceState.PULSE)
    await rig.settle()
    alarms = {a.id: a for a in rig.core.alarms()}
    assert sorted(alarms) == ["ups-trap@10.0.0.5", "ups-trap@10.0.0.6"]
    assert alarms["ups-trap@10.0.0.5"].count == 1000
    assert rig.sink.path("ups-trap@10.0.0.5") == ["normal", "active-unack"]
    assert [a for a, _, _ in rig.consoles.told].count("ups-trap@10.0.0.5") == 1
    rig.tick()
    assert rig.sink.updates[-2].count == 1000  # the count is persisted on the next tick
    # a one-shot event has no "clear": it lapses after the dedupe window of quiet
    rig.tick(299)
    assert rig.core.get("ups-trap@10.0.0.5").condition is Condition.ACTIVE
    rig.tick(2)
    assert rig.state("ups-trap@10.0.0.5") is AlarmState.RTN_UNACK
    rig.core.ack("ups-trap@10.0.0.5", "duty-1")
    rig.event("trap.upsOnBattery", "10.0.0.5", OccurrenceState.PULSE)  # later: a new episode
    assert rig.core.get("ups-trap@10.0.0.5").count == 1
    assert rig.sink.path("ups-trap@10.0.0.5")[-3:] == ["rtn-unack", "normal", "active-unack"]
    assert rig.core.stats.occurrences == 1002


async def test_flapping_holds_notifications_until_it_settles() -> None:
    rule = {"id": "link", "metric": "link.up", "below": 0, "flap": {"changes": 4, "window": 60}}
    rig = Rig([rule])
    aid = "link@sw-1"
    for step in range(3):  # down/up with an ack each time: each episode is news
        rig.sample("link.up", "sw-1", 0)
        rig.core.ack(aid, "duty-1")
        rig.clock.advance(1)
        rig.sample("link.up", "sw-1", 1)
        rig.clock.advance(1)
        await rig.settle()
        if step == 1:
            assert rig.core.get(aid).flapping
    rig.sample("link.up", "sw-1", 0)
    await rig.settle()
    alarm = rig.core.get(aid)
    assert alarm.flapping and alarm.state is AlarmState.ACTIVE_UNACK
    assert len(rig.consoles.told) == 2  # episodes 3 and 4 were not announced
    rig.tick(61)  # quiet for a window: no longer flapping, and the open alarm is announced
    await rig.settle()
    assert not rig.core.get(aid).flapping
    assert len(rig.consoles.told) == 3
    assert [u.flapping for u in rig.sink.updates if u.id == aid][-1] is False


async def test_three_blue_alarms_on_one_site_make_a_yellow() -> None:
    policy = {"escalations": [{"id": "site-yellow", "level": "blue", "count": 3,
                               "within": 600, "by": "site", "to": "yellow"}]}  # fmt: skip
    sites = {"s1": {"site": "hq"}, "s2": {"site": "hq"}, "s3": {"site": "hq"},
             "s4": {"site": "branch"}}  # fmt: skip
    rig = Rig([OFFLINE | {"level": "blue", "impairs": False}], policy, source_labels=sites)
    offline(rig, "s1")
    rig.clock.advance(200)
    offline(rig, "s2")
    offline(rig, "s4")
    assert [a.id for a in rig.core.alarms()] == ["offline@s2", "offline@s4", "offline@s1"]
    rig.clock.advance(300)
    offline(rig, "s3")
    escalated = rig.core.get("site-yellow@hq")
    assert escalated.level.value == "yellow"
    assert escalated.state is AlarmState.ACTIVE_UNACK
    assert escalated.labels == {"site": "hq"}
    assert escalated.message == (
        "3 blue alarms within 600 s on site hq: offline@s1, offline@s2, offline@s3"
    )
    assert rig.core.alarms()[0].id == "site-yellow@hq"  # highest level first
    rig.tick(101)  # s1 raised more than 600 s ago: only two left in the window
    assert rig.state("site-yellow@hq") is AlarmState.RTN_UNACK


async def test_blue_alarms_spread_out_do_not_escalate() -> None:
    policy = {"escalations": [{"id": "esc", "level": "blue", "count": 3, "within": 600,
                               "by": None, "to": "orange"}]}  # fmt: skip
    rig = Rig([OFFLINE | {"level": "blue"}], policy)
    for device in ("a", "b", "c"):
        offline(rig, device)
        rig.tick(400)
    assert "esc@all" not in [a.id for a in rig.core.alarms()]


class HookServer:
    """A webhook receiver on 127.0.0.1: answers with the next status of ``statuses``."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict[str, Any]] = []
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        self.bodies.append(json.loads(await reader.readexactly(length)))
        status = self.statuses.pop(0) if self.statuses else 200
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def hook() -> AsyncIterator[HookServer]:
    receiver = HookServer([503, 502])
    receiver.server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    try:
        yield receiver
    finally:
        receiver.server.close()
        await receiver.server.wait_closed()


async def test_webhook_is_retried_then_delivered(hook: HookServer) -> None:
    rule = {"id": "hot", "metric": "t", "above": 1, "level": "red",
            "actions": [{"do": "webhook", "url": hook.url}]}  # fmt: skip
    rig = Rig([rule])
    webhook = WebhookAction(WebhookPolicy(attempts=3, backoff=0), origin="test-centre")
    rig.registry.register("webhook", webhook)
    try:
        rig.sample("t", "room-1", 5)
        await rig.settle()
    finally:
        await webhook.close()
    (result,) = rig.sink.results
    assert (result.ok, result.detail) == (True, "HTTP 200 after 3 attempt(s)")
    assert len(hook.bodies) == 3
    body = hook.bodies[-1]
    assert body["origin"] == "test-centre"
    assert body["alarm"]["id"] == "hot@room-1"
    assert body["alarm"]["level"] == "red"
    assert body["alarm"]["state"] == "active-unack"


async def test_webhook_gives_up_within_its_bounds(hook: HookServer) -> None:
    hook.statuses[:] = [500] * 10
    webhook = WebhookAction(WebhookPolicy(attempts=2, backoff=0))
    steps = [
        {"do": "webhook", "url": hook.url},
        {"do": "webhook", "url": hook.url + "x", "after": 1},
    ]
    rig = Rig([{"id": "r", "metric": "t", "above": 1, "actions": steps}])
    rig.registry.register("webhook", webhook)
    try:
        rig.sample("t", "a", 2)
        await rig.settle()
        hook.statuses[:] = [404]
        rig.tick(1)
        await rig.settle()
    finally:
        await webhook.close()
    assert [(r.ok, r.detail) for r in rig.sink.results] == [
        (False, f"{hook.url}: HTTP 500 after 2 attempt(s)"),
        (False, f"{hook.url}x: HTTP 404 (not retried)"),
    ]
    assert len(hook.bodies) == 3


async def test_garbage_occurrences_are_rejected_not_raised() -> None:
    rig = Rig([OFFLINE])
    bad: list[Any] = [
        Occurrence("", "sw-1", rig.clock.now),
        Occurrence("device.offline", None, rig.clock.now),  # type: ignore[arg-type]
        Occurrence("device.offline", "sw-1", float("nan")),
        Occurrence("device.offline", "sw-1", rig.clock.now, "raise"),  # type: ignore[arg-type]
        Occurrence("device.offline", "sw-1", rig.clock.now, labels=[1]),  # type: ignore[arg-type]
    ]
    for occurrence in bad:
        rig.core.occur(occurrence)
    assert rig.core.stats.rejected == {Rejection.BAD_FIELD: len(bad)}
    assert rig.core.stats.occurrences == 0 and rig.core.alarms() == []
