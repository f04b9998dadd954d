"""The store interface the hub codes against; SQLite fills it now, PostgreSQL can later."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from hub.events import Event


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
    def health(self) -> tuple[bool, str]:
        """(healthy, detail) for /health."""
