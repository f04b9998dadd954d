"""Alarm rows and their history lines commit in one transaction; normal alarms past the
site's retention are deleted with their history (on start and periodically), while the
history of stored alarms stays append-only."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hub.alarms import PRUNE_EVERY, AlarmService
from hub.bus import EventBus
from hub.config import SiteConfig
from hub.store import AlarmHistoryEntry, SqliteStore
from monitoring.alarms import AlarmSnapshot, AlarmState, Condition
from monitoring.config import WarningLevel
from monitoring.errors import AlarmNotFound
from tests.monitoring.harness import Clock

RETENTION = 3600.0
SITE: dict[str, Any] = {
    "rules": [
        {"id": "hot", "metric": "room.temp", "above": 35, "clear": 30},
    ],
    "alarm": {"retention": RETENTION, "tick": 0.02},
}


class Running:
    def __init__(self, path: Path, clock: Clock) -> None:
        self.store = SqliteStore(path)
        self.bus = EventBus(sink=self.store)
        site = SiteConfig.model_validate(SITE)
        self.service = AlarmService(site, self.bus, self.store, clock=clock)

    async def __aenter__(self) -> AlarmService:
        await self.store.open()
        self.bus.continue_from(await self.store.last_event_id())
        await self.service.start()
        return self.service

    async def __aexit__(self, *exc: object) -> None:
        await self.service.stop()
        self.bus.close_all()
        await self.store.close()


def snapshot(aid: str, state: AlarmState = AlarmState.ACTIVE_UNACK) -> AlarmSnapshot:
    return AlarmSnapshot(
        id=aid,
        rule="hot",
        source=aid.split("@")[1],
        subject="room.temp",
        level=WarningLevel.BLUE,
        state=state,
        condition=Condition.ACTIVE,
        raised_ts=1000.0,
        updated_ts=1000.0,
    )


def line(aid: str, old_state: Any = "normal") -> AlarmHistoryEntry:
    return AlarmHistoryEntry(
        alarm_id=aid, ts=1000.0, old_state=old_state, new_state="active-unack", cause="activate"
    )


async def test_row_and_history_commit_together(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "cchub.db")
    await store.open()
    try:
        # a history line the schema refuses (old_state NOT NULL) takes its row with it
        store.save_alarm(snapshot("hot@room-1"), line("hot@room-1", old_state=None))
        store.save_alarm(snapshot("hot@room-2"), line("hot@room-2"))
        await store.flush()
        assert [a.id for a in await store.load_alarms()] == ["hot@room-2"]
        assert await store.alarm_history("hot@room-1") == []
        assert [h.new_state for h in await store.alarm_history("hot@room-2")] == ["active-unack"]
        assert store.write_errors == 1
    finally:
        await store.close()


def transitions(history: list[AlarmHistoryEntry]) -> list[tuple[str, str]]:
    """State changes only (action results are history lines too)."""
    return [(h.old_state, h.new_state) for h in history if not h.cause.startswith("action")]


async def raise_and_settle(alarms: AlarmService, clock: Clock, room: str) -> None:
    """hot@room: raised, cleared, acknowledged: normal, three history lines."""
    alarms.core.submit("room.temp", room, 40, clock.now)
    alarms.core.submit("room.temp", room, 20, clock.now)
    settled = await alarms.ack(f"hot@{room}", "duty-1", "fan fixed")
    assert settled.state is AlarmState.NORMAL


async def test_normal_alarms_past_retention_are_deleted_with_history(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "cchub.db"
    first = Running(db, clock)
    async with first as alarms:
        core = alarms.core
        await raise_and_settle(alarms, clock, "old")
        core.submit("room.temp", "still-hot", 40, clock.now)  # active: kept however old
        clock.advance(RETENTION - 600)
        await raise_and_settle(alarms, clock, "recent")
        clock.advance(700)  # "old" is past the retention, "recent" is not

        assert alarms.prune() == ["hot@old"]
        with pytest.raises(AlarmNotFound):
            core.get("hot@old")
        store = first.store
        await store.flush()
        stored = {a.id for a in await store.load_alarms()}
        assert stored == {"hot@still-hot", "hot@recent"}
        assert await store.alarm_history("hot@old") == []
        kept = await store.alarm_history("hot@recent")
        assert transitions(kept) == [("normal", "active-unack"), ("active-unack", "rtn-unack"),
                                     ("rtn-unack", "normal")]  # fmt: skip

    # the history of a stored alarm is still append-only
    with sqlite3.connect(db) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM alarm_history WHERE alarm_id = 'hot@recent'")

    async with Running(db, clock) as alarms:  # a restart does not bring it back
        with pytest.raises(AlarmNotFound):
            alarms.core.get("hot@old")
        alarms.core.submit("room.temp", "old", 40, clock.now)  # a new episode, a new history
        assert alarms.get("hot@old").state is AlarmState.ACTIVE_UNACK
        history = await alarms.history("hot@old")
        assert transitions(history) == [("normal", "active-unack")]


async def test_pruning_runs_on_start_and_periodically(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "cchub.db"
    async with Running(db, clock) as alarms:
        await raise_and_settle(alarms, clock, "a")
    clock.advance(RETENTION + 1)
    second = Running(db, clock)
    async with second as alarms:  # on start
        with pytest.raises(AlarmNotFound):
            alarms.core.get("hot@a")
        await raise_and_settle(alarms, clock, "b")
        clock.advance(max(RETENTION, PRUNE_EVERY) + 1)  # the service's tick prunes again
        async with asyncio.timeout(10):
            while True:
                try:
                    alarms.core.get("hot@b")
                except AlarmNotFound:
                    break
                await asyncio.sleep(0.02)
        await second.store.flush()
        assert await second.store.load_alarms() == []
