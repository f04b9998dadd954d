"""Persistence behind one interface: event log, audit log, alarms, call records, recordings."""

from hub.store.base import AlarmHistoryEntry, AuditEntry, CallRecordRow, RecordingRow, Store
from hub.store.sqlite import SqliteStore

__all__ = [
    "AlarmHistoryEntry",
    "AuditEntry",
    "CallRecordRow",
    "RecordingRow",
    "SqliteStore",
    "Store",
]
