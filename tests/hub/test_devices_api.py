"""Devices through the hub: live state on the API and the bus, commands with device codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hub.config import SiteConfig
from hub.events import DeviceStateChanged
from hub.runtime import Hub
from tests.devices.peers import FAST, SisServer, eventually
from tests.hub.sitefile import auth, site_dict


@pytest.fixture
async def matrix() -> AsyncIterator[SisServer]:
    server = SisServer(outputs=4)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def hub_with_matrix(tmp_path: Path, matrix: SisServer) -> AsyncIterator[Hub]:
    data = site_dict(tmp_path)
    data["devices"] = [
        {
            "id": "matrix-1",
            "type": "extron-sis",
            "transport": {"kind": "tcp", "host": "127.0.0.1", "port": matrix.port},
            "poll_interval": 0.2,
            "timeout": 0.3,
            "options": {**FAST, "outputs": 4},
        }
    ]
    async with Hub(SiteConfig.model_validate(data)) as hub:
        yield hub


async def test_device_state_route_and_errors(hub_with_matrix: Hub, matrix: SisServer) -> None:
    hub = hub_with_matrix
    events = hub.bus.subscribe("test", accept=lambda e: isinstance(e, DeviceStateChanged))
    await eventually(lambda: hub.equipment.snapshots()["matrix-1"].online)
    async with httpx.AsyncClient(base_url=hub.api_url, timeout=10) as client:
        listed = (await client.get("/api/v1/devices", headers=auth("ops"))).json()
        assert [(d["id"], d["type"], d["online"]) for d in listed] == [
            ("matrix-1", "extron-sis", True)
        ]
        routed = await client.post(
            "/api/v1/devices/matrix-1/commands",
            json={"command": "route", "input": 3, "output": 2},
            headers=auth("dispatcher"),
        )
        assert routed.status_code == 200, routed.text
        assert matrix.ties[2] == 3
        state = (await client.get("/api/v1/devices/matrix-1", headers=auth("ops"))).json()
        assert state["state"]["ties"]["2"] == 3
        assert state["capabilities"] == ["matrix"]

        # The device's own error code reaches the caller.
        matrix.errors[b"5*1!"] = "E13"
        refused = await client.post(
            "/api/v1/devices/matrix-1/commands",
            json={"command": "route", "input": 5, "output": 1},
            headers=auth("engineer"),
        )
        assert refused.status_code == 502
        assert refused.json()["device_code"] == "E13"
        nonsense = await client.post(
            "/api/v1/devices/matrix-1/commands",
            json={"command": "explode"},
            headers=auth("engineer"),
        )
        assert nonsense.status_code == 422
        missing = await client.get("/api/v1/devices/nope", headers=auth("ops"))
        assert missing.status_code == 404
        forbidden = await client.post(
            "/api/v1/devices/matrix-1/commands",
            json={"command": "route", "input": 1, "output": 1},
            headers=auth("ops"),
        )
        assert forbidden.status_code == 403

        # A dead device: offline in state and health (degraded, not down), commands 503.
        await matrix.close()
        await eventually(lambda: not hub.equipment.snapshots()["matrix-1"].online)
        health = (await client.get("/api/v1/health")).json()
        assert health["status"] == "degraded"
        devices = next(s for s in health["subsystems"] if s["name"] == "devices")
        assert devices["detail"].startswith("0/1 online; offline: matrix-1")
        dead = await client.post(
            "/api/v1/devices/matrix-1/commands",
            json={"command": "route", "input": 1, "output": 1},
            headers=auth("dispatcher"),
        )
        assert dead.status_code == 503
        audit = (await client.get("/api/v1/audit", headers=auth("admin"))).json()
        assert {"device:matrix-1"} == {e["target"] for e in audit if e["result"] != "403"}
    seen = []
    while (event := events.get_nowait()) is not None:
        assert isinstance(event, DeviceStateChanged)
        seen.append(event.online)
    assert seen[0] is True and seen[-1] is False
