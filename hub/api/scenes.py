"""Scene routes (一键场景): list, describe, apply with a per-step report.

``POST /api/v1/scenes/{id}/apply`` answers 200 with the report when every step took effect,
502 (problem+json with the report) when a step failed — whatever became of the others,
which the report's ``outcome`` says — and 409 when another scene holds one of its devices.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from devices.scenes import SceneBusy, SceneConfig, SceneNotFound
from hub.api.deps import ANY_ROLE, get_hub, require
from hub.api.problems import problem
from hub.auth import Principal
from hub.config import Role
from hub.errors import NotFound
from hub.runtime import Hub

router = APIRouter(tags=["scenes"])

HubDep = Annotated[Hub, Depends(get_hub)]


class SceneStepOut(BaseModel):
    device: str
    command: dict[str, Any]
    parallel_group: str | int | None
    verify_timeout: float


class SceneOut(BaseModel):
    id: str
    name: str
    on_failure: str
    verify_timeout: float
    devices: list[str]
    steps: list[SceneStepOut]
    running: bool
    last_report: dict[str, Any] | None


class StepReportOut(BaseModel):
    index: int
    device: str
    command: dict[str, Any]
    status: str
    code: str
    error: str
    answer: dict[str, Any]
    rollback: dict[str, Any] | None
    seconds: float


class SceneReportOut(BaseModel):
    scene: str
    name: str
    actor: str
    outcome: str
    ok: bool
    failed_step: int | None
    error: str
    started: float
    seconds: float
    steps: list[StepReportOut]


def _scene_out(hub: Hub, scene: SceneConfig) -> SceneOut:
    last = hub.scenes.last_report(scene.id)
    return SceneOut(
        id=scene.id,
        name=scene.name,
        on_failure=scene.on_failure.value,
        verify_timeout=scene.verify_timeout,
        devices=list(scene.devices),
        steps=[
            SceneStepOut(
                device=step.device,
                command=step.device_command(),
                parallel_group=step.parallel_group,
                verify_timeout=step.verify_timeout or scene.verify_timeout,
            )
            for step in scene.steps
        ],
        running=hub.scenes.running(scene.id),
        last_report=last.as_dict() if last else None,
    )


def _scene(hub: Hub, scene_id: str) -> SceneConfig:
    try:
        return hub.scenes.get(scene_id)
    except SceneNotFound as err:
        raise NotFound(str(err)) from None


@router.get("/api/v1/scenes", response_model=list[SceneOut])
async def list_scenes(
    hub: HubDep, _: Annotated[Principal, Depends(require(*ANY_ROLE))]
) -> list[SceneOut]:
    return [_scene_out(hub, scene) for scene in hub.scenes.scenes()]


@router.get("/api/v1/scenes/{scene_id}", response_model=SceneOut)
async def get_scene(
    scene_id: str, hub: HubDep, _: Annotated[Principal, Depends(require(*ANY_ROLE))]
) -> SceneOut:
    return _scene_out(hub, _scene(hub, scene_id))


_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


@router.post(
    "/api/v1/scenes/{scene_id}/apply",
    response_model=SceneReportOut,
    responses={
        409: {"description": "another scene application holds one of its devices", **_PROBLEM},
        502: {
            "description": "a step failed; `report` has every step's status and device code,"
            " `outcome` says whether the applied steps were rolled back",
            **_PROBLEM,
        },
    },
)
async def apply_scene(
    scene_id: str,
    request: Request,
    hub: HubDep,
    principal: Annotated[Principal, Depends(require(Role.DISPATCHER, Role.ENGINEER))],
) -> Any:
    """Apply a scene: steps in order, each verified from device state, rolled back on failure."""
    request.state.audit_target = f"scene:{scene_id}"
    _scene(hub, scene_id)
    try:
        report = await hub.scenes.apply(scene_id, actor=principal.name)
    except SceneBusy as err:
        request.state.audit_detail = "busy"
        return problem(409, "Scene devices busy", str(err), request.url.path, held=err.held)
    request.state.audit_detail = report.outcome.value
    data = report.as_dict()
    if report.ok:
        return data
    failed = report.failed_step
    response: JSONResponse = problem(
        502,
        "Scene failed",
        report.error,
        request.url.path,
        outcome=report.outcome.value,
        failed_step=data["failed_step"],
        device_code=failed.code if failed else "",
        report=data,
    )
    return response
