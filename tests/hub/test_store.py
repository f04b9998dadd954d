"""The SQLite store: migrations, append-only log, audit, replay, isolation of bad writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hub.errors import StoreError
from hub.events import DutyNoteAdded, HubStarted, UnknownEvent
from hub.store import AuditEntry, SqliteStore
from hub.store.migrations import LATEST


async def test_events_round_trip_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db" / "cchub.db"
    store = SqliteStore(path)
    await store.open()
    assert store.schema_version == LATEST
    store.append_event(HubStarted(id=1, ts=1.0, version="1", site="s"))
    ack = store.append_event(DutyNoteAdded(id=2, ts=2.0, author="a", text="飓风"), ack=True)
    assert ack is not None
    await ack
    await store.close()

    store = SqliteStore(path)
    await store.open()
    assert await store.last_event_id() == 2
    events = await store.events_since(0)
    assert [type(e) for e in events] == [HubStarted, DutyNoteAdded]
    assert events[1] == DutyNoteAdded(id=2, ts=2.0, author="a", text="飓风")
    assert [e.id for e in await store.events_since(0, kinds=["duty."])] == [2]
    assert [e.id for e in await store.events_since(1)] == [2]
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_event_log_is_append_only(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    await store.open()
    await store.append_event(HubStarted(id=1, ts=1.0, version="1", site="s"), ack=True)  # type: ignore[misc]
    await store.close()
    with sqlite3.connect(tmp_path / "c.db") as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("DELETE FROM events")


async def test_a_bad_write_costs_only_itself(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    await store.open()
    first = store.append_event(HubStarted(id=1, ts=1.0, version="1", site="s"), ack=True)
    clash = store.append_event(HubStarted(id=1, ts=1.5, version="1", site="s"), ack=True)
    last = store.append_event(HubStarted(id=2, ts=2.0, version="1", site="s"), ack=True)
    assert first and clash and last
    await first
    with pytest.raises(StoreError, match="UNIQUE constraint failed"):
        await clash
    await last
    assert [e.ts for e in await store.events_since(0)] == [1.0, 2.0]
    healthy, detail = store.health()
    assert not healthy and "1 write errors" in detail
    await store.close()


async def test_unknown_kinds_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO events VALUES (7, 7.0, 'future.thing', '{\"x\": 1}')")
    store = SqliteStore(path)
    await store.open()
    (event,) = await store.events_since(0)
    assert event == UnknownEvent(id=7, ts=7.0, original_kind="future.thing", data={"x": 1})
    await store.close()


async def test_audit_entries(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    await store.open()
    for actor in ("alice", "bob", "alice"):
        saved = await store.record_audit(
            AuditEntry(
                actor=actor,
                role="dispatcher",
                action="POST /x",
                target="/x",
                source="127.0.0.1:1",
                result="201",
            )
        )
        assert saved.id > 0 and saved.ts > 0
    newest_first = await store.audit_entries()
    assert [e.actor for e in newest_first] == ["alice", "bob", "alice"]
    assert [e.id for e in newest_first] == [3, 2, 1]
    assert len(await store.audit_entries(actor="alice")) == 2
    await store.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={LATEST + 1}")
    store = SqliteStore(path)
    with pytest.raises(StoreError, match="newer than this build"):
        await store.open()
