"""Alarms survive a restart: a real SQLite store is closed and reopened, the service restores
every alarm with its state, count, ack, shelf and history, and the rules carry on."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hub.alarms import AlarmService
from hub.bus import EventBus
from hub.config import SiteConfig
from hub.events import AlarmStateChanged
from hub.store import SqliteStore
from monitoring.alarms import AlarmState, Condition
from monitoring.samples import Occurrence, OccurrenceState
from tests.monitoring.harness import Clock

SITE: dict[str, Any] = {
    "rules": [
        {"id": "on-battery", "metric": "ups.on_battery", "above": 1, "level": "orange",
         "impairs": True},
        {"id": "offline", "event": "device.offline", "unreachable": True, "level": "yellow"},
        {"id": "smoke", "metric": "room.smoke", "above": 1, "latch": True, "level": "red"},
        {"id": "feed", "metric": "room.temp", "above": 40, "stale_after": 60},
        {"id": "link", "metric": "link.up", "below": 0},
    ],
    "dependencies": [{"parent": "ups-1", "children": ["switch-1"]}],
}  # fmt: skip


class Running:
    """One life of the alarm service on a store file."""

    def __init__(self, path: Path, clock: Clock, site: dict[str, Any] = SITE) -> None:
        self.store = SqliteStore(path)
        self.bus = EventBus(sink=self.store)
        self.service = AlarmService(SiteConfig.model_validate(site), self.bus, self.store,
                                    clock=clock)  # fmt: skip

    async def __aenter__(self) -> AlarmService:
        await self.store.open()
        self.bus.continue_from(await self.store.last_event_id())
        await self.service.start()
        return self.service

    async def __aexit__(self, *exc: object) -> None:
        await self.service.stop()
        self.bus.close_all()
        await self.store.close()


async def test_alarms_come_back_with_state_and_history(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "cchub.db"
    async with Running(db, clock) as alarms:
        core = alarms.core
        core.submit("ups.on_battery", "ups-1", True, clock.now)
        core.occur(Occurrence("device.offline", "switch-1", clock.now, OccurrenceState.RAISE))
        core.submit("room.smoke", "room-1", 1, clock.now)
        core.submit("room.smoke", "room-1", 0, clock.now)
        await alarms.ack("smoke@room-1", "duty-1", "false alarm: dust")
        core.submit("link.up", "sw-9", 0, clock.now)
        await alarms.shelve("link@sw-9", 600, "eng-1", "fibre works tonight")
        core.submit("room.temp", "room-1", 20, clock.now)
        await alarms.ack("on-battery@ups-1", "duty-1", "mains failure, generator starting")
        before = {a.id: a for a in core.alarms()}
        history = await alarms.history("smoke@room-1")

    clock.advance(30)
    async with Running(db, clock) as alarms:
        after = {a.id: a for a in alarms.core.alarms()}
        assert after == before
        assert after["smoke@room-1"].state is AlarmState.LATCHED_ACK
        assert after["offline@switch-1"].suppressed_by == "ups-1"
        assert after["on-battery@ups-1"].ack_comment == "mains failure, generator starting"
        assert after["link@sw-9"].shelve_reason == "fibre works tonight"
        assert await alarms.history("smoke@room-1") == history
        moves = [(h.old_state, h.new_state, h.cause, h.actor, h.comment) for h in history]
        assert [m for m in moves if not m[2].startswith("action:")] == [
            ("normal", "active-unack", "activate", "", ""),
            ("active-unack", "latched-unack", "clear", "", ""),
            ("latched-unack", "latched-ack", "ack", "duty-1", "false alarm: dust"),
        ]
        (notified,) = [h for h in history if h.cause == "action:notify"]
        assert notified.data == {"step": 0, "ok": True}
        # the rules carry on from the restored conditions
        alarms.core.submit("ups.on_battery", "ups-1", False, clock.now)
        assert alarms.core.get("on-battery@ups-1").state is AlarmState.NORMAL
        assert alarms.core.get("offline@switch-1").state is AlarmState.ACTIVE_UNACK
        await alarms.reset("smoke@room-1", "eng-1", "detector cleaned")
        clock.advance(571)  # the shelf set before the restart expires on time
        alarms.core.tick()
        assert alarms.core.get("link@sw-9").state is AlarmState.ACTIVE_UNACK
        # the stale clock of a series restarts with the hub: no data since is "no data"
        assert alarms.core.get("feed@room-1").condition is Condition.NO_DATA
        await alarms.ack("link@sw-9", "duty-2", "")

    async with Running(db, clock) as alarms:
        states = {a.id: a.state for a in alarms.core.alarms(None)}
        assert states == {
            "offline@switch-1": AlarmState.ACTIVE_UNACK,
            "link@sw-9": AlarmState.ACTIVE_ACK,
            "feed@room-1": AlarmState.ACTIVE_UNACK,
        }
        causes = [h.cause for h in await alarms.history("link@sw-9")]
        assert [c for c in causes if not c.startswith("action:")] == [
            "activate",
            "shelve",
            "shelf-expired",
            "ack",
        ]
        assert causes.count("action:notify") == 1  # announced once, not again after the shelf


async def test_a_rule_removed_from_the_site_file_returns_its_alarm_to_normal(
    tmp_path: Path,
) -> None:
    clock = Clock()
    db = tmp_path / "cchub.db"
    async with Running(db, clock) as alarms:
        alarms.core.submit("link.up", "sw-9", 0, clock.now)
    fewer = {"rules": [r for r in SITE["rules"] if r["id"] != "link"]}
    async with Running(db, clock, fewer) as alarms:
        alarm = alarms.core.get("link@sw-9")
        assert (alarm.state, alarm.condition) == (AlarmState.RTN_UNACK, Condition.NORMAL)
        assert alarm.message == "rule 'link' is no longer configured"


async def test_history_is_append_only(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "cchub.db"
    life = Running(db, clock)
    async with life as alarms:
        alarms.core.submit("link.up", "sw-9", 0, clock.now)
        await alarms.history("link@sw-9")
        logged = await life.store.events_since(0)
        events = [e for e in logged if isinstance(e, AlarmStateChanged)]
        assert [(e.alarm, e.old, e.new) for e in events] == [
            ("link@sw-9", "normal", "active-unack")
        ]
    with sqlite3.connect(db) as conn, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM alarm_history")
