"""Plans (预案) in a running hub: steps against the lab's Extron simulators, dependencies
and failures, a warning rule starting a plan, events, and the site file's checks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.config import ConfigError, SiteConfig, load_site
from hub.events import (
    Event,
    PlanFinished,
    PlanNotified,
    PlanRejected,
    PlanStarted,
    PlanStepChanged,
)
from hub.plans import PlanBusy, RunReport, StepContext, StepOutcome, StepState
from hub.runtime import Hub
from hub.store import SqliteStore
from lab.bench import Bench
from lab.faults import FaultKind, FaultSpec
from tests.devices.peers import eventually
from tests.devices.scene_bench import INITIAL, device_entry, matrices, route, ties
from tests.hub.sitefile import site_dict

SCENES = [
    {"id": "wall", "verify_timeout": 3, "steps": [route("wall-matrix", 5, 1)]},
    {"id": "desk", "verify_timeout": 3, "steps": [route("desk-matrix", 6, 2)]},
]
INCIDENT = {
    "id": "incident",
    "name": "Incident response",
    "steps": [
        {"id": "desk", "action": "apply_scene", "scene": "desk"},
        {"id": "wall", "action": "apply_scene", "scene": "wall"},
        {"id": "feed", "action": "device_command", "device": "wall-matrix", "command": "route",
         "input": 7, "output": 3, "depends_on": ["wall"]},
        {"id": "tell", "action": "notify", "text": "desk feeds up", "depends_on": ["desk"]},
        {"id": "call", "action": "key_radio", "net": "hf-1", "depends_on": ["wall"]},
        {"id": "after-call", "action": "wait", "seconds": 0.01, "depends_on": ["call"]},
    ],
}  # fmt: skip


class HookServer:
    """A webhook receiver on 127.0.0.1 that answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.bodies: list[dict[str, Any]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/plan"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        self.bodies.append(json.loads(await reader.readexactly(length)))
        reply = f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        writer.write(reply.encode())
        await writer.drain()
        writer.close()


@pytest.fixture
async def hook() -> AsyncIterator[HookServer]:
    server = HookServer()
    await server.start()
    try:
        yield server
    finally:
        assert server.server is not None
        server.server.close()
        await server.server.wait_closed()


@pytest.fixture
async def sims() -> AsyncIterator[Bench]:
    async with matrices("wall-matrix", "desk-matrix") as running:
        yield running


def site(tmp_path: Path, sims: Bench, plans: list[dict[str, Any]], **more: Any) -> SiteConfig:
    data = site_dict(tmp_path)
    data["devices"] = [device_entry(sims, name) for name in sims.sims]
    data["scenes"] = SCENES
    data["plans"] = plans
    return SiteConfig.model_validate({**data, **more})


async def online(hub: Hub) -> None:
    await eventually(lambda: all(s.online for s in hub.equipment.snapshots().values()), 10)


def drain(subscription: Any) -> list[Event]:
    out = []
    while (event := subscription.get_nowait()) is not None:
        out.append(event)
    return out


def plan_events(event: Event) -> bool:
    return event.kind.startswith("plan.")


async def finished(hub: Hub, run: str) -> RunReport:
    async with asyncio.timeout(30):
        return await hub.plans.wait(run)


async def test_failed_step_skips_its_dependents_and_spares_the_others(
    tmp_path: Path, sims: Bench
) -> None:
    async with Hub(site(tmp_path, sims, [INCIDENT])) as hub:
        await online(hub)
        events = hub.bus.subscribe("plan-test", accept=plan_events)
        sims.inject("desk-matrix", FaultSpec(kind=FaultKind.ERROR, code="E13"))
        started = hub.plans.launch("incident", "dispatcher-user", reason="flood at gate 3")
        assert started.state.value == "running"
        report = await finished(hub, started.run)

    steps = {s.id: s for s in report.steps}
    assert report.state.value == "failed"
    assert steps["desk"].state is StepState.FAILED and steps["desk"].code == "E13"
    assert steps["desk"].detail.startswith("step 0 (desk-matrix route) failed: E13")
    assert steps["desk"].data["outcome"] == "rolled_back"  # the scene's own report
    assert steps["wall"].state is StepState.OK  # independent of the failed step
    assert steps["feed"].state is StepState.OK  # depends on "wall" only
    assert steps["feed"].data["answer"]["input"] == 7
    assert steps["tell"].state is StepState.SKIPPED
    assert steps["tell"].detail == "depends on step 'desk' failed"
    assert steps["call"].state is StepState.FAILED and steps["call"].code == "unavailable"
    assert steps["call"].detail == (
        "no handler for step kind 'key_radio' (radio nets are not available in this hub)"
    )
    assert steps["after-call"].state is StepState.SKIPPED
    assert steps["after-call"].detail == "depends on step 'call' failed"
    # the devices did what the plan said (and nothing on the desk matrix)
    assert ties(sims, "wall-matrix")[1] == 5 and ties(sims, "wall-matrix")[3] == 7
    assert ties(sims, "desk-matrix") == INITIAL

    seen = drain(events)
    assert isinstance(seen[0], PlanStarted) and seen[0].run == started.run
    assert seen[0].steps == ["desk", "wall", "feed", "tell", "call", "after-call"]
    assert seen[0].reason == "flood at gate 3"
    assert isinstance(seen[-1], PlanFinished)
    assert (seen[-1].state, seen[-1].failed, seen[-1].skipped) == (
        "failed",
        ["desk", "call"],
        ["tell", "after-call"],
    )
    moves = [(e.step, e.new) for e in seen if isinstance(e, PlanStepChanged)]
    for step in ("desk", "wall", "feed", "call"):
        assert moves.index((step, "running")) < moves.index((step, steps[step].state.value))
    assert ("tell", "running") not in moves and ("tell", "skipped") in moves
    assert moves.index(("wall", "ok")) < moves.index(("feed", "running"))
    assert not any(isinstance(e, PlanNotified) for e in seen)


async def test_every_step_ok_and_the_events_reach_the_log(
    tmp_path: Path, sims: Bench, hook: HookServer
) -> None:
    plan = {
        "id": "all-ok",
        "steps": [
            {"action": "apply_scene", "scene": "wall"},
            {"action": "notify", "text": "wall is up", "level": "orange",
             "depends_on": ["step-1"]},
            {"action": "webhook", "url": hook.url, "depends_on": ["step-1"]},
            {"action": "wait", "seconds": 0.05},
        ],
    }  # fmt: skip
    async with Hub(site(tmp_path, sims, [plan])) as hub:
        await online(hub)
        events = hub.bus.subscribe("plan-test", accept=plan_events)
        run = hub.plans.launch("all-ok", "engineer-user").run
        report = await finished(hub, run)
        await hub.store.flush()
        logged = await hub.store.events_since(0, kinds=["plan."])
    assert report.state.value == "succeeded"
    assert [s.state.value for s in report.steps] == ["ok"] * 4
    assert [s.id for s in report.steps] == ["step-1", "step-2", "step-3", "step-4"]
    assert report.steps[3].detail == "waited 0.05 s"
    assert hook.bodies == [
        {"origin": "test-centre", "plan": "all-ok", "name": "all-ok", "run": run,
         "step": "step-3", "requested_by": "engineer-user", "alarm": "", "reason": ""}
    ]  # fmt: skip
    notified = [e for e in drain(events) if isinstance(e, PlanNotified)]
    assert [(n.text, n.level, n.step) for n in notified] == [("wall is up", "orange", "step-2")]
    kinds = [e.kind for e in logged]
    assert kinds[0] == "plan.started" and kinds[-1] == "plan.finished"
    assert kinds.count("plan.step") == 8 and "plan.notify" in kinds


async def test_a_rule_on_a_metric_starts_a_plan(
    tmp_path: Path, sims: Bench, hook: HookServer
) -> None:
    plan = {
        "id": "flood",
        "name": "Machine room flooding",
        "steps": [
            {"id": "alert", "action": "notify"},
            {"id": "tell-platform", "action": "webhook", "url": hook.url},
            {"id": "wall", "action": "apply_scene", "scene": "wall"},
        ],
    }
    rules = [{"id": "water", "metric": "room.water_mm", "above": 10, "level": "red",
              "plan": "flood"}]  # fmt: skip
    async with Hub(site(tmp_path, sims, [plan], rules=rules)) as hub:
        await online(hub)
        events = hub.bus.subscribe("plan-test", accept=plan_events)
        assert hub.alarms.core.submit("room.water_mm", "room-1", 25, time.time(), "mm")
        start = await asyncio.wait_for(events.get(), 10)
        while start.kind == "plan.requested":
            start = await asyncio.wait_for(events.get(), 10)
        assert isinstance(start, PlanStarted)
        assert (start.plan, start.requested_by, start.alarm) == (
            "flood",
            "rule:water",
            "water@room-1",
        )
        assert start.reason == "room.water_mm on room-1 = 25 mm (above 10)"
        report = await finished(hub, start.run)
        assert report.state.value == "succeeded"
        assert hook.bodies[0]["alarm"] == "water@room-1"
        assert ties(sims, "wall-matrix")[1] == 5
        notified = [e for e in drain(events) if isinstance(e, PlanNotified)]
        assert [(n.text, n.alarm) for n in notified] == [("Machine room flooding", "water@room-1")]
        # the alarm's action history says the plan was asked for
        history = await hub.alarms.history("water@room-1")
        assert any(h.cause == "action:plan" and "flood" in h.comment for h in history)


async def test_busy_plans_timeouts_and_layer_handlers(tmp_path: Path, sims: Bench) -> None:
    plans = [
        {"id": "slow", "steps": [{"action": "wait", "seconds": 30, "timeout": 0.2}]},
        {"id": "call", "steps": [{"action": "key_radio", "net": "hf-1", "timeout": 5}]},
    ]
    async with Hub(site(tmp_path, sims, plans)) as hub:
        events = hub.bus.subscribe("plan-test", accept=plan_events)
        run = hub.plans.launch("slow", "dispatcher-user").run
        with pytest.raises(PlanBusy, match=f"plan 'slow' is running already \\(run {run}\\)"):
            hub.plans.launch("slow", "dispatcher-user")
        # a rule asking meanwhile is refused with the reason, on the bus
        from hub.events import PlanRequested

        hub.bus.publish(PlanRequested(plan="slow", requested_by="rule:x", alarm="x@y"))
        report = await finished(hub, run)
        assert report.steps[0].state is StepState.FAILED
        assert (report.steps[0].code, report.steps[0].detail) == (
            "timeout",
            "timed out after 0.2 s",
        )
        rejected = [e for e in drain(events) if isinstance(e, PlanRejected)]
        assert [(r.plan, r.requested_by, r.alarm) for r in rejected] == [("slow", "rule:x", "x@y")]
        assert "running already" in rejected[0].reason

        # the radio layer, once present, registers its kinds
        seen: list[dict[str, Any]] = []

        async def key_radio(ctx: StepContext) -> StepOutcome:
            seen.append({"net": ctx.step.arguments()["net"], "run": ctx.run})
            return StepOutcome("net hf-1 keyed", {"answered": 3})

        hub.plans.kinds.register("key_radio", key_radio)
        with pytest.raises(ValueError, match="unknown step kind 'page'"):
            hub.plans.kinds.register("page", key_radio)
        with pytest.raises(ValueError, match="already has a handler"):
            hub.plans.kinds.register("dial", key_radio)  # the conference layer's
        run = hub.plans.launch("call", "platform-user").run
        report = await finished(hub, run)
        assert report.steps[0].state is StepState.OK
        assert report.steps[0].data == {"answered": 3}
        assert seen == [{"net": "hf-1", "run": run}]


async def test_stopping_the_hub_cancels_a_run(tmp_path: Path, sims: Bench) -> None:
    plans = [
        {
            "id": "long",
            "steps": [
                {"action": "wait", "seconds": 60},
                {"action": "notify", "depends_on": ["step-1"]},
            ],
        }
    ]
    hub = Hub(site(tmp_path, sims, plans))
    await hub.start()
    run = hub.plans.launch("long", "dispatcher-user").run
    await eventually(lambda: hub.plans.run(run).steps[0].state is StepState.RUNNING, 5)
    await hub.stop()
    report = hub.plans.run(run)
    assert report.state.value == "cancelled"
    assert [s.state for s in report.steps] == [StepState.CANCELLED, StepState.CANCELLED]
    # published after the subscribers were closed, but in the event log all the same
    store = SqliteStore(hub.site.hub.store_path)
    await store.open()
    try:
        logged = await store.events_since(0, kinds=["plan."])
    finally:
        await store.close()
    assert [(e.kind, getattr(e, "state", "")) for e in logged][-1] == ("plan.finished", "cancelled")
    assert [getattr(e, "new", "") for e in logged if e.kind == "plan.step"] == [
        "running",
        "cancelled",
        "cancelled",
    ]


# -- the site file ----------------------------------------------------------------------

DEVICES = """\
devices:
  - id: wall-matrix
    type: extron-sis
    transport: {kind: tcp, host: 127.0.0.1, port: 2300}
scenes:
  - id: wall
    steps: [{device: wall-matrix, command: route, input: 1, output: 1}]
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_text(DEVICES + text)
    with pytest.raises(ConfigError) as err:
        load_site(path)
    return err.value.problems


def test_site_file_plan_errors_name_key_path_and_line(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """\
plans:
  - id: p
    steps:
      - {action: page, who: all}
      - {action: wait}
""",
    ) == [
        "plans[0].steps[0]: unknown kind 'page' (expected 'apply_scene', "
        "'device_command', 'notify', 'webhook', 'wait', 'create_conference', 'dial', "
        "'announce', 'key_radio', 'send_message'), line 11",
        "plans[0].steps[1].seconds: required key is missing, line 12",
    ]
    assert problems(
        tmp_path,
        """\
plans:
  - id: p
    steps:
      - {id: a, action: apply_scene, scene: lobby}
      - {id: b, action: notify, txt: hello, depends_on: [a, c]}
      - {id: a, action: device_command, device: wall-matrix, command: route, input: 1,
         output: 0}
      - {id: d, action: device_command, device: wall-matrix, command: mute}
      - {id: e, action: device_command, device: desk-matrix, command: route}
  - id: runs
    steps: [{action: notify}]
""",
    ) == [
        "plans[0].steps[0].scene: no scene 'lobby' (scenes: wall), line 11",
        "plans[0].steps[1].depends_on[1]: 'c' is not an earlier step (earlier steps: a), line 12",
        "plans[0].steps[1].txt: unknown key for 'notify' (allowed: id, depends_on, timeout, "
        "action, text, level), line 12",
        "plans[0].steps[2].id: 'a' is also the id of step 0, line 13",
        "plans[0].steps[2].output: must be >= 1, got 0, line 14",
        "plans[0].steps[3].command: wall-matrix (extron-sis) has no command 'mute' "
        "(commands: route), line 15",
        "plans[0].steps[4].device: unknown device 'desk-matrix' (devices: wall-matrix), line 16",
        "plans[1].id: 'runs' is reserved (API paths), line 17",
    ]
    assert problems(
        tmp_path,
        """\
rules:
  - {id: r, metric: m, above: 1, plan: nope}
plans:
  - {id: p, steps: []}
""",
    ) == ["plans[0].steps: must have at least 1 item(s), line 11"]


def test_example_site_file_loads_with_its_snmp_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example's plans load as they are; its commented ``snmp:`` section loads too."""
    for role in ("DISPATCHER", "ENGINEER", "OPS", "PLATFORM", "ADMIN"):
        monkeypatch.setenv(f"CCHUB_TOKEN_{role}", f"example-{role.lower()}-token-0123")
    monkeypatch.setenv("CCHUB_TIANTONG_PASSWORD", "secret")
    example = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"
    site = load_site(example)
    assert [p.id for p in site.plans] == ["power-loss"]
    assert site.plans[0].step_ids == [
        "tell",
        "wall",
        "camera",
        "platform",
        "bridge",
        "duty",
        "brief",
    ]
    assert site.snmp is None
    lines = example.read_text().splitlines()
    start = lines.index("# snmp:")
    block = [line.removeprefix("# ") for line in lines[start:] if line.startswith("# ")]
    (tmp_path / "site.yaml").write_text("\n".join([*lines[:start], *block]) + "\n")
    monkeypatch.setenv("CCHUB_SNMP_COMMUNITY", "example-community")
    monkeypatch.setenv("CCHUB_SNMP_AUTH_KEY", "example-auth-key")
    monkeypatch.setenv("CCHUB_SNMP_PRIV_KEY", "example-priv-key")
    snmp = load_site(tmp_path / "site.yaml").snmp
    assert snmp is not None and snmp.port == 1161
    assert [t.id for t in snmp.traps.targets] == ["nms", "nms-v3"]
