"""Device routes: list, state, and typed commands answered with the device's own result."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, Field

from devices.capabilities import capabilities_of
from devices.snapshot import DeviceSnapshot
from hub.api.deps import ANY_ROLE, get_hub, require
from hub.auth import Principal
from hub.config import Role
from hub.errors import NotFound
from hub.runtime import Hub

router = APIRouter(tags=["devices"])

HubDep = Annotated[Hub, Depends(get_hub)]


class DeviceOut(BaseModel):
    id: str
    type: str
    online: bool
    state: dict[str, Any]
    error: str
    updated: float
    capabilities: list[str] = Field(description="capability names: the command vocabulary")

    @classmethod
    def of(cls, snapshot: DeviceSnapshot) -> DeviceOut:
        names = [cap.name for cap in capabilities_of(snapshot.type)]
        return cls(**snapshot.as_dict(), capabilities=names)


@router.get("/api/v1/devices", response_model=list[DeviceOut])
async def list_devices(
    hub: HubDep, _: Annotated[Principal, Depends(require(*ANY_ROLE))]
) -> list[DeviceOut]:
    return [DeviceOut.of(s) for s in hub.equipment.snapshots().values()]


@router.get("/api/v1/devices/{device_id}", response_model=DeviceOut)
async def get_device(
    device_id: str, hub: HubDep, _: Annotated[Principal, Depends(require(*ANY_ROLE))]
) -> DeviceOut:
    snapshot = hub.equipment.snapshots().get(device_id)
    if snapshot is None:
        raise NotFound(f"no device {device_id!r}")
    return DeviceOut.of(snapshot)


@router.post("/api/v1/devices/{device_id}/commands")
async def device_command(
    device_id: str,
    request: Request,
    hub: HubDep,
    _: Annotated[Principal, Depends(require(Role.DISPATCHER, Role.ENGINEER))],
    command: Annotated[
        dict[str, Any],
        Body(examples=[{"command": "route", "input": 3, "output": 1}]),
    ],
) -> dict[str, Any]:
    """Send a typed command; the answer is the device's, errors carry the device's code."""
    request.state.audit_target = f"device:{device_id}"
    request.state.audit_detail = str(command.get("command", ""))[:64]
    result = await hub.equipment.command(device_id, command)
    return {"device": device_id, "result": result}
