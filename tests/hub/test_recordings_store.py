"""The store's recordings index: upsert as files open and finish, listing, lookup."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hub.store import RecordingRow, SqliteStore
from hub.store.migrations import LATEST, MIGRATIONS


def _mix(**changes: object) -> RecordingRow:
    fields: dict[str, object] = {
        "id": "rec-1",
        "conference": "c-1",
        "kind": "mix",
        "path": "/var/rec/c-1/mix.wav",
        "codec": "wav",
        "start_ts": 100.0,
    }
    fields.update(changes)
    return RecordingRow(**fields)  # type: ignore[arg-type]


async def test_a_recording_is_replaced_when_its_file_finishes(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SqliteStore(path)
    await store.open()
    store.save_recording(_mix())
    await store.flush()
    assert await store.recording("rec-1") == _mix()
    finished = _mix(
        end_ts=130.5,
        bytes=480_044,
        talkers=("p-1", "p-2"),
        segments=(("p-1", 101.0, 110.0), ("p-2", 112.5, 129.0)),
    )
    store.save_recording(finished)
    await store.close()

    store = SqliteStore(path)
    await store.open()
    assert store.schema_version == LATEST
    assert await store.recordings() == [finished]
    assert await store.recording("rec-1") == finished
    assert await store.recording("rec-404") is None
    await store.close()


async def test_listing_is_newest_first_and_filters_by_conference(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    await store.open()
    store.save_recording(_mix(id="a", start_ts=1.0))
    store.save_recording(_mix(id="b", start_ts=3.0, conference="c-2"))
    store.save_recording(
        _mix(id="c", start_ts=2.0, kind="talker", talker="p-1", path="/r/p-1.ogg", codec="opus")
    )
    store.save_recording(_mix(id="d", start_ts=4.0, conference=None))
    await store.flush()
    assert [r.id for r in await store.recordings()] == ["d", "b", "c", "a"]
    assert [r.id for r in await store.recordings(limit=2)] == ["d", "b"]
    assert [r.id for r in await store.recordings(conference="c-1")] == ["c", "a"]
    assert [r.id for r in await store.recordings(conference="c-1", kind="mix")] == ["a"]
    assert [r.id for r in await store.recordings(kind="talker")] == ["c"]
    (talker,) = [r for r in await store.recordings() if r.kind == "talker"]
    assert (talker.talker, talker.codec) == ("p-1", "opus")
    await store.close()


async def test_one_session_by_id_prefix_and_nothing_else(tmp_path: Path) -> None:
    """A session's files share ``<session>-``; neighbours in key order and ids with SQL
    wildcards in them stay out."""
    store = SqliteStore(tmp_path / "c.db")
    await store.open()
    ids = ["abc-mix-wav", "abc-p_1-1-wav", "abc-p_1-2-wav", "abc-mix-opus", "abcd-mix-wav",
           "abc.-mix-wav", "ab-mix-wav", "abc_mix-wav", "ABC-mix-wav"]  # fmt: skip
    for n, rid in enumerate(ids):
        kind = "talker" if "-p_1-" in rid else "mix"
        store.save_recording(_mix(id=rid, start_ts=float(n), kind=kind))
    await store.flush()
    found = await store.recordings(id_prefix="abc-", limit=100_000)
    assert sorted(r.id for r in found) == sorted(ids[:4])
    assert [r.id for r in await store.recordings(id_prefix="abc-", kind="mix")] == [
        "abc-mix-opus",
        "abc-mix-wav",
    ]
    assert await store.recordings(id_prefix="zzz-") == []
    await store.close()


async def test_a_damaged_talk_map_costs_only_that_column(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SqliteStore(path)
    await store.open()
    store.save_recording(_mix(segments=(("p-1", 1.0, 2.0),)))
    store.save_recording(_mix(id="rec-2", start_ts=50.0))
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE recordings SET segments = 'not json' WHERE id = 'rec-1'")
    store = SqliteStore(path)
    await store.open()
    rows = {r.id: r for r in await store.recordings()}
    assert rows["rec-1"].segments == () and rows["rec-1"].path == "/var/rec/c-1/mix.wav"
    assert rows["rec-2"] == _mix(id="rec-2", start_ts=50.0)
    await store.close()


async def test_version_3_database_gains_the_talk_map(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    # A database as version 3 left it, with one recording written by it.
    with sqlite3.connect(path) as conn:
        for number, script in MIGRATIONS:
            if number <= 3:
                conn.executescript(script)
        conn.execute(
            "INSERT INTO recordings(id, conference, talker, kind, path, codec, start_ts)"
            " VALUES ('old', 'c-9', NULL, 'mix', '/r/old.wav', 'wav', 5.0)"
        )
        conn.execute("PRAGMA user_version=3")
    store = SqliteStore(path)
    await store.open()
    assert store.schema_version == LATEST
    assert await store.recording("old") == _mix(
        id="old", conference="c-9", path="/r/old.wav", start_ts=5.0
    )
    await store.close()
