"""Scenes through the hub: the site file's scenes section, the API, events and the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.config import SiteConfig, load_site
from hub.errors import ConfigError
from hub.events import Event, SceneApplied, SceneFailed, SceneStarted
from hub.runtime import Hub
from lab.bench import Bench
from lab.demo import demo_scenes
from lab.faults import FaultKind, FaultSpec
from lab.harness import BenchThread
from lab.sitefile import device_entries
from tests.devices.peers import eventually
from tests.devices.scene_bench import INITIAL, device_entry, matrices, route, ties
from tests.hub.sitefile import auth, site_dict

SCENES = [
    {
        "id": "incident",
        "name": "Incident: drone feed on the wall",
        "verify_timeout": 3,
        "steps": [route("wall-matrix", 5, 1), route("desk-matrix", 5, 2)],
    },
    {"id": "wall-only", "steps": [route("wall-matrix", 6, 3)]},
]


@pytest.fixture
async def sims() -> AsyncIterator[Bench]:
    async with matrices("wall-matrix", "desk-matrix") as running:
        yield running


@pytest.fixture
async def hub(tmp_path: Path, sims: Bench) -> AsyncIterator[Hub]:
    data = site_dict(tmp_path)
    data["devices"] = [device_entry(sims, name) for name in sims.sims]
    data["scenes"] = SCENES
    async with Hub(SiteConfig.model_validate(data)) as running:
        await eventually(lambda: all(s.online for s in running.equipment.snapshots().values()), 5)
        yield running


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.api_url, timeout=20) as http:
        yield http


def drain(subscription: Any) -> list[Event]:
    out = []
    while (event := subscription.get_nowait()) is not None:
        out.append(event)
    return out


def is_scene_event(event: Event) -> bool:
    return isinstance(event, SceneStarted | SceneApplied | SceneFailed)


async def test_scenes_are_listed_and_applied(
    hub: Hub, client: httpx.AsyncClient, sims: Bench
) -> None:
    events = hub.bus.subscribe("scene-test", accept=is_scene_event)
    listed = (await client.get("/api/v1/scenes", headers=auth("ops"))).json()
    assert [(s["id"], s["devices"], s["running"]) for s in listed] == [
        ("incident", ["wall-matrix", "desk-matrix"], False),
        ("wall-only", ["wall-matrix"], False),
    ]
    one = (await client.get("/api/v1/scenes/incident", headers=auth("platform"))).json()
    assert one["steps"][0] == {
        "device": "wall-matrix",
        "command": {"command": "route", "input": 5, "output": 1},
        "parallel_group": None,
        "verify_timeout": 3.0,
    }
    assert one["on_failure"] == "rollback" and one["last_report"] is None
    missing = await client.get("/api/v1/scenes/nope", headers=auth("ops"))
    assert missing.status_code == 404
    assert "scenes: incident, wall-only" in missing.json()["detail"]

    denied = await client.post("/api/v1/scenes/incident/apply", headers=auth("ops"))
    assert denied.status_code == 403
    assert ties(sims, "wall-matrix") == INITIAL  # nothing was sent

    applied = await client.post("/api/v1/scenes/incident/apply", headers=auth("dispatcher"))
    assert applied.status_code == 200, applied.text
    report = applied.json()
    assert report["outcome"] == "applied" and report["ok"] is True
    assert report["actor"] == "dispatcher-user"
    assert [s["status"] for s in report["steps"]] == ["ok", "ok"]
    assert ties(sims, "wall-matrix")[1] == 5 and ties(sims, "desk-matrix")[2] == 5
    device = (await client.get("/api/v1/devices/desk-matrix", headers=auth("ops"))).json()
    assert device["state"]["ties"]["2"] == 5
    engineer = await client.post("/api/v1/scenes/wall-only/apply", headers=auth("engineer"))
    assert engineer.status_code == 200
    admin = await client.post("/api/v1/scenes/wall-only/apply", headers=auth("admin"))
    assert admin.status_code == 200

    again = (await client.get("/api/v1/scenes/incident", headers=auth("ops"))).json()
    assert again["last_report"]["outcome"] == "applied"
    seen = drain(events)
    assert [e.kind for e in seen] == ["scene.started", "scene.applied"] * 3
    started, finished = seen[0], seen[1]
    assert isinstance(started, SceneStarted) and started.devices == ["wall-matrix", "desk-matrix"]
    assert isinstance(finished, SceneApplied) and finished.actor == "dispatcher-user"
    assert finished.report["steps"][1]["answer"] == {"input": 5, "output": 2, "type": "all"}
    audit = (await client.get("/api/v1/audit", headers=auth("ops"))).json()
    rows = [(e["target"], e["result"], e["detail"]) for e in audit]
    assert ("/api/v1/scenes/incident/apply", "403", "") in rows  # refused before the route
    assert ("scene:incident", "200", "applied") in rows
    assert ("scene:wall-only", "200", "applied") in rows
    spec = (await client.get("/openapi.json")).json()
    responses = spec["paths"]["/api/v1/scenes/{scene_id}/apply"]["post"]["responses"]
    assert {"200", "409", "502"} <= set(responses)
    # the events reach the store's event log like every other event
    logged = await client.get("/api/v1/events", params={"kinds": "scene."}, headers=auth("ops"))
    assert logged.status_code == 200
    assert "scene.applied" in logged.text


async def test_failed_step_is_a_502_problem_with_the_report(
    hub: Hub, client: httpx.AsyncClient, sims: Bench
) -> None:
    events = hub.bus.subscribe("scene-test", accept=is_scene_event)
    sims.inject("desk-matrix", FaultSpec(kind=FaultKind.ERROR, code="E13"))
    failed = await client.post("/api/v1/scenes/incident/apply", headers=auth("engineer"))
    assert failed.status_code == 502
    assert failed.headers["content-type"] == "application/problem+json"
    body = failed.json()
    assert body["title"] == "Scene failed"
    assert body["outcome"] == "rolled_back" and body["failed_step"] == 1
    assert body["device_code"] == "E13"
    assert body["detail"].startswith("step 1 (desk-matrix route) failed: E13")
    steps = body["report"]["steps"]
    assert [s["status"] for s in steps] == ["rolled_back", "failed"]
    assert steps[0]["rollback"]["ok"] is True
    assert steps[0]["rollback"]["command"] == {
        "command": "route",
        "input": 1,
        "output": 1,
        "type": "all",
    }
    assert ties(sims, "wall-matrix") == INITIAL and ties(sims, "desk-matrix") == INITIAL
    kinds = [e.kind for e in drain(events)]
    assert kinds == ["scene.started", "scene.failed"]
    last = (await client.get("/api/v1/scenes/incident", headers=auth("ops"))).json()
    assert last["last_report"]["outcome"] == "rolled_back"
    audit = (await client.get("/api/v1/audit", headers=auth("ops"))).json()
    assert ("scene:incident", "502", "rolled_back") in [
        (e["target"], e["result"], e["detail"]) for e in audit
    ]


async def test_failed_event_names_the_step(hub: Hub, sims: Bench) -> None:
    events = hub.bus.subscribe("scene-test", accept=lambda e: isinstance(e, SceneFailed))
    sims.inject("desk-matrix", FaultSpec(kind=FaultKind.ERROR, code="E01"))
    report = await hub.scenes.apply("incident", actor="platform-user")
    assert not report.ok
    event = drain(events)[0]
    assert isinstance(event, SceneFailed)
    assert (event.outcome, event.failed_step, event.actor) == ("rolled_back", 1, "platform-user")
    assert "E01" in event.error and event.report["steps"][1]["code"] == "E01"


async def test_second_application_on_the_same_devices_is_409(
    hub: Hub, client: httpx.AsyncClient, sims: Bench
) -> None:
    sims.inject("wall-matrix", FaultSpec(kind=FaultKind.DELAY, seconds=0.3))
    first = asyncio.create_task(
        client.post("/api/v1/scenes/incident/apply", headers=auth("dispatcher"))
    )

    async def running() -> bool:
        scene = await client.get("/api/v1/scenes/incident", headers=auth("ops"))
        return bool(scene.json()["running"])

    for _ in range(500):
        if await running():
            break
        await asyncio.sleep(0.01)
    busy = await client.post("/api/v1/scenes/wall-only/apply", headers=auth("dispatcher"))
    assert busy.status_code == 409
    assert busy.json()["held"] == {"wall-matrix": "incident"}
    assert "wall-matrix" in busy.json()["detail"]
    assert (await first).status_code == 200
    assert ties(sims, "wall-matrix")[3] == 3  # the refused scene sent nothing
    after = await client.post("/api/v1/scenes/wall-only/apply", headers=auth("dispatcher"))
    assert after.status_code == 200


DEMO_DEVICES = ("av-matrix-1", "av-matrix-2", "display-1", "ptz-1")


async def test_demo_scene_drives_matrices_display_and_cameras(
    tmp_path: Path, bench: BenchThread
) -> None:
    """The demo's scene on the default bench, then a scene the display refuses (ERR2: no
    such input): the matrices it had switched go back to the demo scene's routes."""
    if not all(bench.simulated(name) for name in DEMO_DEVICES):
        pytest.skip("needs the default bench's simulated matrices, display and camera")
    demo = demo_scenes(bench.bench)[0]
    used = {step["device"] for step in demo["steps"]}
    refused = {
        "id": "refused",
        "steps": [
            route("av-matrix-1", 5, 1),
            route("av-matrix-2", 6, 2),
            {"device": "display-1", "command": "input", "input": "59"},
        ],
    }
    data = site_dict(tmp_path)
    data["devices"] = [e for e in device_entries(bench.bench) if e["id"] in used]
    data["scenes"] = [demo, refused]
    async with Hub(SiteConfig.model_validate(data)) as hub:
        await eventually(lambda: all(s.online for s in hub.equipment.snapshots().values()), 15)
        applied = await hub.scenes.apply("incident-wall", actor="test")
        assert applied.ok, applied.as_dict()
        assert {step.device for step in applied.steps} == used
        assert bench.state("av-matrix-1")["video_ties"]["1"] == 3
        assert bench.state("av-matrix-2")["video_ties"]["2"] == 4
        display = next(s for s in demo["steps"] if s["device"] == "display-1")
        assert bench.state("display-1")["input"] == display["input"]
        camera = bench.state("ptz-1")
        assert (camera["pan"], camera["tilt"]) == (
            camera["presets"]["1"]["pan"],
            camera["presets"]["1"]["tilt"],
        )

        failed = await hub.scenes.apply("refused", actor="test")
    assert failed.outcome.value == "rolled_back"
    assert [s.status.value for s in failed.steps] == ["rolled_back", "rolled_back", "failed"]
    assert failed.steps[2].code == "ERR2"
    assert bench.state("av-matrix-1")["video_ties"]["1"] == 3
    assert bench.state("av-matrix-2")["video_ties"]["2"] == 4


DEVICES = """\
devices:
  - id: wall-matrix
    type: extron-sis
    transport: {kind: tcp, host: 127.0.0.1, port: 2300}
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_text(DEVICES + text)
    with pytest.raises(ConfigError) as err:
        load_site(path)
    return err.value.problems


def test_site_file_scene_errors_name_key_path_and_line(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """\
scenes:
  - id: incident
    steps:
      - device: wall-matrix
        command: route
        input: 2
        output: 1
      - device: desk-matrix
        command: route
        input: 2
        output: 1
      - device: wall-matrix
        command: mute
      - device: wall-matrix
        command: route
        input: 2
        output: 0
""",
    ) == [
        "scenes[0].steps[1].device: unknown device 'desk-matrix' (devices: wall-matrix), line 12",
        "scenes[0].steps[2].command: wall-matrix (extron-sis) has no command 'mute'"
        " (commands: route), line 17",
        "scenes[0].steps[3].output: must be >= 1, got 0, line 21",
    ]
    assert problems(
        tmp_path,
        """\
scenes:
  - id: incident
    on_failure: retry
    steps: []
""",
    ) == [
        "scenes[0].steps: must have at least 1 item(s), line 8",
        "scenes[0].on_failure: expected one of 'rollback', 'stop' or 'continue', line 7",
    ]
    assert problems(
        tmp_path,
        """\
scenes:
  - id: incident
    steps: [{device: wall-matrix, command: route, input: 1, output: 1}]
  - id: incident
    steps: [{device: wall-matrix, command: route, input: 2, output: 1}]
""",
    ) == ["(top level): scenes[1]: duplicate 'incident' (first at scenes[0]), line 1"]
