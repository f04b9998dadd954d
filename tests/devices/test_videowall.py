"""The Barco Event Master driver against its simulator: layouts, windows, errors, outages, API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices.capabilities import VideoWall
from devices.drivers.videowall_eventmaster import EventMasterWall
from devices.errors import DeviceCommandError, DeviceTimeout, DeviceUnavailable, InvalidCommand
from hub.config import SiteConfig
from hub.runtime import Hub
from lab.sims.videowall_eventmaster import EventMasterSimulator, LayerSpec
from tests.devices.peers import device_config, eventually, online
from tests.devices.wall_sims import fault, running
from tests.hub.sitefile import auth, site_dict

GIS = {"source": 4, "x": 0, "y": 0, "w": 3840, "h": 2160, "program": True, "preview": True}


@pytest.fixture
async def processor(tmp_path: Path) -> AsyncIterator[EventMasterSimulator]:
    async with running("barco-eventmaster", tmp_path, state={"layers": {0: GIS}}) as sim:
        assert isinstance(sim, EventMasterSimulator)
        yield sim


@pytest.fixture
async def wall(processor: EventMasterSimulator) -> AsyncIterator[EventMasterWall]:
    config = device_config("barco-eventmaster", processor.site_transport(), timeout=1.0)
    device = EventMasterWall(config)
    async with device:
        await online(device)
        yield device


def layers(sim: EventMasterSimulator) -> dict[int, LayerSpec]:
    return {n: layer for n, layer in sim.state.layers.items() if layer.program}


async def test_state_shows_presets_sources_and_program_layers(wall: EventMasterWall) -> None:
    state = wall.snapshot.state
    assert state["layouts"] == ("Overview", "Cameras", "Flood consult")
    assert state["sources"][4] == "GIS map"
    assert dict(state["windows"][0]) == {"source": "GIS map", "x": 0, "y": 0, "w": 3840, "h": 2160}
    assert state["layout"] is None  # the API does not say which preset is live
    assert dict(state["destination"]) == {
        "id": 0,
        "name": "VideoWall",
        "width": 3840,
        "height": 2160,
        "layers": 8,
    }
    assert VideoWall.missing_state(state) == []


async def test_recall_layout_puts_the_preset_on_the_wall(
    wall: EventMasterWall, processor: EventMasterSimulator
) -> None:
    command = {"command": "recall_layout", "layout": "Cameras"}
    before = wall.snapshot.state
    assert await wall.command(command) == {"layout": "Cameras"}
    assert sorted(layers(processor)) == [0, 1, 2, 3]  # the processor's own view
    assert layers(processor)[3].source == 3
    state = wall.snapshot.state
    assert state["layout"] == "Cameras"
    assert state["windows"][3]["source"] == "Drone"
    assert VideoWall.verify(command, state)
    assert VideoWall.inverse(command, before) is None  # nothing was recalled before


async def test_windows_open_move_change_source_and_close(
    wall: EventMasterWall, processor: EventMasterSimulator
) -> None:
    opened = {"command": "open_window", "window": 5, "source": "Drone", "x": 10, "y": 20}
    opened |= {"w": 640, "h": 360}
    before = wall.snapshot.state
    result = await wall.command(opened)
    assert result == {"window": 5, "source": "Drone", "x": 10, "y": 20, "w": 640, "h": 360}
    assert layers(processor)[5] == LayerSpec(
        source=3, x=10, y=20, w=640, h=360, program=True, preview=True
    )
    assert VideoWall.verify(opened, wall.snapshot.state)
    assert VideoWall.inverse(opened, before) == {"command": "close_window", "window": 5}

    moved = {"command": "move_window", "window": 5, "x": 1920, "y": 1080, "w": 1920, "h": 1080}
    assert (await wall.command(moved))["x"] == 1920
    assert layers(processor)[5].x == 1920 and layers(processor)[5].source == 3
    switched = await wall.command({"command": "set_source", "window": 5, "source": 1})
    assert switched["source"] == "Camera 2" and layers(processor)[5].source == 1
    assert VideoWall.verify(
        {"command": "set_source", "window": 5, "source": "Camera 2"}, wall.snapshot.state
    )

    closed = {"command": "close_window", "window": "5"}
    assert await wall.command(closed) == {"window": 5, "closed": True}
    assert 5 not in layers(processor)
    assert VideoWall.verify(closed, wall.snapshot.state)


async def test_the_processors_refusals_carry_its_code(
    wall: EventMasterWall, processor: EventMasterSimulator
) -> None:
    with pytest.raises(DeviceCommandError) as refused:
        await wall.command({"command": "recall_layout", "layout": "Nope"})
    assert (refused.value.code, refused.value.reason) == ("-1", "Preset not found (activatePreset)")
    processor.inject(fault("error", code="7"))
    with pytest.raises(DeviceCommandError) as injected:
        await wall.command({"command": "close_window", "window": 0})
    assert injected.value.code == "7"
    processor.clear()
    assert 0 in layers(processor)  # nothing changed on the wall
    with pytest.raises(InvalidCommand, match=r"'window' must be 0..7 \(a layer\), got 8"):
        await wall.command({"command": "close_window", "window": 8})
    with pytest.raises(InvalidCommand, match=r"unknown source 'Satellite' .*4='GIS map'"):
        await wall.command({"command": "set_source", "window": 0, "source": "Satellite"})
    with pytest.raises(InvalidCommand, match="'w' must be > 0"):
        await wall.command({"command": "move_window", "window": 0, "x": 0, "y": 0, "w": 0, "h": 1})
    assert wall.snapshot.online


async def test_front_panel_changes_show_on_the_next_poll(
    wall: EventMasterWall, processor: EventMasterSimulator
) -> None:
    camera = {"source": 0, "x": 0, "y": 0, "w": 960, "h": 540, "program": True}
    await processor.update({"layers": {2: camera}})
    await eventually(lambda: 2 in wall.snapshot.state["windows"])
    assert wall.snapshot.state["windows"][2]["source"] == "Camera 1"


async def test_offline_when_the_processor_goes_away_and_back(
    wall: EventMasterWall, processor: EventMasterSimulator
) -> None:
    processor.inject(fault("refuse"))
    await eventually(lambda: not wall.snapshot.online)
    assert "ConnectError" in wall.snapshot.error
    with pytest.raises(DeviceUnavailable, match="offline"):
        await wall.command({"command": "recall_layout", "layout": "Overview"})
    processor.clear()
    await online(wall)
    assert await wall.command({"command": "recall_layout", "layout": "Overview"}) == {
        "layout": "Overview"
    }


async def test_garbled_or_late_answers_fail_the_call_not_the_queue(
    wall: EventMasterWall, processor: EventMasterSimulator
) -> None:
    processor.inject(fault("garble", rate=0.5))
    results = await asyncio.gather(
        *(wall.command({"command": "recall_layout", "layout": "Cameras"}) for _ in range(3)),
        return_exceptions=True,
    )
    # every queued command is answered: an error (the link went down), never silence
    assert all(isinstance(r, DeviceUnavailable) for r in results), results
    processor.clear()
    await online(wall, within=5)
    processor.inject(fault("delay", seconds=2.0))
    with pytest.raises(DeviceTimeout, match=r"no answer to activatePreset within 1 s"):
        await wall.command({"command": "recall_layout", "layout": "Cameras"})
    assert not wall.snapshot.online
    processor.clear()
    await online(wall, within=5)
    assert await wall.command({"command": "recall_layout", "layout": "Cameras"})


async def test_recall_layout_through_the_api(tmp_path: Path) -> None:
    async with running("barco-eventmaster", tmp_path) as sim:
        data = site_dict(tmp_path)
        data["devices"] = [
            {
                "id": "wall-1",
                "type": "barco-eventmaster",
                "transport": sim.site_transport(),
                "poll_interval": 0.3,
                "timeout": 0.5,
                "options": {"retries": 0, "reconnect_initial": 0.05, "reconnect_max": 0.2},
            }
        ]
        async with Hub(SiteConfig.model_validate(data)) as hub:
            await eventually(lambda: hub.equipment.snapshots()["wall-1"].online)
            async with httpx.AsyncClient(base_url=hub.api_url, timeout=10) as client:
                url = "/api/v1/devices/wall-1/commands"
                body: dict[str, Any] = {"command": "recall_layout", "layout": "Flood consult"}
                done = await client.post(url, json=body, headers=auth("dispatcher"))
                assert done.status_code == 200, done.text
                assert done.json()["result"] == {"layout": "Flood consult"}
                shown = (await client.get("/api/v1/devices/wall-1", headers=auth("ops"))).json()
                assert shown["state"]["layout"] == "Flood consult"
                assert shown["state"]["windows"]["1"]["source"] == "Video conference"
                body["layout"] = "Nope"
                refused = await client.post(url, json=body, headers=auth("dispatcher"))
                assert refused.status_code == 502
                assert refused.json()["device_code"] == "-1"
