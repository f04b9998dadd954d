"""The alarm lifecycle (ISA-18.2 style) as an explicit state machine, one object per alarm.

An alarm is one rule on one subject (source, metric, labels). Its *condition* (normal,
active, no data) comes from the rules; its *state* (unacknowledged, latched, shelved,
suppressed...) from the condition and from people. Every change of state goes through
``_set_state``, which logs it and hands an ``AlarmTransition`` to the owner's sink.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitoring.config import WarningLevel
from monitoring.errors import IllegalTransition

logger = logging.getLogger(__name__)


class AlarmState(enum.Enum):
    NORMAL = "normal"
    ACTIVE_UNACK = "active-unack"
    ACTIVE_ACK = "active-ack"
    RTN_UNACK = "rtn-unack"
    LATCHED_UNACK = "latched-unack"
    LATCHED_ACK = "latched-ack"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"


ANNUNCIATED = frozenset({AlarmState.ACTIVE_UNACK, AlarmState.LATCHED_UNACK})
"""States in which the alarm demands attention: its action steps run (unless flapping)."""


class Condition(enum.Enum):
    """What the rule says about the subject right now (never "OK" without data)."""

    NORMAL = "normal"
    ACTIVE = "active"
    NO_DATA = "no-data"


class Cause(enum.Enum):
    """Inputs of the state machine."""

    ACTIVATE = "activate"
    CLEAR = "clear"
    ACK = "ack"
    RESET = "reset"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    SHELF_EXPIRED = "shelf-expired"
    SUPPRESS = "suppress"
    UNSUPPRESS = "unsuppress"


@dataclass(frozen=True, kw_only=True)
class AlarmSnapshot:
    """Everything about one alarm at one moment: what the API shows and the store keeps."""

    id: str
    rule: str
    source: str
    subject: str
    level: WarningLevel
    state: AlarmState
    condition: Condition
    labels: Mapping[str, str] = field(default_factory=dict)
    latch: bool = False
    count: int = 0
    message: str = ""
    value: float | None = None
    raised_ts: float = 0.0
    updated_ts: float = 0.0
    annunciated_ts: float | None = None
    last_activation_ts: float | None = None
    ack_by: str | None = None
    ack_ts: float | None = None
    ack_comment: str | None = None
    shelved_until: float | None = None
    shelved_by: str | None = None
    shelve_reason: str | None = None
    suppressed_by: str | None = None
    flapping: bool = False
    next_step: int = 0
    lapses_after: float | None = None
    changes: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlarmSnapshot:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["level"] = WarningLevel(kwargs["level"])
        kwargs["state"] = AlarmState(kwargs["state"])
        kwargs["condition"] = Condition(kwargs["condition"])
        kwargs["labels"] = dict(kwargs.get("labels") or {})
        kwargs["changes"] = tuple(kwargs.get("changes") or ())
        return cls(**kwargs)

    @property
    def active(self) -> bool:
        """Not normal: shown in the default alarm list."""
        return self.state is not AlarmState.NORMAL


@dataclass(frozen=True, kw_only=True)
class AlarmTransition:
    """One change of an alarm's state (or a re-shelve), as persisted in its history."""

    alarm: AlarmSnapshot
    old: AlarmState
    new: AlarmState
    cause: Cause
    ts: float
    actor: str = ""
    comment: str = ""


TransitionSink = Callable[[AlarmTransition], None]


class Alarm:
    """The live, mutable alarm. Only the warning core drives it."""

    def __init__(self, snapshot: AlarmSnapshot, sink: TransitionSink) -> None:
        self._sink = sink
        s = snapshot
        self.id = s.id
        self.rule = s.rule
        self.source = s.source
        self.subject = s.subject
        self.level = s.level
        self.labels = dict(s.labels)
        self.latch = s.latch
        self.state = s.state
        self.condition = s.condition
        self.count = s.count
        self.message = s.message
        self.value = s.value
        self.raised_ts = s.raised_ts
        self.updated_ts = s.updated_ts
        self.annunciated_ts = s.annunciated_ts
        self.last_activation_ts = s.last_activation_ts
        self.ack_by = s.ack_by
        self.ack_ts = s.ack_ts
        self.ack_comment = s.ack_comment
        self.shelved_until = s.shelved_until
        self.shelved_by = s.shelved_by
        self.shelve_reason = s.shelve_reason
        self.suppressed_by = s.suppressed_by
        self.flapping = s.flapping
        self.next_step = s.next_step
        self.lapses_after = s.lapses_after
        self.changes: list[float] = list(s.changes)
        self._shelf: tuple[float | None, str | None, str | None] = (None, None, None)

    def snapshot(self) -> AlarmSnapshot:
        return AlarmSnapshot(
            id=self.id,
            rule=self.rule,
            source=self.source,
            subject=self.subject,
            level=self.level,
            state=self.state,
            condition=self.condition,
            labels=dict(self.labels),
            latch=self.latch,
            count=self.count,
            message=self.message,
            value=self.value,
            raised_ts=self.raised_ts,
            updated_ts=self.updated_ts,
            annunciated_ts=self.annunciated_ts,
            last_activation_ts=self.last_activation_ts,
            ack_by=self.ack_by,
            ack_ts=self.ack_ts,
            ack_comment=self.ack_comment,
            shelved_until=self.shelved_until,
            shelved_by=self.shelved_by,
            shelve_reason=self.shelve_reason,
            suppressed_by=self.suppressed_by,
            flapping=self.flapping,
            next_step=self.next_step,
            lapses_after=self.lapses_after,
            changes=tuple(self.changes),
        )

    @property
    def condition_active(self) -> bool:
        return self.condition is not Condition.NORMAL

    # -- inputs from the rules -----------------------------------------------------------

    def activate(
        self,
        now: float,
        condition: Condition,
        message: str,
        value: float | None,
        *,
        dedupe_window: float | None = None,
    ) -> None:
        """The rule says active (or no data).

        ``dedupe_window`` None: a sample rule; ``count`` counts activations. Otherwise each
        call is one occurrence (a trap, an event): it adds to ``count`` on this alarm, and
        one arriving within the window of the last keeps counting even across episodes.
        """
        self.message, self.value, self.updated_ts = message, value, now
        was_active = self.condition_active
        self.condition = condition
        if was_active and dedupe_window is None:
            return
        window = dedupe_window or 0.0
        fresh = self.last_activation_ts is None or now - self.last_activation_ts > window
        if self.state is AlarmState.NORMAL and fresh:
            self.count = 1
        else:
            self.count += 1
        self.last_activation_ts = now
        if not was_active:
            self.changes.append(now)
            self._dispatch(Cause.ACTIVATE, now)

    def clear(self, now: float, message: str, value: float | None) -> None:
        """The rule says the condition is back to normal."""
        self.message, self.value, self.updated_ts = message, value, now
        if not self.condition_active:
            return
        self.condition = Condition.NORMAL
        self.changes.append(now)
        self._dispatch(Cause.CLEAR, now)

    def suppress(self, now: float, by: str) -> None:
        self.suppressed_by = by
        self._dispatch(Cause.SUPPRESS, now)

    def unsuppress(self, now: float) -> None:
        if self.suppressed_by is None:
            return
        self.suppressed_by = None
        self._dispatch(Cause.UNSUPPRESS, now)

    # -- inputs from people ----------------------------------------------------------------

    def ack(self, now: float, actor: str, comment: str) -> None:
        self._dispatch(Cause.ACK, now, actor, comment)

    def reset(self, now: float, actor: str, comment: str = "") -> None:
        self._dispatch(Cause.RESET, now, actor, comment)

    def shelve(self, now: float, until: float, actor: str, reason: str) -> None:
        self._shelf = (until, actor, reason)
        self._dispatch(Cause.SHELVE, now, actor, reason)

    def unshelve(self, now: float, actor: str) -> None:
        self._dispatch(Cause.UNSHELVE, now, actor)

    def expire_shelf(self, now: float) -> None:
        self._dispatch(Cause.SHELF_EXPIRED, now, "", "shelf expired")

    def can(self, cause: Cause) -> bool:
        """Whether ``cause`` is legal in the current state (mass acknowledge asks first)."""
        return cause in _TABLE[self.state]

    # -- the machine -----------------------------------------------------------------------

    def _dispatch(self, cause: Cause, now: float, actor: str = "", comment: str = "") -> None:
        handler = _TABLE[self.state].get(cause)
        if handler is None:
            invalid_event(self, cause)
            return
        new = handler(self)
        if new is None:
            return
        self._set_state(new, cause, now, actor, comment)

    def _set_state(
        self, new: AlarmState, cause: Cause, now: float, actor: str, comment: str
    ) -> None:
        old = self.state
        if old is AlarmState.NORMAL and cause is Cause.ACTIVATE:
            # a new episode: what people did about the last one no longer applies
            self.raised_ts = now
            self.annunciated_ts = None
            self.next_step = 0
            self.ack_by = self.ack_ts = self.ack_comment = None
        if cause is Cause.ACK:
            self.ack_by, self.ack_ts, self.ack_comment = actor, now, comment
        if new is AlarmState.SHELVED:
            self.shelved_until, self.shelved_by, self.shelve_reason = self._shelf
        elif old is AlarmState.SHELVED:
            self.shelved_until = self.shelved_by = self.shelve_reason = None
        if new is AlarmState.ACTIVE_UNACK:
            if old is not AlarmState.ACTIVE_UNACK and self.ack_ts is not None:
                self.ack_by = self.ack_ts = self.ack_comment = None  # re-alarm: ack again
            if self.annunciated_ts is None:
                self.annunciated_ts = now
        self.state = new
        self.updated_ts = now
        logger.info(
            "[alarm=%s] %s -> %s (%s%s)",
            self.id,
            old.value,
            new.value,
            cause.value,
            f" by {actor}" if actor else "",
        )
        self._sink(
            AlarmTransition(
                alarm=self.snapshot(),
                old=old,
                new=new,
                cause=cause,
                ts=now,
                actor=actor,
                comment=comment,
            )
        )


# -- the table of handlers per state -------------------------------------------------------

Handler = Callable[[Alarm], AlarmState | None]


def _stay(alarm: Alarm) -> None:
    return None


def _to(state: AlarmState) -> Handler:
    def handler(alarm: Alarm) -> AlarmState:
        return state

    return handler


def _annunciate(alarm: Alarm) -> AlarmState:
    return AlarmState.SUPPRESSED if alarm.suppressed_by else AlarmState.ACTIVE_UNACK


def _back_from_shelf(alarm: Alarm) -> AlarmState:
    return _annunciate(alarm) if alarm.condition_active else AlarmState.NORMAL


def _cleared_unacked(alarm: Alarm) -> AlarmState:
    return AlarmState.LATCHED_UNACK if alarm.latch else AlarmState.RTN_UNACK


def _cleared_acked(alarm: Alarm) -> AlarmState:
    return AlarmState.LATCHED_ACK if alarm.latch else AlarmState.NORMAL


def _unsuppressed(alarm: Alarm) -> AlarmState:
    if not alarm.condition_active:
        return AlarmState.NORMAL
    return AlarmState.ACTIVE_ACK if alarm.ack_ts is not None else AlarmState.ACTIVE_UNACK


S, C = AlarmState, Cause
_SHELVE = _to(S.SHELVED)
_QUIET = {C.SUPPRESS: _stay, C.UNSUPPRESS: _stay}

_TABLE: dict[AlarmState, dict[Cause, Handler]] = {
    S.NORMAL: {C.ACTIVATE: _annunciate, C.CLEAR: _stay, C.SHELVE: _SHELVE, **_QUIET},
    S.ACTIVE_UNACK: {
        C.ACTIVATE: _stay,
        C.CLEAR: _cleared_unacked,
        C.ACK: _to(S.ACTIVE_ACK),
        C.SHELVE: _SHELVE,
        C.SUPPRESS: _to(S.SUPPRESSED),
        C.UNSUPPRESS: _stay,
    },
    S.ACTIVE_ACK: {
        C.ACTIVATE: _stay,
        C.CLEAR: _cleared_acked,
        C.SHELVE: _SHELVE,
        C.SUPPRESS: _to(S.SUPPRESSED),
        C.UNSUPPRESS: _stay,
    },
    S.RTN_UNACK: {
        C.ACTIVATE: _annunciate,
        C.CLEAR: _stay,
        C.ACK: _to(S.NORMAL),
        C.SHELVE: _SHELVE,
        **_QUIET,
    },
    S.LATCHED_UNACK: {
        C.ACTIVATE: _annunciate,
        C.CLEAR: _stay,
        C.ACK: _to(S.LATCHED_ACK),
        C.SHELVE: _SHELVE,
        **_QUIET,
    },
    S.LATCHED_ACK: {
        C.ACTIVATE: _annunciate,
        C.CLEAR: _stay,
        C.RESET: _to(S.NORMAL),
        C.SHELVE: _SHELVE,
        **_QUIET,
    },
    S.SHELVED: {
        C.ACTIVATE: _stay,
        C.CLEAR: _stay,
        C.SHELVE: _SHELVE,  # shelving again moves the expiry (recorded)
        C.UNSHELVE: _back_from_shelf,
        C.SHELF_EXPIRED: _back_from_shelf,
        **_QUIET,
    },
    S.SUPPRESSED: {
        C.ACTIVATE: _stay,
        C.CLEAR: _to(S.NORMAL),
        C.SHELVE: _SHELVE,
        C.SUPPRESS: _stay,
        C.UNSUPPRESS: _unsuppressed,
    },
}

_WHY: dict[tuple[AlarmState, Cause], str] = {
    (S.NORMAL, C.ACK): "the alarm is normal: nothing to acknowledge",
    (S.ACTIVE_ACK, C.ACK): "the alarm is already acknowledged",
    (S.LATCHED_ACK, C.ACK): "the alarm is already acknowledged; reset it",
    (S.SHELVED, C.ACK): "the alarm is shelved; unshelve it first",
    (S.SUPPRESSED, C.ACK): "the alarm is suppressed by a dependency and not annunciated",
    (S.LATCHED_UNACK, C.RESET): "acknowledge the latched alarm before resetting it",
    (S.ACTIVE_ACK, C.RESET): "the condition is still active: it cannot be reset yet",
    (S.ACTIVE_UNACK, C.RESET): "the condition is still active: it cannot be reset yet",
}


def invalid_event(alarm: Alarm, cause: Cause) -> None:
    """Every illegal input ends here: rule-driven inputs are logged, people's are refused."""
    why = _WHY.get((alarm.state, cause))
    if cause is C.RESET and not alarm.latch:
        why = f"only a latched alarm can be reset (this one is {alarm.state.value})"
    if why is None:
        if cause is C.RESET:
            why = f"only a latched alarm can be reset (this one is {alarm.state.value})"
        elif cause is C.UNSHELVE:
            why = f"the alarm is not shelved (it is {alarm.state.value})"
        else:
            why = f"cannot {cause.value} an alarm that is {alarm.state.value}"
    if cause in (C.ACTIVATE, C.CLEAR, C.SUPPRESS, C.UNSUPPRESS, C.SHELF_EXPIRED):
        logger.error("[alarm=%s] ignored %s: %s", alarm.id, cause.value, why)
        return
    raise IllegalTransition(alarm.id, alarm.state.value, cause.value, why)
