"""SQLite store (WAL): one writer thread with group commit, one reader thread.

Nothing here runs SQL on the event loop. ``append_event(..., ack=True)`` resolves only
after the transaction holding the event has committed, so an event acknowledged to an
API caller survives ``kill -9`` of the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from hub.errors import StoreError
from hub.events import Event, event_from_record
from hub.store.base import AlarmHistoryEntry, AuditEntry, CallRecordRow, RecordingRow, Store
from hub.store.migrations import LATEST, MIGRATIONS
from monitoring.alarms import AlarmSnapshot
from monitoring.series import Rollup

logger = logging.getLogger(__name__)

T = TypeVar("T")
_BATCH = 2000
_DELETE_CHUNK = 500  # alarm ids per delete (SQLite's limit on bound parameters is higher)
_STOP = object()


Statement = tuple[str, Sequence[Any]]


class _Write:
    """One queued statement (with ``more`` statements that commit or fail with it, in one
    transaction) and the future (if any) waiting for its commit."""

    __slots__ = ("future", "more", "params", "result", "sql")

    def __init__(
        self,
        sql: str,
        params: Sequence[Any],
        future: asyncio.Future[Any] | None,
        more: Sequence[Statement] = (),
    ) -> None:
        self.sql = sql
        self.params = params
        self.future = future
        self.more = more
        self.result: Any = None

    def apply(self, conn: sqlite3.Connection) -> Any:
        """Run inside the caller's transaction; the first statement's last row id."""
        row_id = conn.execute(self.sql, self.params).lastrowid
        for sql, params in self.more:
            conn.execute(sql, params)
        return row_id


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the database; return the resulting version."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > LATEST:
        raise StoreError(f"database schema version {version} is newer than this build ({LATEST})")
    for number, sql in MIGRATIONS:
        if number <= version:
            continue
        logger.info("applying store migration %d", number)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = number
    return version


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (triggers hold inner semicolons)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


class SqliteStore(Store):
    """The embedded default store."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.schema_version = 0
        self.committed_events = 0
        self.write_errors = 0
        self.last_error = ""
        self.queued = 0

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-read")
        try:
            self.schema_version = await self._read(self._open_reader)
        except sqlite3.Error as err:
            raise StoreError(f"cannot open store {self.path}: {err}") from err
        self._writer = threading.Thread(target=self._write_loop, name="store-write", daemon=True)
        self._writer.start()
        logger.info("store open: %s (schema v%d, WAL)", self.path, self.schema_version)

    def _open_reader(self) -> int:
        conn = _connect(self.path, self.synchronous)
        version = migrate(conn)
        self._read_conn = conn
        return version

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._writer.join)
        if self._reader is not None:
            if self._read_conn is not None:
                await self._read(self._read_conn.close)
            self._reader.shutdown(wait=True)
        logger.info("store closed: %d events committed", self.committed_events)

    def health(self) -> tuple[bool, str]:
        if self._closed or self._writer is None or not self._writer.is_alive():
            return False, "writer not running"
        if self.write_errors:
            return False, f"{self.write_errors} write errors, last: {self.last_error}"
        return True, f"sqlite {self.path} schema v{self.schema_version}, {self.queued} queued"

    # -- writing -------------------------------------------------------------------------

    def _enqueue(
        self, sql: str, params: Sequence[Any], ack: bool, more: Sequence[Statement] = ()
    ) -> asyncio.Future[Any] | None:
        if self._closed or self._loop is None:
            # Never raise into a publisher: the live bus goes on, the loss is counted.
            self.write_errors += 1
            self.last_error = "store is not open"
            if self.write_errors == 1 or self.write_errors % 1000 == 0:
                logger.error("store is not open: %d writes lost so far", self.write_errors)
            if not ack:
                return None
            failed = asyncio.get_running_loop().create_future()
            failed.set_exception(StoreError("store is not open"))
            return failed
        future = self._loop.create_future() if ack else None
        self.queued += 1
        self._queue.put(_Write(sql, params, future, more))
        return future

    def append_event(self, event: Event, *, ack: bool = False) -> asyncio.Future[None] | None:
        data = json.dumps(event.payload(), ensure_ascii=False, separators=(",", ":"))
        return self._enqueue(
            "INSERT INTO events(id, ts, kind, data) VALUES (?, ?, ?, ?)",
            (event.id, event.ts, event.kind, data),
            ack,
        )

    async def flush(self) -> None:
        future = self._enqueue("SELECT 1", (), True)
        assert future is not None
        await future

    async def record_audit(self, entry: AuditEntry) -> AuditEntry:
        ts = time.time()
        future = self._enqueue(
            "INSERT INTO audit(ts, actor, role, action, target, source, result, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ts,
                entry.actor,
                entry.role,
                entry.action,
                entry.target,
                entry.source,
                entry.result,
                entry.detail,
            ),
            True,
        )
        assert future is not None
        row_id = await future
        return AuditEntry(**{**entry.__dict__, "ts": ts, "id": row_id})

    def save_call_record(self, record: CallRecordRow) -> None:
        self._enqueue(
            "INSERT OR REPLACE INTO call_records(id, conference, leg, direction, remote, trunk,"
            " start_ts, answer_ts, end_ts, status, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.id,
                record.conference,
                record.leg,
                record.direction,
                record.remote,
                record.trunk,
                record.start_ts,
                record.answer_ts,
                record.end_ts,
                record.status,
                record.reason,
            ),
            False,
        )

    async def call_records(self, *, limit: int = 100) -> list[CallRecordRow]:
        rows = await self._read(
            lambda: self._rows(
                "SELECT id, conference, leg, direction, remote, trunk, start_ts, answer_ts,"
                " end_ts, status, reason FROM call_records ORDER BY start_ts DESC LIMIT ?",
                (limit,),
            )
        )
        return [
            CallRecordRow(
                id=r[0], conference=r[1], leg=r[2], direction=r[3], remote=r[4], trunk=r[5],
                start_ts=r[6], answer_ts=r[7], end_ts=r[8], status=r[9], reason=r[10] or "",
            )
            for r in rows
        ]  # fmt: skip

    # -- recordings ----------------------------------------------------------------------

    def save_recording(self, row: RecordingRow) -> None:
        self._enqueue(
            "INSERT INTO recordings(id, conference, talker, kind, path, codec, start_ts, end_ts,"
            " bytes, talkers, segments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET conference=excluded.conference,"
            " talker=excluded.talker, kind=excluded.kind, path=excluded.path,"
            " codec=excluded.codec, start_ts=excluded.start_ts, end_ts=excluded.end_ts,"
            " bytes=excluded.bytes, talkers=excluded.talkers, segments=excluded.segments",
            (
                row.id,
                row.conference,
                row.talker,
                row.kind,
                row.path,
                row.codec,
                row.start_ts,
                row.end_ts,
                row.bytes,
                json.dumps(list(row.talkers), ensure_ascii=False, separators=(",", ":")),
                json.dumps(
                    [list(seg) for seg in row.segments], ensure_ascii=False, separators=(",", ":")
                ),
            ),
            False,
        )

    async def recordings(
        self,
        *,
        conference: str | None = None,
        kind: str | None = None,
        id_prefix: str | None = None,
        limit: int = 100,
    ) -> list[RecordingRow]:
        sql = f"SELECT {_RECORDING_COLUMNS} FROM recordings"
        where: list[str] = []
        params: list[Any] = []
        if id_prefix:
            # a range on the primary key (LIKE would not use its index, and '_' is a wildcard)
            where.append("id >= ? AND id < ?")
            params += [id_prefix, id_prefix[:-1] + chr(ord(id_prefix[-1]) + 1)]
        if conference is not None:
            where.append("conference = ?")
            params.append(conference)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY start_ts DESC, id LIMIT ?"
        params.append(limit)
        rows = await self._read(lambda: self._rows(sql, params))
        return [_recording_row(r) for r in rows]

    async def recording(self, recording_id: str) -> RecordingRow | None:
        rows = await self._read(
            lambda: self._rows(
                f"SELECT {_RECORDING_COLUMNS} FROM recordings WHERE id = ?", (recording_id,)
            )
        )
        return _recording_row(rows[0]) if rows else None

    def _write_loop(self) -> None:
        conn = _connect(self.path, self.synchronous)
        try:
            stop = False
            while not stop:
                batch: list[_Write] = []
                item = self._queue.get()
                while True:
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                    if len(batch) >= _BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._commit(conn, batch)
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Write]) -> None:
        try:
            conn.execute("BEGIN")
            for write in batch:
                write.result = write.apply(conn)
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            # Isolate the failing write so that one bad row costs only itself (a write of
            # several statements commits all of them or none).
            for write in batch:
                try:
                    conn.execute("BEGIN")
                    write.result = write.apply(conn)
                    conn.execute("COMMIT")
                except sqlite3.Error as err:
                    conn.execute("ROLLBACK")
                    write.result = StoreError(f"store write failed: {err}")
                    self.write_errors += 1
                    self.last_error = str(err)
                    logger.error("store write failed (%s): %s", write.sql.split("(")[0], err)
        self.committed_events += sum(1 for w in batch if w.sql.startswith("INSERT INTO events"))
        assert self._loop is not None
        # RuntimeError: the loop is gone (process shutting down) and nothing waits any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._resolve, batch)

    def _resolve(self, batch: list[_Write]) -> None:
        self.queued -= len(batch)
        for write in batch:
            if write.future is None or write.future.done():
                continue
            if isinstance(write.result, BaseException):
                write.future.set_exception(write.result)
            else:
                write.future.set_result(write.result)

    # -- reading -------------------------------------------------------------------------

    async def _read(self, fn: Callable[[], T]) -> T:
        assert self._reader is not None
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn)

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        assert self._read_conn is not None
        return self._read_conn.execute(sql, params).fetchall()

    async def last_event_id(self) -> int:
        rows = await self._read(lambda: self._rows("SELECT MAX(id) FROM events", ()))
        return int(rows[0][0] or 0)

    async def events_since(
        self, after_id: int, *, limit: int = 1000, kinds: Sequence[str] = ()
    ) -> list[Event]:
        sql = "SELECT id, ts, kind, data FROM events WHERE id > ?"
        params: list[Any] = [after_id]
        if kinds:
            sql += " AND (" + " OR ".join("kind LIKE ? ESCAPE '\\'" for _ in kinds) + ")"
            params += [_like_prefix(k) for k in kinds]
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        rows = await self._read(lambda: self._rows(sql, params))
        return [event_from_record(kind, i, ts, json.loads(data)) for i, ts, kind, data in rows]

    async def audit_entries(
        self, *, limit: int = 100, actor: str | None = None
    ) -> list[AuditEntry]:
        sql = "SELECT id, ts, actor, role, action, target, source, result, detail FROM audit"
        params: list[Any] = []
        if actor is not None:
            sql += " WHERE actor = ?"
            params.append(actor)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        rows = await self._read(lambda: self._rows(sql, params))
        return [
            AuditEntry(
                id=r[0],
                ts=r[1],
                actor=r[2],
                role=r[3],
                action=r[4],
                target=r[5],
                source=r[6],
                result=r[7],
                detail=r[8],
            )
            for r in rows
        ]

    # -- alarms --------------------------------------------------------------------------

    def save_alarm(self, alarm: AlarmSnapshot, history: AlarmHistoryEntry | None = None) -> None:
        data = json.dumps(alarm.to_dict(), ensure_ascii=False, separators=(",", ":"))
        more: list[Statement] = []
        if history is not None:
            # the history line commits with the row, or neither does
            more.append(
                (
                    "INSERT INTO alarm_history(alarm_id, ts, old_state, new_state, cause, actor,"
                    " comment, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        history.alarm_id,
                        history.ts,
                        history.old_state,
                        history.new_state,
                        history.cause,
                        history.actor,
                        history.comment,
                        json.dumps(history.data, ensure_ascii=False, separators=(",", ":")),
                    ),
                )
            )
        self._enqueue(
            "INSERT INTO alarms(id, rule, source, level, state, raised_ts, updated_ts, ack_by,"
            " ack_ts, ack_comment, shelved_until, data, condition, count, shelve_reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET rule=excluded.rule, source=excluded.source,"
            " level=excluded.level, state=excluded.state, raised_ts=excluded.raised_ts,"
            " updated_ts=excluded.updated_ts, ack_by=excluded.ack_by, ack_ts=excluded.ack_ts,"
            " ack_comment=excluded.ack_comment, shelved_until=excluded.shelved_until,"
            " data=excluded.data, condition=excluded.condition, count=excluded.count,"
            " shelve_reason=excluded.shelve_reason",
            (
                alarm.id,
                alarm.rule,
                alarm.source,
                alarm.level.value,
                alarm.state.value,
                alarm.raised_ts,
                alarm.updated_ts,
                alarm.ack_by,
                alarm.ack_ts,
                alarm.ack_comment,
                alarm.shelved_until,
                data,
                alarm.condition.value,
                alarm.count,
                alarm.shelve_reason,
            ),
            False,
            more,
        )

    def delete_alarms(self, alarm_ids: Sequence[str]) -> None:
        for start in range(0, len(alarm_ids), _DELETE_CHUNK):
            ids = list(alarm_ids[start : start + _DELETE_CHUNK])
            marks = ", ".join("?" for _ in ids)
            # one transaction: the rows that are (still) normal, then the history of exactly
            # those (the history trigger refuses lines whose alarm is still stored)
            self._enqueue(
                f"DELETE FROM alarms WHERE state = 'normal' AND id IN ({marks})",
                ids,
                False,
                [
                    (
                        f"DELETE FROM alarm_history WHERE alarm_id IN ({marks})"
                        " AND alarm_id NOT IN (SELECT id FROM alarms)",
                        ids,
                    )
                ],
            )

    async def load_alarms(self) -> list[AlarmSnapshot]:
        rows = await self._read(lambda: self._rows("SELECT id, data FROM alarms ORDER BY id", ()))
        out: list[AlarmSnapshot] = []
        for alarm_id, data in rows:
            try:
                out.append(AlarmSnapshot.from_dict(json.loads(data)))
            except (ValueError, KeyError, TypeError) as err:
                # one unreadable row must not keep the others (or the hub) down
                logger.error("stored alarm %r cannot be read back, skipped: %s", alarm_id, err)
        return out

    async def alarm_history(self, alarm_id: str, *, limit: int = 500) -> list[AlarmHistoryEntry]:
        sql = (
            "SELECT id, alarm_id, ts, old_state, new_state, cause, actor, comment, data"
            " FROM alarm_history WHERE alarm_id = ? ORDER BY id DESC LIMIT ?"
        )
        rows = await self._read(lambda: self._rows(sql, (alarm_id, limit)))
        return [
            AlarmHistoryEntry(
                id=r[0],
                alarm_id=r[1],
                ts=r[2],
                old_state=r[3],
                new_state=r[4],
                cause=r[5],
                actor=r[6],
                comment=r[7],
                data=json.loads(r[8]),
            )
            for r in reversed(rows)
        ]

    # -- metric roll-ups ---------------------------------------------------------------------

    def save_rollups(self, rollups: Sequence[Rollup]) -> None:
        for r in rollups:
            labels = json.dumps(
                dict(r.labels), ensure_ascii=False, sort_keys=True, separators=(",", ":")
            )
            self._enqueue(
                "INSERT OR REPLACE INTO metric_rollups(metric, source, labels, minute, unit, min,"
                " avg, max, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (r.metric, r.source, labels, r.minute, r.unit, r.min, r.avg, r.max, r.count),
                False,
            )

    async def load_rollups(
        self,
        metric: str,
        *,
        source: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 10_000,
    ) -> list[Rollup]:
        sql = (
            "SELECT metric, source, labels, unit, minute, min, avg, max, count"
            " FROM metric_rollups WHERE metric = ?"
        )
        params: list[Any] = [metric]
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        if since is not None:
            sql += " AND minute >= ?"
            params.append(since - since % 60)
        if until is not None:
            sql += " AND minute <= ?"
            params.append(until)
        sql += " ORDER BY minute DESC LIMIT ?"
        params.append(limit)
        rows = await self._read(lambda: self._rows(sql, params))
        return [
            Rollup(
                r[0],
                r[1],
                tuple(sorted(json.loads(r[2]).items())),
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                r[8],
            )
            for r in reversed(rows)
        ]

    def prune_rollups(self, before: float) -> None:
        self._enqueue("DELETE FROM metric_rollups WHERE minute < ?", (before,), False)


_RECORDING_COLUMNS = (
    "id, conference, talker, kind, path, codec, start_ts, end_ts, bytes, talkers, segments"
)


def _recording_row(r: tuple[Any, ...]) -> RecordingRow:
    try:
        talkers = tuple(str(t) for t in json.loads(r[9]))
        segments = tuple((str(p), float(a), float(b)) for p, a, b in json.loads(r[10]))
    except (ValueError, TypeError) as err:
        # a damaged column costs the row its talk map, not the whole listing
        logger.error("recording %r: unreadable talkers/segments, left out: %s", r[0], err)
        talkers, segments = (), ()
    return RecordingRow(
        id=r[0],
        conference=r[1],
        talker=r[2],
        kind=r[3],
        path=r[4],
        codec=r[5],
        start_ts=r[6],
        end_ts=r[7],
        bytes=r[8],
        talkers=talkers,
        segments=segments,
    )


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
