"""Scenes against Extron SIS simulators: applied and verified, rolled back on a failed step."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from devices.base import Device
from devices.config import DeviceConfig
from devices.drivers.extron_sis import ExtronSis
from devices.manager import DeviceManager
from devices.scenes import (
    Outcome,
    SceneBusy,
    SceneConfig,
    SceneEngine,
    SceneNotFound,
    SceneReport,
    StepStatus,
    check_scenes,
)
from devices.snapshot import DeviceSnapshot
from lab.bench import Bench
from lab.faults import FaultKind, FaultSpec
from protocols import extron_sis as sis
from tests.devices.peers import eventually
from tests.devices.scene_bench import INITIAL, device_entry, matrices, route, ties


class Recorder:
    """A scene observer keeping what it was told, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def scene_started(self, scene: SceneConfig, actor: str) -> None:
        self.seen.append(("started", (scene.id, actor)))

    def scene_finished(self, report: SceneReport) -> None:
        self.seen.append(("finished", report))


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    async with matrices("wall-matrix", "desk-matrix") as running:
        yield running


class PolledExtronSis(ExtronSis):
    """An Extron matrix whose tie reports are not trusted: its ties are known from polls only.

    Models devices that acknowledge a command and show it later (on the next poll), so that
    verification has to wait for the state instead of reading it from the reply.
    """

    def _apply_tie(self, report: sis.TieReport) -> None:
        self.log.debug("tie report ignored until the next poll: %r", report)


class HandBuilt:
    """Drivers built by hand (a variant not in the registry), as the engine sees a manager."""

    def __init__(self, devices: list[Device[Any]]) -> None:
        self.devices = {device.id: device for device in devices}

    async def start(self) -> None:
        for device in self.devices.values():
            await device.start()

    async def stop(self) -> None:
        for device in self.devices.values():
            await device.stop()

    def snapshots(self) -> dict[str, DeviceSnapshot]:
        return {device_id: d.snapshot for device_id, d in self.devices.items()}

    def add_listener(self, callback: Callable[[DeviceSnapshot], None]) -> None:
        for device in self.devices.values():
            device.add_listener(callback)

    async def command(self, device_id: str, command: Mapping[str, Any]) -> dict[str, Any]:
        return await self.devices[device_id].command(command)


@contextlib.asynccontextmanager
async def engine_for(
    bench: Bench,
    scenes: list[dict[str, Any]],
    polled: dict[str, float] | None = None,
) -> AsyncIterator[tuple[SceneEngine, DeviceManager | HandBuilt, Recorder]]:
    """An engine over the bench's matrices; ``polled``: device -> poll interval of those that
    show ties from polls only (built by hand, the rest through the device manager)."""
    configs = [DeviceConfig.model_validate(device_entry(bench, name)) for name in bench.sims]
    target: DeviceManager | HandBuilt
    if polled:
        target = HandBuilt(
            [
                PolledExtronSis(c.model_copy(update={"poll_interval": polled[c.id]}))
                if c.id in polled
                else ExtronSis(c)
                for c in configs
            ]
        )
    else:
        target = DeviceManager(configs)
    recorder = Recorder()
    engine = SceneEngine(target, [SceneConfig.model_validate(s) for s in scenes], recorder)
    await target.start()
    try:
        await eventually(lambda: all(s.online for s in target.snapshots().values()), 5)
        yield engine, target, recorder
    finally:
        await engine.close()
        await target.stop()


def statuses(report: SceneReport) -> list[str]:
    return [step.status.value for step in report.steps]


async def test_scene_applies_and_every_step_is_verified(bench: Bench) -> None:
    scene = {
        "id": "incident",
        "name": "Incident layout",
        "steps": [
            route("wall-matrix", 5, 1, parallel_group="wall"),
            route("wall-matrix", 6, 2, parallel_group="wall"),
            route("desk-matrix", 7, 3),
        ],
    }
    async with engine_for(bench, [scene]) as (engine, manager, recorder):
        report = await engine.apply("incident", actor="duty-dispatcher")
        assert report.outcome is Outcome.APPLIED and report.ok, report.as_dict()
        assert statuses(report) == ["ok", "ok", "ok"]
        assert [s.answer for s in report.steps] == [
            {"input": 5, "output": 1, "type": "all"},
            {"input": 6, "output": 2, "type": "all"},
            {"input": 7, "output": 3, "type": "all"},
        ]
        # the switchers themselves hold the routes, and the hub's snapshots show them
        assert ties(bench, "wall-matrix") == {**INITIAL, 1: 5, 2: 6}
        assert ties(bench, "desk-matrix") == {**INITIAL, 3: 7}
        assert manager.snapshots()["desk-matrix"].state["ties"][3] == 7
        assert recorder.seen[0] == ("started", ("incident", "duty-dispatcher"))
        assert recorder.seen[1] == ("finished", report)
        assert engine.last_report("incident") == report
        assert report.as_dict()["failed_step"] is None and report.error == ""


async def test_device_error_rolls_back_the_applied_steps(bench: Bench) -> None:
    scene = {
        "id": "briefing",
        "steps": [
            route("wall-matrix", 3, 1),
            route("wall-matrix", 4, 2),
            route("desk-matrix", 8, 4),
            route("wall-matrix", 2, 3),
        ],
    }
    async with engine_for(bench, [scene]) as (engine, _, recorder):
        bench.inject("desk-matrix", FaultSpec(kind=FaultKind.ERROR, code="E13"))
        report = await engine.apply("briefing")
    assert report.outcome is Outcome.ROLLED_BACK
    assert statuses(report) == ["rolled_back", "rolled_back", "failed", "skipped"]
    failed = report.failed_step
    assert failed is not None and failed.index == 2 and failed.device == "desk-matrix"
    assert failed.code == "E13" and "E13" in failed.error
    assert report.error.startswith("step 2 (desk-matrix route) failed: E13")
    assert "rolled back" in report.error
    # newest first: the wall matrix's outputs 2 then 1 went back to what they were
    first, second = report.steps[0].rollback, report.steps[1].rollback
    assert (
        first is not None
        and first.ok
        and first.command
        == {
            "command": "route",
            "input": 1,
            "output": 1,
            "type": "all",
        }
    )
    assert second is not None and second.ok and second.command is not None
    assert second.command["input"] == 2
    assert ties(bench, "wall-matrix") == INITIAL
    assert ties(bench, "desk-matrix") == INITIAL
    assert [kind for kind, _ in recorder.seen] == ["started", "finished"]
    data = report.as_dict()
    assert data["outcome"] == "rolled_back" and data["failed_step"] == 2
    assert data["steps"][2]["code"] == "E13" and data["steps"][3]["status"] == "skipped"


async def test_offline_device_fails_its_step_and_the_rest_roll_back(bench: Bench) -> None:
    scene = {
        "id": "wall-and-desk",
        "steps": [route("wall-matrix", 6, 4), route("desk-matrix", 6, 4)],
    }
    async with engine_for(bench, [scene]) as (engine, manager, _):
        bench.inject("desk-matrix", FaultSpec(kind=FaultKind.REFUSE))
        await eventually(lambda: not manager.snapshots()["desk-matrix"].online, 5)
        report = await engine.apply("wall-and-desk")
    assert statuses(report) == ["rolled_back", "failed"]
    assert report.steps[1].code == "unavailable"
    assert "offline" in report.steps[1].error
    assert ties(bench, "wall-matrix") == INITIAL


async def test_rollback_that_fails_is_reported(bench: Bench) -> None:
    scene = {"id": "two", "steps": [route("wall-matrix", 7, 1), route("desk-matrix", 7, 1)]}
    async with engine_for(bench, [scene]) as (engine, _, _):
        # the desk matrix refuses (slowly); meanwhile the wall matrix starts refusing too,
        # so the undo of its step fails
        bench.inject("desk-matrix", FaultSpec(kind=FaultKind.ERROR, code="E13"))
        bench.inject("desk-matrix", FaultSpec(kind=FaultKind.DELAY, seconds=0.3))
        report_task = asyncio.create_task(engine.apply("two"))
        await eventually(lambda: ties(bench, "wall-matrix")[1] == 7, 5)
        bench.inject("wall-matrix", FaultSpec(kind=FaultKind.ERROR, code="E01"))
        report = await report_task
    assert report.outcome is Outcome.ROLLBACK_FAILED
    assert statuses(report) == ["rollback_failed", "failed"]
    rollback = report.steps[0].rollback
    assert rollback is not None and not rollback.ok and rollback.code == "E01"
    assert "rollback failed for step(s) 0" in report.error
    assert ties(bench, "wall-matrix")[1] == 7  # it really stayed applied


async def test_stop_and_continue(bench: Bench) -> None:
    steps = [route("wall-matrix", 2, 1), route("desk-matrix", 2, 1), route("wall-matrix", 3, 2)]
    scenes = [
        {"id": "stops", "on_failure": "stop", "steps": steps},
        {"id": "goes-on", "on_failure": "continue", "steps": steps},
    ]
    async with engine_for(bench, scenes) as (engine, _, _):
        bench.inject("desk-matrix", FaultSpec(kind=FaultKind.ERROR, code="E10"))
        stopped = await engine.apply("stops")
        assert stopped.outcome is Outcome.STOPPED
        assert statuses(stopped) == ["ok", "failed", "skipped"]
        assert ties(bench, "wall-matrix") == {**INITIAL, 1: 2}  # left applied
        partial = await engine.apply("goes-on")
        assert partial.outcome is Outcome.PARTIAL
        assert statuses(partial) == ["ok", "failed", "ok"]
        assert ties(bench, "wall-matrix") == {**INITIAL, 1: 2, 2: 3}


async def test_state_confirmed_by_a_later_poll(bench: Bench) -> None:
    # this matrix only shows ties from its polls: the engine waits for the snapshot
    scene = {"id": "late", "verify_timeout": 5, "steps": [route("wall-matrix", 8, 2)]}
    async with engine_for(bench, [scene], polled={"wall-matrix": 0.3}) as (engine, manager, _):
        assert manager.snapshots()["wall-matrix"].state["ties"][2] == 2
        report = await engine.apply("late")
        assert report.outcome is Outcome.APPLIED, report.as_dict()
        assert manager.snapshots()["wall-matrix"].state["ties"][2] == 8


async def test_state_never_confirmed_is_a_verify_timeout(bench: Bench) -> None:
    scene = {
        "id": "overridden",
        "verify_timeout": 1.5,
        "steps": [route("desk-matrix", 4, 1), route("wall-matrix", 5, 1)],
    }
    sim = bench.sim("wall-matrix")

    async def front_panel_reverts() -> None:
        # someone at the switcher's front panel puts output 1 back as soon as it changes
        await eventually(lambda: sim.state.video_ties.get(1) == 5, 5)
        sim.set_state({"video_ties": {1: 1}, "audio_ties": {1: 1}})

    async with engine_for(bench, [scene], polled={"wall-matrix": 60}) as (engine, _, _):
        watcher = asyncio.create_task(front_panel_reverts())
        report = await engine.apply("overridden")
        await watcher
    assert report.outcome is Outcome.ROLLED_BACK
    assert statuses(report) == ["rolled_back", "failed"]
    failed = report.steps[1]
    assert failed.code == "verify-timeout" and "within 1.5 s" in failed.error
    assert failed.answer == {"input": 5, "output": 1, "type": "all"}  # the device said yes
    assert ties(bench, "desk-matrix") == INITIAL


async def test_one_application_at_a_time_per_device(bench: Bench) -> None:
    scenes = [
        {"id": "slow", "steps": [route("wall-matrix", 2, 1), route("wall-matrix", 2, 2)]},
        {"id": "same-device", "steps": [route("wall-matrix", 3, 3)]},
        {"id": "other-device", "steps": [route("desk-matrix", 3, 3)]},
    ]
    async with engine_for(bench, scenes) as (engine, _, _):
        bench.inject("wall-matrix", FaultSpec(kind=FaultKind.DELAY, seconds=0.3))
        slow = asyncio.create_task(engine.apply("slow"))
        await eventually(lambda: engine.running("slow"))
        with pytest.raises(SceneBusy) as busy:
            await engine.apply("same-device")
        assert busy.value.held == {"wall-matrix": "slow"}
        with pytest.raises(SceneBusy):
            await engine.apply("slow")
        assert (await engine.apply("other-device")).ok
        assert (await slow).ok
        assert not engine.running("slow")
        assert (await engine.apply("same-device")).ok
        with pytest.raises(SceneNotFound, match="scenes: slow, same-device, other-device"):
            await engine.apply("nope")


def test_scenes_are_checked_against_the_devices() -> None:
    devices = [
        DeviceConfig.model_validate(
            {
                "id": "m1",
                "type": "extron-sis",
                "transport": {"kind": "tcp", "host": "::1", "port": 1},
            }
        ),
        DeviceConfig.model_validate(
            {"id": "ups", "type": "ups-mib", "transport": {"kind": "snmp", "host": "127.0.0.1"}}
        ),
        DeviceConfig.model_validate(
            {
                "id": "splicer",
                "type": "declarative",
                "transport": {"kind": "tcp", "host": "127.0.0.1", "port": 1},
                "options": {"profile": "splicer-hex"},
            }
        ),
    ]
    scene = SceneConfig.model_validate(
        {
            "id": "s",
            "steps": [
                route("m1", 1, 1, parallel_group="a"),
                route("m1", 1, 2),
                route("m1", 1, 3, parallel_group="a"),
                route("m2", 1, 1),
                {"device": "ups", "command": "route"},
                {"device": "m1", "command": "refresh"},
                route("m1", -1, 1, speed=3),
                route("m1", 1, 9),  # the driver's options: 8 outputs
                route("splicer", 1, 1),  # a wall whose profile maps no route
                {"device": "splicer", "command": "recall_layout", "layout": "1"},
            ],
        }
    )
    problems = dict(check_scenes([scene], devices))
    base = ("scenes", 0, "steps")
    assert problems == {
        (*base, 2, "parallel_group"): "group 'a' must be contiguous (it was interrupted by "
        "another step)",
        (*base, 3, "device"): "unknown device 'm2' (devices: m1, ups, splicer)",
        (*base, 4, "command"): "ups (ups-mib) has no command 'route' (it takes no commands)",
        (*base, 5, "command"): "m1 (extron-sis) has no command 'refresh' (commands: route)",
        (*base, 6, "input"): "must be >= 0, got -1",
        (*base, 6, "speed"): "not an argument of 'route' (arguments: input, output, type; "
        "step keys: device, command, parallel_group, verify_timeout)",
        (*base, 7, "command"): "m1 would refuse it: 'output' must be 1..8, got 9",
        (*base, 8, "command"): "splicer would refuse it: profile 'splicer-hex' maps no 'route'"
        " (it maps: close_window, move_window, open_window, recall_layout, set_source)",
    }
    assert StepStatus.ROLLED_BACK.value == "rolled_back"
