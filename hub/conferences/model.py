"""What a conference is: its states, its participants, and the errors the service raises."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any

from hub.errors import HubError, InvalidStateError, NotFound


class ConferenceState(enum.StrEnum):
    """ConfBridge-style: empty (nobody heard), single (one talker), multi, ended (terminal).

    Monitors are not counted: a conference with one participant and a monitor is single.
    """

    EMPTY = "empty"
    SINGLE = "single"
    MULTI = "multi"
    ENDED = "ended"


class ConferenceEvent(enum.StrEnum):
    """What drives the conference state machine."""

    JOIN = "join"
    LEAVE = "leave"
    END = "end"
    TIMEOUT = "timeout"  # max_duration reached


class ParticipantState(enum.StrEnum):
    DIALING = "dialing"  # INVITE sent, no ringing yet
    RINGING = "ringing"
    LOBBY = "lobby"  # answered, media up, not yet in the mix (a dial-in waiting for its PIN)
    JOINED = "joined"
    LEFT = "left"
    FAILED = "failed"


TERMINAL_PARTICIPANT_STATES = frozenset({ParticipantState.LEFT, ParticipantState.FAILED})

PARTICIPANT_TRANSITIONS: dict[ParticipantState, frozenset[ParticipantState]] = {
    ParticipantState.DIALING: frozenset(
        {ParticipantState.RINGING, ParticipantState.LOBBY, ParticipantState.JOINED}
        | TERMINAL_PARTICIPANT_STATES
    ),
    ParticipantState.RINGING: frozenset(
        {ParticipantState.DIALING, ParticipantState.LOBBY, ParticipantState.JOINED}
        | TERMINAL_PARTICIPANT_STATES
    ),
    ParticipantState.LOBBY: frozenset({ParticipantState.JOINED} | TERMINAL_PARTICIPANT_STATES),
    ParticipantState.JOINED: frozenset({ParticipantState.LEFT}),
    ParticipantState.LEFT: frozenset(),
    ParticipantState.FAILED: frozenset(),
}


class ParticipantRole(enum.StrEnum):
    MODERATOR = "moderator"
    PARTICIPANT = "participant"
    MONITOR = "monitor"  # 监听: hears, is never heard, not announced, not counted


@dataclass(kw_only=True, eq=False)
class Participant:
    """One party of a conference, from the first INVITE (or answer) to its end."""

    id: str
    conference: str
    target: str
    endpoint: str | None = None
    role: ParticipantRole = ParticipantRole.PARTICIPANT
    state: ParticipantState = ParticipantState.DIALING
    direction: str = "outbound"
    route: int | None = None
    trunk: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    leg: str | None = None
    muted: bool = False
    deafened: bool = False
    talking: bool = False
    joined_ts: float | None = None
    left_ts: float | None = None
    reason: str = ""
    status: int | None = None
    codec: str | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def active(self) -> bool:
        """Not yet left or failed."""
        return self.state not in TERMINAL_PARTICIPANT_STATES

    @property
    def counted(self) -> bool:
        """Counts for the conference state (joined, not a monitor)."""
        return self.state is ParticipantState.JOINED and self.role is not ParticipantRole.MONITOR


@dataclass(kw_only=True, eq=False)
class Conference:
    id: str
    name: str
    kind: str = "conference"  # or "call": a two-party call the hub bridges
    pin: str | None = None
    moderator_pin: str | None = None
    number: str | None = None
    profile: str = "default"
    state: ConferenceState = ConferenceState.EMPTY
    locked: bool = False
    created_ts: float = 0.0
    ended_ts: float | None = None
    max_duration: float = 0.0
    participants: dict[str, Participant] = field(default_factory=dict)
    recording: str | None = None
    standing: bool = False
    reason: str = ""  # why it ended

    @property
    def ended(self) -> bool:
        return self.state is ConferenceState.ENDED

    def active_participants(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.active]

    def counted(self) -> int:
        return sum(1 for p in self.participants.values() if p.counted)


# -- errors (HubError subclasses: the API maps them by status) ----------------------------------


class ConferenceError(HubError):
    """Root of the conference layer's errors."""


class ConferenceNotFound(NotFound, ConferenceError):
    title = "Conference not found"


class ParticipantNotFound(NotFound, ConferenceError):
    title = "Participant not found"


class ConferenceLocked(InvalidStateError, ConferenceError):
    title = "Conference locked"


class ConferenceFull(InvalidStateError, ConferenceError):
    title = "Conference full"


class ConferenceEnded(InvalidStateError, ConferenceError):
    title = "Conference ended"


class InvalidTarget(ConferenceError):
    """The target is not a known endpoint or a valid address; ``reason`` is the dial plan's."""

    status = 422
    title = "Invalid target"

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"cannot dial {target!r}: {reason}")
        self.target = target
        self.reason = reason


class NoCommonMedia(ConferenceError):
    """An inbound offer has no audio stream with a codec of the conference's profile
    (the call is refused with 488 before it is answered)."""

    status = 488
    title = "No common codec"


class ConferenceStateError(InvalidStateError, ConferenceError):
    """The request does not fit the current state (already recording, not in the lobby...)."""

    title = "Invalid conference state"


class InvalidConferenceRequest(ConferenceError):
    """A malformed request (unknown profile, neither tone nor file, a bad PIN)."""

    status = 422
    title = "Invalid conference request"
