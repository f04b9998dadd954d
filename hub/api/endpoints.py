"""Telephony routes: the directory (site endpoints, SIP users and their registrations,
trunks with their state), the active call legs and the recent call records."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from hub.api.deps import ANY_ROLE, get_hub, require
from hub.auth import Principal
from hub.runtime import Hub

router = APIRouter(tags=["telephony"])

HubDep = Annotated[Hub, Depends(get_hub)]
AnyRole = Annotated[Principal, Depends(require(*ANY_ROLE))]


class RouteOut(BaseModel):
    address: str
    trunks: list[str | None]
    error: str | None


class EndpointOut(BaseModel):
    id: str
    name: str
    roles: list[str]
    routes: list[RouteOut]


class BindingOut(BaseModel):
    contact: str
    expires_in: int
    q: float


class SipUserOut(BaseModel):
    name: str
    address: str
    roles: list[str]
    bindings: list[BindingOut]


class TrunkOut(BaseModel):
    id: str
    type: str
    state: str
    registration: str
    active_calls: int
    max_calls: int
    detail: str


class DirectoryOut(BaseModel):
    endpoints: list[EndpointOut]
    users: list[SipUserOut]
    trunks: list[TrunkOut]


class CallOut(BaseModel):
    id: str
    direction: str
    remote: str
    state: str
    trunk: str | None
    route: int | None
    caller: str | None
    held: bool
    start_ts: float
    answer_ts: float | None
    media: dict[str, Any] | None


class CallRecordOut(BaseModel):
    id: str
    leg: str
    direction: str
    remote: str
    trunk: str | None
    start_ts: float
    answer_ts: float | None
    end_ts: float | None
    status: int | None
    reason: str


@router.get("/api/v1/endpoints", response_model=DirectoryOut)
async def directory(hub: HubDep, _: AnyRole) -> DirectoryOut:
    """Who can be called: site endpoints with their routes (and the trunks serving each),
    SIP users with their current registrations, and the trunks with their state."""
    return DirectoryOut.model_validate(hub.telephony.directory())


@router.get("/api/v1/calls", response_model=list[CallOut])
async def active_calls(hub: HubDep, _: AnyRole) -> list[CallOut]:
    """The call legs alive now."""
    return [CallOut(**leg.describe()) for leg in hub.telephony.calls.legs.values()]


@router.get("/api/v1/calls/records", response_model=list[CallRecordOut])
async def call_records(
    hub: HubDep, _: AnyRole, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[CallRecordOut]:
    """Ended call legs, newest first."""
    records = await hub.telephony.store.call_records(limit=limit)
    return [CallRecordOut(**asdict(r)) for r in records]  # the API leaves out conference
