"""Typed, frozen events: everything that happens in the hub is one of these on the bus.

Every event carries ``id`` (monotonic across restarts, assigned by the bus) and ``ts``
(UNIX seconds, assigned by the bus). ``kind`` names the event on the wire and in the store.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

_REGISTRY: dict[str, type[Event]] = {}

E = TypeVar("E", bound="Event")


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of all events. Subclasses set ``kind`` and add their own fields."""

    kind: ClassVar[str] = "event"
    id: int = 0
    ts: float = 0.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is None:
            raise TypeError(f"{cls.__name__} must set a 'kind'")
        if kind in _REGISTRY:
            raise TypeError(f"event kind {kind!r} registered twice")
        _REGISTRY[kind] = cls

    def payload(self) -> dict[str, Any]:
        """The event's own fields (without id/ts), JSON-ready."""
        return {
            f.name: _jsonable(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name not in ("id", "ts")
        }

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ts": self.ts, "kind": self.kind, "data": self.payload()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def event_from_record(kind: str, event_id: int, ts: float, data: dict[str, Any]) -> Event:
    """Rebuild an event read back from the store; unknown kinds become ``UnknownEvent``."""
    cls = _REGISTRY.get(kind)
    if cls is None:
        return UnknownEvent(id=event_id, ts=ts, original_kind=kind, data=data)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    return cls(id=event_id, ts=ts, **kwargs)


def event_kinds() -> list[str]:
    return sorted(_REGISTRY)


class SubsystemState(enum.Enum):
    STARTING = "starting"
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(Event):
    """An event from the log whose kind this build does not know (kept, never dropped)."""

    kind: ClassVar[str] = "hub.unknown"
    original_kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class HubStarted(Event):
    kind: ClassVar[str] = "hub.started"
    version: str
    site: str


@dataclass(frozen=True, kw_only=True)
class HubStopping(Event):
    kind: ClassVar[str] = "hub.stopping"
    reason: str


@dataclass(frozen=True, kw_only=True)
class SubsystemStateChanged(Event):
    kind: ClassVar[str] = "hub.subsystem"
    subsystem: str
    old: SubsystemState
    new: SubsystemState
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class DutyNoteAdded(Event):
    """A free-text entry in the duty log (值班日志), posted by a person or the platform."""

    kind: ClassVar[str] = "duty.note"
    author: str
    text: str
    category: str = "general"
    source: str = ""


@dataclass(frozen=True, kw_only=True)
class AuditRecorded(Event):
    """A mutating action was performed (the audit row is in the store's audit log)."""

    kind: ClassVar[str] = "hub.audit"
    actor: str
    action: str
    target: str
    result: str


@dataclass(frozen=True, kw_only=True)
class DeviceStateChanged(Event):
    """A device's snapshot changed: it went online/offline or its state moved."""

    kind: ClassVar[str] = "device.state"
    device: str
    type: str
    online: bool
    state: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True, kw_only=True)
class SceneStarted(Event):
    """A scene (一键场景) is being applied to its devices."""

    kind: ClassVar[str] = "scene.started"
    scene: str
    name: str = ""
    actor: str = ""
    devices: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class SceneApplied(Event):
    """Every step of a scene took effect, verified from device state; ``report`` per step."""

    kind: ClassVar[str] = "scene.applied"
    scene: str
    name: str = ""
    actor: str = ""
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SceneFailed(Event):
    """A step of a scene failed; ``outcome`` says what became of the others (rolled_back,
    rollback_failed, stopped, partial) and ``report`` has each step's status and code."""

    kind: ClassVar[str] = "scene.failed"
    scene: str
    name: str = ""
    actor: str = ""
    outcome: str = ""
    failed_step: int | None = None
    error: str = ""
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AlarmStateChanged(Event):
    """An alarm moved in its lifecycle: raised, acknowledged, returned to normal, latched,
    shelved, suppressed... (``old``/``new`` are alarm states, ``cause`` what moved it)."""

    kind: ClassVar[str] = "alarm.state"
    alarm: str
    rule: str
    source: str
    level: str
    old: str
    new: str
    cause: str
    condition: str
    count: int = 1
    message: str = ""
    actor: str = ""
    comment: str = ""
    suppressed_by: str = ""


@dataclass(frozen=True, kw_only=True)
class AlarmUpdated(Event):
    """An alarm changed without moving: its count, message or flapping flag."""

    kind: ClassVar[str] = "alarm.updated"
    alarm: str
    level: str
    state: str
    condition: str
    count: int
    message: str = ""
    flapping: bool = False


@dataclass(frozen=True, kw_only=True)
class AlarmNotified(Event):
    """A ``notify`` step of an alarm: the consoles should show it to the people on duty."""

    kind: ClassVar[str] = "alarm.notify"
    alarm: str
    rule: str
    source: str
    level: str
    state: str
    message: str
    step: int = 0


@dataclass(frozen=True, kw_only=True)
class AlarmActionDone(Event):
    """An action step of an alarm was carried out (``ok``) or failed (``detail`` says why)."""

    kind: ClassVar[str] = "alarm.action"
    alarm: str
    action: str
    step: int
    ok: bool
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class PlanRequested(Event):
    """Someone (a rule's step, a person) asks for a plan (预案) to start."""

    kind: ClassVar[str] = "plan.requested"
    plan: str
    requested_by: str
    alarm: str = ""
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class PlanStarted(Event):
    """A run of a plan (预案) began; ``steps`` are its step ids in order."""

    kind: ClassVar[str] = "plan.started"
    run: str
    plan: str
    name: str = ""
    requested_by: str = ""
    alarm: str = ""
    reason: str = ""
    steps: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class PlanStepChanged(Event):
    """A step of a run moved (pending -> running -> ok/failed; skipped; cancelled);
    ``detail``, ``code`` and ``data`` are its result."""

    kind: ClassVar[str] = "plan.step"
    run: str
    plan: str
    step: str
    action: str
    old: str
    new: str
    detail: str = ""
    code: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PlanNotified(Event):
    """A plan's ``notify`` step: the consoles should show ``text`` to the people on duty."""

    kind: ClassVar[str] = "plan.notify"
    run: str
    plan: str
    step: str
    text: str
    level: str = ""
    alarm: str = ""


@dataclass(frozen=True, kw_only=True)
class PlanFinished(Event):
    """A run ended: ``state`` succeeded, failed (some step failed or was skipped) or
    cancelled; ``report`` has every step's result."""

    kind: ClassVar[str] = "plan.finished"
    run: str
    plan: str
    state: str
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PlanRejected(Event):
    """A requested plan did not start (no such plan, or it is running already)."""

    kind: ClassVar[str] = "plan.rejected"
    plan: str
    requested_by: str
    alarm: str = ""
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class SipBindingChanged(Event):
    """A SIP user's registration changed: ``change`` is added, updated, removed, expired."""

    kind: ClassVar[str] = "sip.binding"
    user: str
    contact: str
    change: str
    expires_in: int = 0
    source: str = ""


@dataclass(frozen=True, kw_only=True)
class SipTrunkChanged(Event):
    """A trunk's keep-alive state (unknown, up, down) or registration changed."""

    kind: ClassVar[str] = "sip.trunk"
    trunk: str
    state: str
    registration: str
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class SipCallProgress(Event):
    """A call leg's progress: ``phase`` is trying, ringing, early-media, answered,
    attempt-failed, failed, ended, media-changed or dtmf."""

    kind: ClassVar[str] = "sip.call"
    leg: str
    phase: str
    direction: str
    remote: str
    trunk: str | None = None
    route: int | None = None
    status: int = 0
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ConferenceStateChanged(Event):
    """A conference changed state (empty, single, multi, ended); ``reason`` says why."""

    kind: ClassVar[str] = "conference.state"
    conference: str
    state: str
    name: str = ""
    conference_kind: str = "conference"  # or "call" (``kind`` names the event itself)
    reason: str = ""
    actor: str = ""


@dataclass(frozen=True, kw_only=True)
class ConferenceParticipantChanged(Event):
    """A participant's state (dialing, ringing, lobby, joined, left, failed) or route."""

    kind: ClassVar[str] = "conference.participant"
    conference: str
    participant: str
    state: str
    target: str = ""
    endpoint: str | None = None
    role: str = "participant"
    route: int | None = None
    trunk: str | None = None
    status: int | None = None
    reason: str = ""
    actor: str = ""


@dataclass(frozen=True, kw_only=True)
class ConferenceControl(Event):
    """A control action: mute, unmute, deafen, undeafen, lock, unlock, mute-all,
    unmute-all, kick, record, stop-record, announce, role, admit."""

    kind: ClassVar[str] = "conference.control"
    conference: str
    action: str
    participant: str | None = None
    actor: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ConferenceTalking(Event):
    kind: ClassVar[str] = "conference.talking"
    conference: str
    participant: str
    talking: bool


@dataclass(frozen=True, kw_only=True)
class ConferenceRecording(Event):
    """A recording file opened (``end_ts`` None) or finished: the mix or one talker's."""

    kind: ClassVar[str] = "conference.recording"
    conference: str
    recording: str
    path: str
    recording_kind: str = "mix"  # or "talker"
    talker: str | None = None
    start_ts: float = 0.0
    end_ts: float | None = None


@dataclass(frozen=True, kw_only=True)
class ConferenceRollCall(Event):
    """A roll call's progress (ROLLCALL helper): who answered, who did not and why."""

    kind: ClassVar[str] = "conference.rollcall"
    conference: str
    rollcall: str
    state: str
    answered: list[Any] = field(default_factory=list)
    unanswered: list[Any] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ConferenceDialIn(Event):
    """A dial-in call's outcome: ``admitted``, ``refused`` (unknown number, locked, full),
    ``wrong-pin``, ``locked-out`` (a source just got locked out), ``blocked`` (an INVITE
    from a locked-out source), ``timeout`` (no PIN keyed) or ``abandoned`` (caller hung up)."""

    kind: ClassVar[str] = "conference.dialin"
    conference: str | None
    number: str
    source: str
    outcome: str
    participant: str | None = None
    role: str | None = None
    status: int = 0
    failures: int = 0
    reason: str = ""
