"""Persistence behind one interface: event log, audit log, alarms, call records, recordings."""

from hub.store.base import AuditEntry, Store
from hub.store.sqlite import SqliteStore

__all__ = ["AuditEntry", "SqliteStore", "Store"]
