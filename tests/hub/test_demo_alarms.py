"""The demo site raises real alarms: ``cchub demo``'s site file (rules, dependencies, duty
roster, flood plan) passes check-config; the lab UPS told through the bench control API to
run on battery raises ``ups-on-battery`` after one poll, its device metrics reach
``GET /api/v1/metrics`` through the monitoring intake, and the matrix it powers going silent
is suppressed behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.cli import check_config
from hub.config import load_site
from hub.runtime import Hub
from lab.bench import Bench
from lab.benchfile import BenchSpec
from lab.demo import _parser as demo_parser
from lab.demo import new_tokens, token_variable, write_demo_files

pytestmark = pytest.mark.slow
REFRESH = {"command": "refresh"}

BENCH = {
    "bench": "demo-alarms",
    "devices": {
        "ups-1": {
            "resource": {"kind": "snmp", "host": "127.0.0.1", "port": 0, "version": "2c",
                         "community": "public"},
            "driver": {"type": "ups-mib", "name": "Equipment room UPS", "poll_interval": 30,
                       "timeout": 2},
            "state": {"sys_name": "ups-1", "charge_remaining": 100},
        },
        "av-matrix-1": {
            "resource": {"kind": "tcp", "host": "127.0.0.1", "port": 0},
            "driver": {"type": "extron-sis", "name": "Wall matrix", "poll_interval": 30,
                       "timeout": 1},
            "state": {"inputs": 8, "outputs": 8},
        },
        "pstn-gw-1": {
            "resource": {"kind": "udp", "host": "127.0.0.1", "port": 0},
            "driver": {"type": "sip-pstn-gateway"},
            "state": {"numbers": {"+8613900000000": {"action": "busy"}}},
        },
    },
    "strategy": {"order": ["ups-1"], "start_timeout": 60, "control": {"port": 0}},
}  # fmt: skip


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    async with Bench(BenchSpec.model_validate(BENCH), seed=7) as running:
        yield running


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    for _ in range(int(within / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not reached within {within:g} s")


async def test_demo_site_raises_the_ups_alarm(
    bench: Bench,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = demo_parser().parse_args(["--dir", str(tmp_path / "demo")])
    args.api_port = args.sip_port = args.snmp_port = 0
    tokens = new_tokens()
    paths = write_demo_files(bench, args, tokens)
    for role, token in tokens.items():
        monkeypatch.setenv(token_variable(role), token)

    assert check_config([paths.site]) == 0
    checked = capsys.readouterr().out
    assert "OK (" in checked and "3 rules" not in checked  # 4 rules with a UPS on the bench
    site = load_site(paths.site)
    assert [r.id for r in site.rules] == [
        "ups-on-battery",
        "ups-battery-low",
        "device-offline",
        "water-leak",
    ]
    assert [(d.parent, d.children) for d in site.dependencies] == [("ups-1", ["av-matrix-1"])]
    duty = {e.id: e.routes for e in site.endpoints if "duty" in e.roles}
    assert duty == {
        "demo-mobile": ["pstn:+8613800138000"],
        "demo-deputy": ["pstn:+8613900000000"],
    }
    assert [p.id for p in site.plans] == ["flood-response"]

    ops = {"Authorization": f"Bearer {tokens[next(r for r in tokens if r.value == 'ops')]}"}
    dispatcher = {
        "Authorization": f"Bearer {tokens[next(r for r in tokens if r.value == 'dispatcher')]}"
    }
    async with (
        Hub(site) as hub,
        httpx.AsyncClient(base_url=hub.api_url, timeout=10, headers=ops) as api,
        httpx.AsyncClient(base_url=str(bench.control_url), timeout=10) as control,
    ):

        async def alarms() -> dict[str, dict[str, Any]]:
            response = await api.get("/api/v1/alarms")
            assert response.status_code == 200
            return {a["id"]: a for a in response.json()}

        async def online(device: str) -> bool:
            return bool((await api.get(f"/api/v1/devices/{device}")).json()["online"])

        await eventually(lambda: online("ups-1"))
        await eventually(lambda: online("av-matrix-1"))
        assert await alarms() == {}

        # device metrics go through the monitoring intake: recent series on the API
        metrics = (await api.get("/api/v1/metrics", params={"source": "ups-1"})).json()
        by_name = {m["metric"]: m for m in metrics}
        assert by_name["ups.on_battery"]["last_value"] == 0.0
        assert by_name["ups.charge_percent"] == {
            **by_name["ups.charge_percent"],
            "unit": "%",
            "last_value": 100.0,
        }

        answer = await control.patch("/sims/ups-1/state", json={"output_source": "battery"})
        assert answer.status_code == 200, answer.text
        poll = await api.post("/api/v1/devices/ups-1/commands", json=REFRESH, headers=dispatcher)
        assert poll.json()["result"]["on_battery"] is True

        async def on_battery() -> bool:
            return (await alarms()).get("ups-on-battery@ups-1", {}).get("state") == "active-unack"

        await eventually(on_battery, within=5)
        alarm = (await alarms())["ups-on-battery@ups-1"]
        assert (alarm["level"], alarm["count"]) == ("orange", 1)
        metric = (await api.get("/api/v1/metrics/ups.on_battery")).json()
        assert metric["series"][0]["source"] == "ups-1"
        assert metric["series"][0]["points"][-1][1] == 1.0

        # the matrix the UPS powers stops answering: its offline alarm is suppressed
        fault = await control.post("/sims/av-matrix-1/faults", json={"kind": "refuse"})
        assert fault.status_code == 200, fault.text
        await control.post("/sims/av-matrix-1/faults", json={"kind": "disconnect"})
        await api.post("/api/v1/devices/av-matrix-1/commands", json=REFRESH, headers=dispatcher)

        async def suppressed() -> bool:
            found = (await alarms()).get("device-offline@av-matrix-1", {})
            return found.get("state") == "suppressed"

        await eventually(suppressed, within=15)
        assert (await alarms())["device-offline@av-matrix-1"]["suppressed_by"] == "ups-1"
