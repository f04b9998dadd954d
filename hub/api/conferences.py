"""Conference routes: create, list, end; add (dial out), mute, deafen, kick, lock, announce
and record. Any role may read; dispatchers, engineers, the platform and admins may control.

``POST .../participants`` answers 202 with the participant in state ``dialing``: the call's
progress (ringing, joined, failed with the SIP status) follows on the participant's view and
as ``conference.participant`` events. Every control call is audited with the caller's name.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.api.deps import ANY_ROLE, get_hub, require
from hub.auth import Principal
from hub.conferences.announcement import ToneSpec, announcement_file
from hub.conferences.config import Pin
from hub.conferences.model import (
    Conference,
    ConferenceLocked,
    Participant,
    ParticipantRole,
)
from hub.config import Role
from hub.runtime import Hub

router = APIRouter(tags=["conferences"])

HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(require(*ANY_ROLE))]
Controller = Annotated[
    Principal, Depends(require(Role.DISPATCHER, Role.ENGINEER, Role.PLATFORM, Role.ADMIN))
]

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such conference (or participant)", **_PROBLEM}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the conference has ended, is locked or is full", **_PROBLEM}
}


# -- views ------------------------------------------------------------------------------------


class MediaOut(BaseModel):
    """A participant's RTP figures since it joined: what it sent the hub and what of that
    was bad. Counters only grow; ``live`` false means the leg has gone (the last figures)."""

    live: bool = Field(description="the media leg is running (false: figures at its end)")
    conference: str = Field(description="the media engine conference (lobby-<id> in a lobby)")
    ssrc: int | None
    datagrams: int = Field(description="UDP datagrams received on the RTP port")
    packets: int = Field(description="RTP packets accepted from the current source (SSRC)")
    lost: int = Field(description="packets missing from the current source's sequence")
    late: int = Field(description="packets too late for the jitter buffer")
    duplicates: int
    reordered: int
    jitter_ms: float = Field(description="interarrival jitter (RFC 3550)")
    jitter_buffer_frames: int
    jitter_target_frames: int
    concealed: int = Field(description="frames concealed for missing audio")
    drift_drops: int
    ssrc_changes: int
    malformed: int = Field(description="datagrams that were not valid RTP/RTCP (garbled)")
    wrong_source: int = Field(description="datagrams from another address than the leg's")
    unknown_payload_type: int = Field(description="packets of a payload type not negotiated")
    flood_dropped: int = Field(description="packets dropped because the leg flooded")
    size_mismatch: int
    dtmf_received: int
    dtmf_sent: int
    packets_sent: int
    rtcp_received: int
    rtcp_sent: int
    round_trip_ms: float | None = Field(description="from RTCP reports, once known")
    remote_fraction_lost: float | None = Field(description="what the far end reports losing")
    talking: bool
    extra: dict[str, int] = Field(description="further engine counters")


class ParticipantOut(BaseModel):
    id: str
    conference: str
    target: str = Field(description="what was dialled, or the caller's URI")
    endpoint: str | None = Field(description="the directory endpoint, when dialled by id")
    role: ParticipantRole
    state: str = Field(description="dialing, ringing, lobby, joined, left or failed")
    direction: str = Field(description="outbound (the hub dialled) or inbound (dial-in)")
    route: int | None = Field(description="index of the endpoint route that answered")
    trunk: str | None
    attempts: list[dict[str, Any]] = Field(description="each failed route: status and reason")
    leg: str | None = Field(description="the SIP call leg (see /api/v1/calls)")
    muted: bool
    deafened: bool
    talking: bool
    codec: str | None
    joined_ts: float | None
    left_ts: float | None
    status: int | None = Field(description="the SIP status when the call failed")
    reason: str = Field(description="why it left or failed")
    media: MediaOut | None = Field(
        None,
        description="RTP figures (bad input, loss, jitter): only on the single participant's "
        "view; null before its media started",
    )

    @classmethod
    def of(cls, hub: Hub, participant: Participant, *, media: bool = False) -> ParticipantOut:
        view = hub.conferences.describe_participant(participant, media=media)
        return cls.model_validate(view)


class ConferenceOut(BaseModel):
    id: str
    name: str
    kind: str = Field(description="conference, or call (a two-party call the hub bridges)")
    state: str = Field(description="empty, single, multi or ended")
    profile: str
    number: str | None = Field(description="the dial-in number of a standing room")
    has_pin: bool = Field(description="dial-in callers must enter a PIN (never shown)")
    standing: bool = Field(description="a room from the site file: it is never ended when empty")
    locked: bool
    max_duration: float = Field(description="seconds; 0: no limit")
    created_ts: float
    ended_ts: float | None
    reason: str = Field(description="why it ended")
    recording: str | None = Field(
        description="the recording session in progress: GET /api/v1/recordings/{recording}"
    )
    talking: list[str] = Field(description="participants talking now")
    participants: list[ParticipantOut] = Field(description="everyone, left and failed included")

    @classmethod
    def of(cls, hub: Hub, conf: Conference) -> ConferenceOut:
        return cls.model_validate(hub.conferences.describe(conf))


class ConferenceList(BaseModel):
    conferences: list[ConferenceOut]


class ParticipantList(BaseModel):
    participants: list[ParticipantOut]


# -- requests ---------------------------------------------------------------------------------


class ConferenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    pin: Pin | None = Field(None, description="digits and '*' callers key to dial in")
    profile: str = Field("default", min_length=1, max_length=64)
    max_duration: float | None = Field(
        None, ge=0, le=7 * 86400, description="seconds; 0: no limit; default: the profile's"
    )
    record: bool | None = Field(None, description="record from the start; default: the profile's")


class ParticipantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str = Field(
        min_length=1,
        max_length=512,
        description="a directory endpoint id (its routes are tried in order) or an address:"
        " pstn:+86..., user:<sip user>, sip:user@host, sat:...",
    )
    role: ParticipantRole = ParticipantRole.PARTICIPANT
    ring_timeout: float | None = Field(None, gt=0, le=300, description="seconds each route rings")


class ParticipantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    muted: bool | None = None
    deafened: bool | None = None
    role: ParticipantRole | None = None

    @model_validator(mode="after")
    def _something(self) -> ParticipantPatch:
        if self.muted is None and self.deafened is None and self.role is None:
            raise ValueError("give at least one of 'muted', 'deafened', 'role'")
        return self


class AnnouncementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tone: ToneSpec | None = None
    file: str | None = Field(
        None, min_length=1, max_length=512, description="a WAV file in the hub's data directory"
    )
    participant: str | None = Field(None, description="play to this participant only")

    @model_validator(mode="after")
    def _one(self) -> AnnouncementIn:
        if (self.tone is None) == (self.file is None):
            raise ValueError("give either 'tone' or 'file'")
        return self


class AnnouncementOut(BaseModel):
    conference: str
    announcement: int
    participant: str | None


class RecordingStarted(BaseModel):
    conference: str
    recording: str = Field(
        description="the recording session: GET /api/v1/recordings/{recording} lists its files"
    )


# -- helpers ----------------------------------------------------------------------------------


def _audit(request: Request, target: str, detail: str = "") -> None:
    request.state.audit_target = target
    if detail:
        request.state.audit_detail = detail[:200]


def _view(hub: Hub, conf_id: str) -> ConferenceOut:
    return ConferenceOut.of(hub, hub.conferences.get(conf_id))


# -- conferences ------------------------------------------------------------------------------


@router.get("/api/v1/conferences", response_model=ConferenceList)
async def list_conferences(hub: HubDep, _: Reader) -> ConferenceList:
    """Every conference the hub holds: standing rooms, ad-hoc conferences, bridged calls."""
    return ConferenceList(conferences=[ConferenceOut.of(hub, c) for c in hub.conferences.list()])


@router.post(
    "/api/v1/conferences",
    status_code=201,
    response_model=ConferenceOut,
    responses={422: {"description": "bad field or unknown profile", **_PROBLEM}},
)
async def create_conference(
    body: ConferenceIn, request: Request, hub: HubDep, who: Controller
) -> ConferenceOut:
    _audit(request, "conferences", f"create {body.name!r} profile {body.profile}")
    conf = hub.conferences.create(
        name=body.name,
        actor=who.name,
        pin=body.pin,
        profile=body.profile,
        max_duration=body.max_duration,
        record=body.record,
    )
    request.state.audit_target = f"conference:{conf.id}"
    return ConferenceOut.of(hub, conf)


@router.get("/api/v1/conferences/{conf_id}", response_model=ConferenceOut, responses=_NOT_FOUND)
async def get_conference(conf_id: str, hub: HubDep, _: Reader) -> ConferenceOut:
    return _view(hub, conf_id)


@router.delete(
    "/api/v1/conferences/{conf_id}",
    response_model=ConferenceOut,
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def end_conference(
    conf_id: str, request: Request, hub: HubDep, who: Controller
) -> ConferenceOut:
    """End the conference: everyone is hung up, recordings are closed."""
    _audit(request, f"conference:{conf_id}", "end")
    conf = hub.conferences.get(conf_id)
    await hub.conferences.end(conf_id, actor=who.name)
    return ConferenceOut.of(hub, conf)


async def _control(
    request: Request, hub: HubDep, who: Principal, conf_id: str, action: str
) -> ConferenceOut:
    _audit(request, f"conference:{conf_id}", action)
    service = hub.conferences
    if action in ("lock", "unlock"):
        service.lock(conf_id, action == "lock", actor=who.name)
    else:
        service.mute_all(conf_id, action == "mute-all", actor=who.name)
    return _view(hub, conf_id)


@router.post(
    "/api/v1/conferences/{conf_id}/lock",
    response_model=ConferenceOut,
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def lock_conference(
    conf_id: str, request: Request, hub: HubDep, who: Controller
) -> ConferenceOut:
    """Lock: nobody dials in, and only moderators and monitors are added."""
    return await _control(request, hub, who, conf_id, "lock")


@router.post(
    "/api/v1/conferences/{conf_id}/unlock",
    response_model=ConferenceOut,
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def unlock_conference(
    conf_id: str, request: Request, hub: HubDep, who: Controller
) -> ConferenceOut:
    return await _control(request, hub, who, conf_id, "unlock")


@router.post(
    "/api/v1/conferences/{conf_id}/mute-all",
    response_model=ConferenceOut,
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def mute_all(conf_id: str, request: Request, hub: HubDep, who: Controller) -> ConferenceOut:
    """Mute everyone except the moderators."""
    return await _control(request, hub, who, conf_id, "mute-all")


@router.post(
    "/api/v1/conferences/{conf_id}/unmute-all",
    response_model=ConferenceOut,
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def unmute_all(conf_id: str, request: Request, hub: HubDep, who: Controller) -> ConferenceOut:
    return await _control(request, hub, who, conf_id, "unmute-all")


# -- participants -----------------------------------------------------------------------------


@router.get(
    "/api/v1/conferences/{conf_id}/participants",
    response_model=ParticipantList,
    responses=_NOT_FOUND,
)
async def list_participants(conf_id: str, hub: HubDep, _: Reader) -> ParticipantList:
    conf = hub.conferences.get(conf_id)
    return ParticipantList(
        participants=[ParticipantOut.of(hub, p) for p in conf.participants.values()]
    )


@router.post(
    "/api/v1/conferences/{conf_id}/participants",
    status_code=202,
    response_model=ParticipantOut,
    responses={
        **_NOT_FOUND,
        **_CONFLICT,
        422: {"description": "not a directory endpoint nor a dialable address", **_PROBLEM},
    },
)
async def add_participant(
    conf_id: str, body: ParticipantIn, request: Request, hub: HubDep, who: Controller
) -> ParticipantOut:
    """Dial ``target`` into the conference; 202 at once with the participant ``dialing``."""
    _audit(request, f"conference:{conf_id}", f"dial {body.target} as {body.role.value}")
    # A locked conference still takes a moderator or a silent monitor, as ConfBridge lets
    # an admin user into a locked bridge.
    try:
        participant = await hub.conferences.dial(
            conf_id,
            body.target,
            actor=who.name,
            role=body.role,
            ring_timeout=body.ring_timeout,
            override_lock=body.role is not ParticipantRole.PARTICIPANT,
        )
    except ConferenceLocked:
        raise ConferenceLocked(
            f"conference {conf_id!r} is locked: unlock it, or add {body.target!r}"
            " as a moderator or monitor"
        ) from None
    _audit(request, f"conference:{conf_id}/participant:{participant.id}")
    return ParticipantOut.of(hub, participant)


@router.get(
    "/api/v1/conferences/{conf_id}/participants/{participant_id}",
    response_model=ParticipantOut,
    responses=_NOT_FOUND,
)
async def get_participant(
    conf_id: str, participant_id: str, hub: HubDep, _: Reader
) -> ParticipantOut:
    """One participant with its RTP figures (``media``): garbled, flooding, lost or
    wrong-source packets show here per participant."""
    participant = hub.conferences.participant(conf_id, participant_id)
    return ParticipantOut.of(hub, participant, media=True)


@router.patch(
    "/api/v1/conferences/{conf_id}/participants/{participant_id}",
    response_model=ParticipantOut,
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def change_participant(
    conf_id: str,
    participant_id: str,
    body: ParticipantPatch,
    request: Request,
    hub: HubDep,
    who: Controller,
) -> ParticipantOut:
    """Mute or unmute, deafen or undeafen, or change the role (a monitor is never heard)."""
    changes = body.model_dump(exclude_none=True, mode="json")
    _audit(
        request,
        f"conference:{conf_id}/participant:{participant_id}",
        ", ".join(f"{k}={v}" for k, v in changes.items()),
    )
    service = hub.conferences
    service.participant(conf_id, participant_id)  # 404 before any change
    if body.role is not None:
        service.set_role(conf_id, participant_id, body.role, actor=who.name)
    if body.muted is not None:
        service.set_mute(conf_id, participant_id, body.muted, actor=who.name)
    if body.deafened is not None:
        service.set_deafen(conf_id, participant_id, body.deafened, actor=who.name)
    return ParticipantOut.of(hub, service.participant(conf_id, participant_id))


@router.delete(
    "/api/v1/conferences/{conf_id}/participants/{participant_id}",
    response_model=ParticipantOut,
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def remove_participant(
    conf_id: str, participant_id: str, request: Request, hub: HubDep, who: Controller
) -> ParticipantOut:
    """Forced release (强拆): hang up the participant; it is ``left`` with reason ``kicked``."""
    _audit(request, f"conference:{conf_id}/participant:{participant_id}", "kick")
    service = hub.conferences
    service.participant(conf_id, participant_id)
    await service.remove(conf_id, participant_id, actor=who.name)
    return ParticipantOut.of(hub, service.participant(conf_id, participant_id))


# -- announcements and recording --------------------------------------------------------------


@router.post(
    "/api/v1/conferences/{conf_id}/announcements",
    status_code=202,
    response_model=AnnouncementOut,
    responses={
        **_NOT_FOUND,
        **_CONFLICT,
        422: {"description": "bad tone, or a file that is missing or not a WAV", **_PROBLEM},
    },
)
async def announce(
    conf_id: str, body: AnnouncementIn, request: Request, hub: HubDep, who: Controller
) -> AnnouncementOut:
    """Play a tone or a WAV file to the whole conference or to one participant."""
    what = body.tone.describe() if body.tone else f"file {body.file}"
    to = f" to {body.participant}" if body.participant else ""
    _audit(request, f"conference:{conf_id}", f"announce {what}{to}")
    service = hub.conferences
    service.get(conf_id)  # 404 before looking at the file
    tone = body.tone.tone() if body.tone else None
    file = None
    if body.file is not None:
        file = await asyncio.to_thread(announcement_file, hub.site.hub.data_dir, body.file)
    number = await service.announce(
        conf_id, actor=who.name, tone=tone, file=file, participant=body.participant
    )
    return AnnouncementOut(conference=conf_id, announcement=number, participant=body.participant)


@router.post(
    "/api/v1/conferences/{conf_id}/recording",
    status_code=201,
    response_model=RecordingStarted,
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def start_recording(
    conf_id: str, request: Request, hub: HubDep, who: Controller
) -> RecordingStarted:
    """Start recording the mix (and each talker, per the profile's formats). The answer's
    ``recording`` is the recording session: ``GET /api/v1/recordings/{recording}`` lists
    its files (the mix and each talker's track)."""
    _audit(request, f"conference:{conf_id}", "record")
    recording = await hub.conferences.start_recording(conf_id, actor=who.name)
    _audit(request, f"conference:{conf_id}", f"record {recording}")
    return RecordingStarted(conference=conf_id, recording=recording)


@router.delete(
    "/api/v1/conferences/{conf_id}/recording",
    response_model=ConferenceOut,
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def stop_recording(
    conf_id: str, request: Request, hub: HubDep, who: Controller
) -> ConferenceOut:
    """Stop recording; the files are finished and indexed (see /api/v1/recordings)."""
    _audit(request, f"conference:{conf_id}", "stop-record")
    await hub.conferences.stop_recording(conf_id, actor=who.name)
    return _view(hub, conf_id)
