"""Dispatch dialling routes: roll calls (点名) into a conference, the two-party call the hub
bridges (``POST /api/v1/calls``) and barge (强插) into such a call.

``POST .../roll-calls`` answers 202 with the roll call (``state: running``) at once; its
report fills in as members answer or fail, and the same report is ``conference.rollcall``
events on the bus.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from hub.api.deps import ANY_ROLE, get_hub, require
from hub.auth import Principal
from hub.conferences.model import Participant
from hub.conferences.rollcall import MAX_MEMBERS, RollCall, RollCallMode
from hub.config import Role
from hub.runtime import Hub

router = APIRouter(tags=["conferences"])

HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(require(*ANY_ROLE))]
Controller = Annotated[
    Principal, Depends(require(Role.DISPATCHER, Role.ENGINEER, Role.PLATFORM, Role.ADMIN))
]
Target = Annotated[str, Field(min_length=1, max_length=512)]
RingTimeout = Annotated[float, Field(gt=0, le=300, description="seconds each route rings")]

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the conference or roll call is not in a state for this"}
}


class RollCallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    members: list[Target] = Field(
        min_length=1,
        max_length=MAX_MEMBERS,
        description="directory endpoint ids, addresses (pstn:, user:, sip:...) or role:<r>",
    )
    mode: RollCallMode = RollCallMode.SEQUENTIAL
    ring_timeout: RingTimeout = 30.0


class MemberOut(BaseModel):
    target: str
    endpoint: str | None
    via_role: str | None = Field(description="the role:<r> this member was expanded from")
    outcome: str = Field(description="pending, calling, answered, unanswered or cancelled")
    participant: str | None
    route: int | None = Field(description="index of the endpoint route that answered")
    trunk: str | None
    dialled_ts: float | None
    settled_ts: float | None
    answer_seconds: float | None
    status: int | None = Field(description="SIP status when not answered")
    reason: str
    attempts: list[dict[str, Any]] = Field(description="each failed route: status and reason")


class RollCallOut(BaseModel):
    id: str
    conference: str
    mode: str
    ring_timeout: float
    state: str = Field(description="running, finished or cancelled")
    actor: str
    cancelled_by: str | None
    created_ts: float
    finished_ts: float | None
    answered: list[str]
    unanswered: list[str]
    members: list[MemberOut]


class RollCallList(BaseModel):
    roll_calls: list[RollCallOut]


class CallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: Target
    b: Target
    name: str | None = Field(None, min_length=1, max_length=200)
    ring_timeout: RingTimeout | None = None


class BargeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: Target
    ring_timeout: RingTimeout | None = None


def _out(rollcall: RollCall) -> dict[str, Any]:
    return rollcall.report()


def _participant(hub: Hub, participant: Participant) -> dict[str, Any]:
    view = hub.conferences.describe(hub.conferences.get(participant.conference))
    for item in view.get("participants", []):
        if item.get("id") == participant.id:
            return dict(item)
    return {
        "id": participant.id,
        "conference": participant.conference,
        "target": participant.target,
        "state": participant.state.value,
        "role": participant.role.value,
    }


@router.post(
    "/api/v1/conferences/{conf_id}/roll-calls",
    response_model=RollCallOut,
    status_code=202,
    responses={404: {"description": "no such conference"}, **_CONFLICT,
               422: {"description": "a member is not a known endpoint, role or address"}},
)  # fmt: skip
async def start_roll_call(
    conf_id: str, body: RollCallIn, request: Request, hub: HubDep, principal: Controller
) -> dict[str, Any]:
    """Call the members into the conference, one at a time or all at once; follow the
    report at ``.../roll-calls/{id}``."""
    request.state.audit_target = f"conference:{conf_id}"
    rollcall = hub.rollcalls.launch(
        conf_id,
        body.members,
        actor=principal.name,
        mode=body.mode,
        ring_timeout=body.ring_timeout,
    )
    request.state.audit_detail = f"roll call {rollcall.id} ({len(rollcall.members)} members)"
    return _out(rollcall)


@router.get("/api/v1/conferences/{conf_id}/roll-calls", response_model=RollCallList)
async def list_roll_calls(conf_id: str, hub: HubDep, _: Reader) -> dict[str, Any]:
    return {"roll_calls": [_out(r) for r in hub.rollcalls.list(conf_id)]}


@router.get("/api/v1/conferences/{conf_id}/roll-calls/{rollcall_id}", response_model=RollCallOut)
async def get_roll_call(conf_id: str, rollcall_id: str, hub: HubDep, _: Reader) -> dict[str, Any]:
    """Who answered (route, trunk, seconds to answer) and who did not (status, reason)."""
    return _out(hub.rollcalls.get(conf_id, rollcall_id))


@router.delete(
    "/api/v1/conferences/{conf_id}/roll-calls/{rollcall_id}",
    response_model=RollCallOut,
    responses=_CONFLICT,
)
async def cancel_roll_call(
    conf_id: str, rollcall_id: str, request: Request, hub: HubDep, principal: Controller
) -> dict[str, Any]:
    """Cancel the rest: members still ringing are hung up, the others are not called;
    members who answered stay in the conference."""
    request.state.audit_target = f"conference:{conf_id}"
    request.state.audit_detail = f"cancel roll call {rollcall_id}"
    return _out(await hub.rollcalls.cancel(conf_id, rollcall_id, actor=principal.name))


@router.post(
    "/api/v1/calls",
    status_code=202,
    responses={422: {"description": "a party is not a known endpoint or address"}},
)
async def start_call(
    body: CallIn, request: Request, hub: HubDep, principal: Controller
) -> dict[str, Any]:
    """A two-party call the hub bridges: a conference of kind ``call`` with both parties
    dialled. When one party leaves, the other is released and the call ends."""
    conference = await hub.rollcalls.call(
        body.a, body.b, actor=principal.name, name=body.name, ring_timeout=body.ring_timeout
    )
    request.state.audit_target = f"conference:{conference.id}"
    request.state.audit_detail = f"call {body.a} - {body.b}"
    return hub.conferences.describe(conference)


@router.post(
    "/api/v1/conferences/{conf_id}/barge",
    status_code=202,
    responses={404: {"description": "no such conference"},
               409: {"description": "not a two-party call with exactly two joined parties"}},
)  # fmt: skip
async def barge(
    conf_id: str, body: BargeIn, request: Request, hub: HubDep, principal: Controller
) -> dict[str, Any]:
    """强插: dial ``target`` talking into a two-party call; every party hears a short tone
    once it answers."""
    request.state.audit_target = f"conference:{conf_id}"
    participant = await hub.rollcalls.barge(
        conf_id, body.target, actor=principal.name, ring_timeout=body.ring_timeout
    )
    request.state.audit_detail = f"barge {body.target} as {participant.id}"
    return _participant(hub, participant)
