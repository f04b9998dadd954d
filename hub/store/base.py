"""The store interface the hub codes against; SQLite fills it now, PostgreSQL can later."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.events import Event
from monitoring.alarms import AlarmSnapshot
from monitoring.series import Rollup


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """Who did what, from where, with what result."""

    actor: str
    role: str
    action: str
    target: str
    source: str
    result: str
    detail: str = ""
    ts: float = 0.0
    id: int = 0


@dataclass(frozen=True, kw_only=True)
class AlarmHistoryEntry:
    """One line of an alarm's append-only history: a transition, an ack, an action result."""

    alarm_id: str
    ts: float
    old_state: str
    new_state: str
    cause: str
    actor: str = ""
    comment: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    id: int = 0


@dataclass(frozen=True, kw_only=True)
class CallRecordRow:
    """One ended call leg (the ``call_records`` table)."""

    id: str
    leg: str
    direction: str
    remote: str
    trunk: str | None
    start_ts: float
    answer_ts: float | None
    end_ts: float | None
    status: int | None
    reason: str
    conference: str | None = None


@dataclass(frozen=True, kw_only=True)
class RecordingRow:
    """One recording file (the ``recordings`` table): a conference mix or one talker's track.

    ``end_ts`` is None while the file is still being written; ``segments`` say who talked
    when as (participant, start, end) in UNIX time.
    """

    id: str
    conference: str | None
    kind: str
    path: str
    codec: str
    start_ts: float
    end_ts: float | None = None
    bytes: int = 0
    talker: str | None = None
    talkers: tuple[str, ...] = ()
    segments: tuple[tuple[str, float, float], ...] = ()


class Store(abc.ABC):
    """Append-only event log and audit log, plus the tables later subsystems fill."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, run pending migrations, start writing."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Write everything queued, then release the database."""

    @abc.abstractmethod
    def append_event(self, event: Event, *, ack: bool = False) -> asyncio.Future[None] | None:
        """Queue ``event`` for the log; with ``ack`` the future resolves once committed."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Return once everything queued before the call is committed."""

    @abc.abstractmethod
    async def last_event_id(self) -> int:
        """Highest event id in the log (0 when empty)."""

    @abc.abstractmethod
    async def events_since(
        self, after_id: int, *, limit: int = 1000, kinds: Sequence[str] = ()
    ) -> list[Event]:
        """Events with id > ``after_id`` in id order; ``kinds`` are prefixes to keep."""

    @abc.abstractmethod
    async def record_audit(self, entry: AuditEntry) -> AuditEntry:
        """Commit one audit entry and return it with its id and time."""

    @abc.abstractmethod
    async def audit_entries(
        self, *, limit: int = 100, actor: str | None = None
    ) -> list[AuditEntry]:
        """Newest audit entries first."""

    @abc.abstractmethod
    def save_alarm(self, alarm: AlarmSnapshot, history: AlarmHistoryEntry | None = None) -> None:
        """Queue the alarm's current row (upsert) and, if given, one history line after it,
        committed in one transaction."""

    @abc.abstractmethod
    def delete_alarms(self, alarm_ids: Sequence[str]) -> None:
        """Queue the removal of these alarms, if normal, with their history (one transaction)."""

    @abc.abstractmethod
    async def load_alarms(self) -> list[AlarmSnapshot]:
        """Every stored alarm (normal ones included), to restore after a restart."""

    @abc.abstractmethod
    async def alarm_history(self, alarm_id: str, *, limit: int = 500) -> list[AlarmHistoryEntry]:
        """The alarm's history, oldest first (the newest ``limit`` lines)."""

    @abc.abstractmethod
    def save_rollups(self, rollups: Sequence[Rollup]) -> None:
        """Queue metric roll-ups (one row per series and minute; a repeat replaces it)."""

    @abc.abstractmethod
    async def load_rollups(
        self,
        metric: str,
        *,
        source: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 10_000,
    ) -> list[Rollup]:
        """Roll-ups of ``metric`` (optionally one source) in time order, oldest first."""

    @abc.abstractmethod
    def prune_rollups(self, before: float) -> None:
        """Queue the removal of roll-ups of minutes before ``before``."""

    @abc.abstractmethod
    def save_call_record(self, record: CallRecordRow) -> None:
        """Queue one ended call leg for ``call_records`` (a repeat of the id replaces it)."""

    @abc.abstractmethod
    async def call_records(self, *, limit: int = 100) -> list[CallRecordRow]:
        """Newest call records first."""

    @abc.abstractmethod
    def save_recording(self, row: RecordingRow) -> None:
        """Queue a recording's row; a repeat of the id (the file finished) replaces it."""

    @abc.abstractmethod
    async def recordings(
        self,
        *,
        conference: str | None = None,
        kind: str | None = None,
        id_prefix: str | None = None,
        limit: int = 100,
    ) -> list[RecordingRow]:
        """Newest recordings first, optionally of one conference, one kind (mix, talker) and
        ids starting with ``id_prefix`` (one recording session's files: ``<session>-``)."""

    @abc.abstractmethod
    async def recording(self, recording_id: str) -> RecordingRow | None:
        """One recording by id, or None."""

    @abc.abstractmethod
    def health(self) -> tuple[bool, str]:
        """(healthy, detail) for /health."""
