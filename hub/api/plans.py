"""Plan routes (预案): list and describe (any role), start (dispatcher, engineer, platform),
and follow a run step by step.

``POST /api/v1/plans/{id}/start`` answers 202 with the run (``state: running``) at once;
``GET /api/v1/plans/runs/{run_id}`` gives each step's result as the run goes on, and the
same results are ``plan.*`` events on the bus and in the event log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from hub.api.deps import ANY_ROLE, get_hub, require
from hub.auth import Principal
from hub.config import Role
from hub.plans import PlanConfig, RunReport
from hub.runtime import Hub

router = APIRouter(tags=["plans"])

HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(require(*ANY_ROLE))]
Starter = Annotated[Principal, Depends(require(Role.DISPATCHER, Role.ENGINEER, Role.PLATFORM))]


class PlanStepOut(BaseModel):
    id: str
    action: str
    depends_on: list[str]
    timeout: float | None
    arguments: dict[str, Any] = Field(description="the step's own keys (scene, device, url...)")
    available: bool = Field(description="false while no layer handles this kind")


class PlanOut(BaseModel):
    id: str
    name: str
    description: str
    steps: list[PlanStepOut]
    running: str | None = Field(description="the id of the run in progress")
    last_run: dict[str, Any] | None


class StepResultOut(BaseModel):
    id: str
    action: str
    state: str = Field(description="pending, running, ok, failed, skipped or cancelled")
    detail: str
    code: str = Field(description="the device's or layer's own code when a step failed")
    data: dict[str, Any]
    started: float | None
    seconds: float | None


class RunOut(BaseModel):
    run: str
    plan: str
    name: str
    state: str = Field(description="running, succeeded, failed or cancelled")
    requested_by: str
    alarm: str
    reason: str
    started: float
    finished: float | None
    steps: list[StepResultOut]


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000)


def _plan_out(hub: Hub, plan: PlanConfig) -> PlanOut:
    available = set(hub.plans.kinds.available())
    steps = []
    for i, step in enumerate(plan.steps):
        data = step.model_dump(mode="json", exclude={"id", "action", "depends_on", "timeout"})
        steps.append(
            PlanStepOut(
                id=plan.step_id(i),
                action=step.action,
                depends_on=list(step.depends_on),
                timeout=step.timeout,
                arguments=data,
                available=step.action in available,
            )
        )
    last = hub.plans.last_run(plan.id)
    return PlanOut(
        id=plan.id,
        name=plan.title,
        description=plan.description,
        steps=steps,
        running=hub.plans.active_run(plan.id),
        last_run=last.as_dict() if last else None,
    )


def _run_out(report: RunReport) -> dict[str, Any]:
    return report.as_dict()


@router.get("/api/v1/plans", response_model=list[PlanOut])
async def list_plans(hub: HubDep, _: Reader) -> list[PlanOut]:
    return [_plan_out(hub, plan) for plan in hub.plans.plans()]


@router.get("/api/v1/plans/runs", response_model=list[RunOut])
async def list_runs(
    hub: HubDep,
    _: Reader,
    plan: Annotated[str | None, Query(description="only this plan's runs")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """Recent runs, newest first (kept in memory; older ones are in the event log)."""
    return [_run_out(r) for r in hub.plans.runs(plan)[:limit]]


@router.get("/api/v1/plans/runs/{run_id}", response_model=RunOut)
async def get_run(run_id: str, hub: HubDep, _: Reader) -> dict[str, Any]:
    return _run_out(hub.plans.run(run_id))


@router.get("/api/v1/plans/{plan_id}", response_model=PlanOut)
async def get_plan(plan_id: str, hub: HubDep, _: Reader) -> PlanOut:
    return _plan_out(hub, hub.plans.get(plan_id))


@router.post(
    "/api/v1/plans/{plan_id}/start",
    response_model=RunOut,
    status_code=202,
    responses={
        404: {"description": "no such plan"},
        409: {"description": "the plan is running already (its run id is in the detail)"},
    },
)
async def start_plan(
    plan_id: str,
    request: Request,
    hub: HubDep,
    principal: Starter,
    body: Annotated[StartIn | None, Body()] = None,
) -> dict[str, Any]:
    """Start a run now; follow it at ``/api/v1/plans/runs/{run}``."""
    request.state.audit_target = f"plan:{plan_id}"
    reason = body.reason if body else ""
    report = hub.plans.launch(plan_id, principal.name, reason=reason)
    request.state.audit_detail = f"run {report.run}"
    return _run_out(report)
