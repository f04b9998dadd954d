"""Conferences: policy (who joins, who may talk) on top of the media engine and SIP legs."""

from hub.conferences.config import ConferenceProfile, ConferenceSection, Room
from hub.conferences.model import (
    Conference,
    ConferenceEnded,
    ConferenceError,
    ConferenceEvent,
    ConferenceFull,
    ConferenceLocked,
    ConferenceNotFound,
    ConferenceState,
    ConferenceStateError,
    InvalidConferenceRequest,
    InvalidTarget,
    Participant,
    ParticipantNotFound,
    ParticipantRole,
    ParticipantState,
)

__all__ = [
    "Conference",
    "ConferenceEnded",
    "ConferenceError",
    "ConferenceEvent",
    "ConferenceFull",
    "ConferenceLocked",
    "ConferenceNotFound",
    "ConferenceProfile",
    "ConferenceSection",
    "ConferenceState",
    "ConferenceStateError",
    "InvalidConferenceRequest",
    "InvalidTarget",
    "Participant",
    "ParticipantNotFound",
    "ParticipantRole",
    "ParticipantState",
    "Room",
]
