"""The ISA-18.2 style lifecycle: ack, return to normal, latch and reset, shelve, mass ack."""

from __future__ import annotations

import pytest

from monitoring.alarms import AlarmState, Cause
from monitoring.config import WarningLevel
from monitoring.errors import AlarmNotFound, IllegalTransition
from monitoring.warning import AlarmFilter
from tests.monitoring.harness import Rig

LOAD = {"id": "ups-load", "metric": "ups.load", "above": 90, "clear": 80}
LATCHED = {"id": "smoke", "metric": "room.smoke", "above": 1, "latch": True, "level": "red"}


def high(rig: Rig, source: str = "ups-1") -> None:
    rig.sample("ups.load", source, 95)


def low(rig: Rig, source: str = "ups-1") -> None:
    rig.sample("ups.load", source, 50)


async def test_ack_with_comment_then_return_to_normal() -> None:
    rig = Rig([LOAD])
    high(rig)
    rig.clock.advance(5)
    acked = rig.core.ack("ups-load@ups-1", "duty-1", "calling the electrician")
    assert acked.state is AlarmState.ACTIVE_ACK
    assert (acked.ack_by, acked.ack_comment, acked.ack_ts) == (
        "duty-1",
        "calling the electrician",
        rig.clock.now,
    )
    low(rig)
    assert rig.sink.path("ups-load@ups-1") == ["normal", "active-unack", "active-ack", "normal"]
    ack = rig.sink.transitions[1]
    assert (ack.cause, ack.actor, ack.comment) == (Cause.ACK, "duty-1", "calling the electrician")


async def test_returned_to_normal_unacknowledged_needs_an_ack() -> None:
    rig = Rig([LOAD])
    high(rig)
    low(rig)
    assert rig.state("ups-load@ups-1") is AlarmState.RTN_UNACK
    assert [a.id for a in rig.core.alarms()] == ["ups-load@ups-1"]  # still listed
    high(rig)  # comes back before anyone looked: active again, same alarm
    assert rig.state("ups-load@ups-1") is AlarmState.ACTIVE_UNACK
    assert rig.core.get("ups-load@ups-1").count == 2
    low(rig)
    rig.core.ack("ups-load@ups-1", "duty-1")
    assert rig.state("ups-load@ups-1") is AlarmState.NORMAL
    assert rig.core.alarms() == []
    assert rig.core.alarms(AlarmFilter(active=False))[0].id == "ups-load@ups-1"


async def test_latched_alarm_stays_until_acknowledged_and_reset() -> None:
    rig = Rig([LATCHED])
    aid = "smoke@room-1"
    rig.sample("room.smoke", "room-1", 1)
    with pytest.raises(IllegalTransition, match="the condition is still active"):
        rig.core.reset(aid, "duty-1")
    rig.sample("room.smoke", "room-1", 0)
    assert rig.state(aid) is AlarmState.LATCHED_UNACK
    with pytest.raises(IllegalTransition, match="acknowledge the latched alarm before resetting"):
        rig.core.reset(aid, "duty-1")
    rig.core.ack(aid, "duty-1", "checked the room")
    assert rig.state(aid) is AlarmState.LATCHED_ACK
    rig.tick(3600)  # time alone does not clear a latch
    assert rig.state(aid) is AlarmState.LATCHED_ACK
    rig.core.reset(aid, "engineer-1", "detector cleaned")
    assert rig.sink.path(aid) == [
        "normal",
        "active-unack",
        "latched-unack",
        "latched-ack",
        "normal",
    ]


async def test_latched_alarm_acknowledged_while_active_cannot_be_reset_until_clear() -> None:
    rig = Rig([LATCHED])
    aid = "smoke@room-1"
    rig.sample("room.smoke", "room-1", 1)
    rig.core.ack(aid, "duty-1")
    with pytest.raises(IllegalTransition, match="the condition is still active"):
        rig.core.reset(aid, "duty-1")
    rig.sample("room.smoke", "room-1", 0)
    assert rig.state(aid) is AlarmState.LATCHED_ACK
    rig.sample("room.smoke", "room-1", 1)  # it comes back: annunciated again
    assert rig.state(aid) is AlarmState.ACTIVE_UNACK
    assert rig.core.get(aid).ack_by is None


async def test_shelved_alarm_returns_by_itself_when_the_shelf_expires() -> None:
    rig = Rig([LOAD])
    aid = "ups-load@ups-1"
    high(rig)
    shelved = rig.core.shelve(aid, 600, "duty-1", "maintenance on the UPS")
    assert shelved.state is AlarmState.SHELVED
    assert shelved.shelved_until == rig.clock.now + 600
    assert (shelved.shelved_by, shelved.shelve_reason) == ("duty-1", "maintenance on the UPS")
    low(rig)
    high(rig)  # condition changes while shelved change nothing visible
    rig.tick(599)
    assert rig.state(aid) is AlarmState.SHELVED
    rig.tick(1)
    back = rig.core.get(aid)
    assert back.state is AlarmState.ACTIVE_UNACK  # still high: annunciated again
    assert back.shelved_until is None
    expired = rig.sink.transitions[-1]
    assert (expired.cause, expired.old, expired.new) == (
        Cause.SHELF_EXPIRED,
        AlarmState.SHELVED,
        AlarmState.ACTIVE_UNACK,
    )


async def test_shelf_expiry_of_a_cleared_alarm_and_manual_unshelve() -> None:
    rig = Rig([LOAD])
    high(rig)
    rig.core.shelve("ups-load@ups-1", 60, "duty-1", "noisy")
    low(rig)
    rig.tick(61)
    assert rig.state("ups-load@ups-1") is AlarmState.NORMAL
    high(rig, "ups-2")
    rig.core.shelve("ups-load@ups-2", 60, "duty-1", "noisy")
    rig.core.shelve("ups-load@ups-2", 120, "duty-2", "longer")  # re-shelving moves the expiry
    assert rig.core.get("ups-load@ups-2").shelved_until == rig.clock.now + 120
    rig.core.unshelve("ups-load@ups-2", "duty-2")
    assert rig.state("ups-load@ups-2") is AlarmState.ACTIVE_UNACK
    with pytest.raises(IllegalTransition, match="the alarm is not shelved"):
        rig.core.unshelve("ups-load@ups-2", "duty-2")
    with pytest.raises(IllegalTransition, match=r"shelve duration must be in \(0, 86400\]"):
        rig.core.shelve("ups-load@ups-2", 86401, "duty-2", "forever")


async def test_illegal_requests_are_refused_with_the_reason() -> None:
    rig = Rig([LOAD])
    high(rig)
    low(rig)
    rig.core.ack("ups-load@ups-1", "d")
    with pytest.raises(IllegalTransition, match="the alarm is normal: nothing to acknowledge"):
        rig.core.ack("ups-load@ups-1", "d")
    high(rig)
    rig.core.ack("ups-load@ups-1", "d")
    with pytest.raises(IllegalTransition, match="already acknowledged"):
        rig.core.ack("ups-load@ups-1", "d")
    with pytest.raises(IllegalTransition, match=r"only a latched alarm can be reset \(this"):
        rig.core.reset("ups-load@ups-1", "d")
    with pytest.raises(AlarmNotFound, match="no alarm 'nope@x'"):
        rig.core.ack("nope@x", "d")


async def test_mass_acknowledge_by_filter_and_by_ids() -> None:
    rules = [LOAD, {**LATCHED, "latch": False}]
    rig = Rig(rules)
    for ups in ("ups-1", "ups-2", "ups-3"):
        high(rig, ups)
    rig.sample("room.smoke", "room-1", 1)
    rig.core.ack("ups-load@ups-3", "d")
    done, skipped = rig.core.ack_many(AlarmFilter(levels=frozenset({WarningLevel.BLUE})), "ops-1")
    assert [a.id for a in done] == ["ups-load@ups-1", "ups-load@ups-2"]
    assert skipped == [("ups-load@ups-3", "the alarm is already acknowledged")]
    assert rig.state("smoke@room-1") is AlarmState.ACTIVE_UNACK
    done, skipped = rig.core.ack_many(["smoke@room-1", "ghost@x"], "ops-1", "seen")
    assert [a.ack_comment for a in done] == ["seen"]
    assert skipped == [("ghost@x", "no such alarm")]


async def test_steps_escalate_until_acknowledged() -> None:
    rule = {**LOAD, "actions": [{"do": "notify"}, {"do": "notify", "after": 300},
                                {"do": "notify", "after": 900}]}  # fmt: skip
    rig = Rig([rule])
    high(rig)
    await rig.settle()
    assert rig.consoles.told == [("ups-load@ups-1", 0, "blue")]
    rig.tick(299)
    await rig.settle()
    assert len(rig.consoles.told) == 1
    rig.tick(1)
    await rig.settle()
    assert [i for _, i, _ in rig.consoles.told] == [0, 1]
    rig.core.ack("ups-load@ups-1", "duty-1")
    rig.tick(3600)
    await rig.settle()
    assert [i for _, i, _ in rig.consoles.told] == [0, 1]  # acknowledged: no step 2
    assert [(r.ok, r.detail) for r in rig.sink.results] == [(True, "consoles notified")] * 2


async def test_a_step_kind_without_handler_is_reported_failed() -> None:
    rig = Rig([{**LOAD, "actions": [{"do": "trap", "target": "10.0.0.9"}]}])
    high(rig)
    await rig.settle()
    (result,) = rig.sink.results
    assert result.ok is False
    assert result.detail == "no handler for 'trap' (available: notify)"


async def test_default_steps_come_from_the_level_policy() -> None:
    policy = {"actions": {"red": [{"do": "notify"}, {"do": "notify", "after": 60}]}}
    rig = Rig([LOAD, {**LATCHED, "latch": False}], policy)
    high(rig)  # blue, no policy for blue: one notify
    rig.sample("room.smoke", "room-1", 1)
    rig.tick(60)
    await rig.settle()
    assert sorted(rig.consoles.told) == [
        ("smoke@room-1", 0, "red"),
        ("smoke@room-1", 1, "red"),
        ("ups-load@ups-1", 0, "blue"),
    ]
