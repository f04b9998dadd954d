"""Alarm routes: list and inspect (any role), acknowledge, shelve, reset (people on duty)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.api.deps import ANY_ROLE, get_hub, require
from hub.auth import Principal
from hub.config import Role
from hub.runtime import Hub
from monitoring.alarms import AlarmSnapshot, AlarmState
from monitoring.config import WarningLevel
from monitoring.warning import AlarmFilter

router = APIRouter(tags=["alarms"])

HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(require(*ANY_ROLE))]
Actor = Annotated[Principal, Depends(require(Role.DISPATCHER, Role.OPS, Role.ENGINEER))]


class AlarmOut(BaseModel):
    id: str
    rule: str
    source: str
    subject: str = Field(description="the metric or event kind")
    level: WarningLevel
    state: AlarmState
    condition: str = Field(description="normal, active or no-data")
    labels: dict[str, str]
    latch: bool
    count: int
    message: str
    value: float | None
    raised_ts: float
    updated_ts: float
    ack_by: str | None
    ack_ts: float | None
    ack_comment: str | None
    shelved_until: float | None
    shelved_by: str | None
    shelve_reason: str | None
    suppressed_by: str | None
    flapping: bool

    @classmethod
    def of(cls, alarm: AlarmSnapshot) -> AlarmOut:
        data = alarm.to_dict()
        return cls.model_validate({k: data[k] for k in cls.model_fields})


class HistoryOut(BaseModel):
    id: int
    ts: float
    old_state: str
    new_state: str
    cause: str
    actor: str
    comment: str
    data: dict[str, Any]


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str = Field("", max_length=2000)


class AlarmSelection(BaseModel):
    """Which alarms a mass acknowledge covers (every given field must match)."""

    model_config = ConfigDict(extra="forbid")
    state: list[AlarmState] | None = None
    level: list[WarningLevel] | None = None
    source: str | None = None
    rule: str | None = None


class MassAckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] | None = Field(None, max_length=10_000)
    filter: AlarmSelection | None = None
    comment: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _one(self) -> MassAckIn:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give either 'ids' or 'filter'")
        return self


class Skipped(BaseModel):
    id: str
    reason: str


class MassAckOut(BaseModel):
    acknowledged: list[AlarmOut]
    skipped: list[Skipped]


class ShelveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    duration: float = Field(gt=0, description="seconds; the alarm returns by itself after this")
    reason: str = Field(min_length=1, max_length=2000)


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str = Field("", max_length=2000)


def _parse(values: list[str] | None, kind: type[Any], what: str) -> frozenset[Any] | None:
    names = [v for value in values or () for v in value.split(",") if v]
    try:
        return frozenset(kind(n) for n in names) or None
    except ValueError:
        legal = ", ".join(m.value for m in kind)
        raise HTTPException(422, f"{what}: expected some of {legal}; got {names}") from None


@router.get("/api/v1/alarms", response_model=list[AlarmOut])
async def list_alarms(
    hub: HubDep,
    _: Reader,
    state: Annotated[list[str] | None, Query(description="e.g. active-unack,shelved")] = None,
    level: Annotated[list[str] | None, Query(description="blue, yellow, orange, red")] = None,
    source: str | None = None,
    rule: str | None = None,
    include_normal: Annotated[bool, Query(alias="all", description="normal ones too")] = False,
) -> list[AlarmOut]:
    """Alarms that are not normal (``all=true``: every alarm), highest level first."""
    selected = AlarmFilter(
        states=_parse(state, AlarmState, "state"),
        levels=_parse(level, WarningLevel, "level"),
        source=source,
        rule=rule,
        active=not include_normal,
    )
    return [AlarmOut.of(a) for a in hub.alarms.core.alarms(selected)]


@router.get("/api/v1/alarms/{alarm_id}", response_model=AlarmOut)
async def get_alarm(alarm_id: str, hub: HubDep, _: Reader) -> AlarmOut:
    return AlarmOut.of(hub.alarms.get(alarm_id))


@router.get("/api/v1/alarms/{alarm_id}/history", response_model=list[HistoryOut])
async def alarm_history(
    alarm_id: str,
    hub: HubDep,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[HistoryOut]:
    """Every transition, acknowledgement and action of the alarm, oldest first."""
    entries = await hub.alarms.history(alarm_id, limit)
    return [HistoryOut(**{k: getattr(e, k) for k in HistoryOut.model_fields}) for e in entries]


@router.post("/api/v1/alarms/ack", response_model=MassAckOut)
async def ack_alarms(body: MassAckIn, request: Request, hub: HubDep, who: Actor) -> MassAckOut:
    """Acknowledge many alarms at once, by ``ids`` or by ``filter``; others are skipped."""
    if body.filter is not None:
        f = body.filter
        selected: AlarmFilter | list[str] = AlarmFilter(
            states=frozenset(f.state) if f.state else None,
            levels=frozenset(f.level) if f.level else None,
            source=f.source,
            rule=f.rule,
        )
    else:
        selected = body.ids or []
    done, skipped = await hub.alarms.ack_many(selected, who.name, body.comment)
    request.state.audit_target = "alarms"
    request.state.audit_detail = f"acknowledged {len(done)}, skipped {len(skipped)}"
    return MassAckOut(
        acknowledged=[AlarmOut.of(a) for a in done],
        skipped=[Skipped(id=i, reason=r) for i, r in skipped],
    )


@router.post("/api/v1/alarms/{alarm_id}/ack", response_model=AlarmOut)
async def ack_alarm(
    alarm_id: str, request: Request, hub: HubDep, who: Actor, body: AckIn | None = None
) -> AlarmOut:
    request.state.audit_target = f"alarm:{alarm_id}"
    comment = body.comment if body else ""
    return AlarmOut.of(await hub.alarms.ack(alarm_id, who.name, comment))


@router.post("/api/v1/alarms/{alarm_id}/shelve", response_model=AlarmOut)
async def shelve_alarm(
    alarm_id: str, body: ShelveIn, request: Request, hub: HubDep, who: Actor
) -> AlarmOut:
    request.state.audit_target = f"alarm:{alarm_id}"
    request.state.audit_detail = f"for {body.duration:g} s: {body.reason}"[:200]
    return AlarmOut.of(await hub.alarms.shelve(alarm_id, body.duration, who.name, body.reason))


@router.post("/api/v1/alarms/{alarm_id}/unshelve", response_model=AlarmOut)
async def unshelve_alarm(alarm_id: str, request: Request, hub: HubDep, who: Actor) -> AlarmOut:
    request.state.audit_target = f"alarm:{alarm_id}"
    return AlarmOut.of(await hub.alarms.unshelve(alarm_id, who.name))


@router.post("/api/v1/alarms/{alarm_id}/reset", response_model=AlarmOut)
async def reset_alarm(
    alarm_id: str, request: Request, hub: HubDep, who: Actor, body: ResetIn | None = None
) -> AlarmOut:
    """Reset a latched alarm (acknowledged, condition cleared) back to normal."""
    request.state.audit_target = f"alarm:{alarm_id}"
    comment = body.comment if body else ""
    return AlarmOut.of(await hub.alarms.reset(alarm_id, who.name, comment))
