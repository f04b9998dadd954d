"""Persistence behind one interface: event log, audit log, alarms, call records, recordings."""

from hub.store.base import AlarmHistoryEntry, AuditEntry, Store
from hub.store.sqlite import SqliteStore

__all__ = ["AlarmHistoryEntry", "AuditEntry", "SqliteStore", "Store"]
