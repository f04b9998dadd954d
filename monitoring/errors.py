"""Errors of the monitoring package (the hub maps them to problem+json)."""

from __future__ import annotations


class MonitoringError(Exception):
    """Root of every error the monitoring package raises on purpose."""


class AlarmNotFound(MonitoringError, KeyError):
    """No alarm with that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such alarm"


class IllegalTransition(MonitoringError):
    """The alarm's state does not allow the request (ack of a normal alarm, reset of an
    unacknowledged latch...); ``state`` and ``cause`` name both sides."""

    def __init__(self, alarm_id: str, state: str, cause: str, message: str) -> None:
        super().__init__(message)
        self.alarm_id = alarm_id
        self.state = state
        self.cause = cause


class ActionFailed(MonitoringError):
    """An action step could not be carried out; the message says why."""
