"""REST routes of the foundation: health, metrics, identity, event history, duty log, audit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from hub import __version__
from hub.api.deps import ANY_ROLE, get_hub, require
from hub.auth import Principal
from hub.config import Role
from hub.events import DutyNoteAdded, SubsystemState
from hub.runtime import Hub

router = APIRouter()

HubDep = Annotated[Hub, Depends(get_hub)]


class SubsystemOut(BaseModel):
    name: str
    state: SubsystemState
    detail: str


class HealthOut(BaseModel):
    status: str = Field(description="ok, degraded or down")
    version: str
    site: str
    last_event_id: int
    subsystems: list[SubsystemOut]


@router.get("/api/v1/health", response_model=HealthOut, tags=["hub"])
async def health(hub: HubDep) -> JSONResponse:
    """Each subsystem's state. No token needed. 503 when a subsystem is down."""
    subsystems = hub.health()
    states = {s.state for s in subsystems}
    if SubsystemState.DOWN in states:
        status, code = "down", 503
    elif states - {SubsystemState.UP}:
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    body = HealthOut(
        status=status,
        version=__version__,
        site=hub.site.hub.name,
        last_event_id=hub.bus.last_id,
        subsystems=[SubsystemOut(name=s.name, state=s.state, detail=s.detail) for s in subsystems],
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=code)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    return Response(
        request.app.state.metrics.render(),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )


class WhoAmI(BaseModel):
    name: str
    role: Role


@router.get("/api/v1/whoami", response_model=WhoAmI, tags=["hub"])
async def whoami(principal: Annotated[Principal, Depends(require(*ANY_ROLE))]) -> WhoAmI:
    return WhoAmI(name=principal.name, role=principal.role)


class EventOut(BaseModel):
    id: int
    ts: float
    kind: str
    data: dict[str, Any]


class EventPage(BaseModel):
    events: list[EventOut]
    last_id: int = Field(description="id of the newest event returned (or 'after')")
    more: bool = Field(description="true when more events follow: ask again with after=last_id")


@router.get("/api/v1/events", response_model=EventPage, tags=["events"])
async def event_history(
    hub: HubDep,
    _: Annotated[Principal, Depends(require(*ANY_ROLE))],
    after: Annotated[int, Query(ge=0, description="return events with a larger id")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    kinds: Annotated[str, Query(description="comma-separated kind prefixes, e.g. duty.,hub.")] = "",
) -> EventPage:
    """The event log, oldest first, from the store (the WebSocket streams the same ids)."""
    await hub.store.flush()
    prefixes = [k for k in kinds.split(",") if k]
    events = await hub.store.events_since(after, limit=limit + 1, kinds=prefixes)
    more = len(events) > limit
    events = events[:limit]
    return EventPage(
        events=[EventOut(**e.to_dict()) for e in events],
        last_id=events[-1].id if events else after,
        more=more,
    )


class DutyNoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)
    category: str = Field("general", min_length=1, max_length=64)


@router.post("/api/v1/duty-log", status_code=201, response_model=EventOut, tags=["events"])
async def add_duty_note(
    note: DutyNoteIn,
    request: Request,
    hub: HubDep,
    principal: Annotated[
        Principal, Depends(require(Role.DISPATCHER, Role.PLATFORM, Role.ENGINEER))
    ],
) -> EventOut:
    """Add an entry to the duty log (值班日志). Answered only once it is stored durably."""
    client = request.client
    event = await hub.bus.publish_durable(
        DutyNoteAdded(
            author=principal.name,
            text=note.text,
            category=note.category,
            source=client.host if client else "",
        )
    )
    request.state.audit_target = f"event:{event.id}"
    request.state.audit_detail = f"category={note.category}"
    return EventOut(**event.to_dict())


class AuditOut(BaseModel):
    id: int
    ts: float
    actor: str
    role: str
    action: str
    target: str
    source: str
    result: str
    detail: str


@router.get("/api/v1/audit", response_model=list[AuditOut], tags=["hub"])
async def audit_log(
    hub: HubDep,
    _: Annotated[Principal, Depends(require(Role.OPS))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    actor: str | None = None,
) -> list[AuditOut]:
    """Newest first: who did what, from where, with what result."""
    entries = await hub.store.audit_entries(limit=limit, actor=actor)
    return [AuditOut(**e.__dict__) for e in entries]
