"""End to end: the running hub polls the lab's UPS-MIB agent (snmpsim); the UPS goes to
battery → one alarm on the API after one poll, the gateway behind it is suppressed; mains
back → the alarm returns to normal (unacknowledged) and the gateway is annunciated."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.alarms import metric_prefix
from hub.config import SiteConfig
from hub.runtime import Hub
from lab.harness import BenchThread
from tests.hub.sitefile import auth, site_dict
from tests.lab.wire import simulator

pytestmark = pytest.mark.slow
REFRESH = {"command": "refresh"}  # one poll, now
DISPATCHER = auth("dispatcher")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def site(tmp_path: Path, ups: dict[str, Any]) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            **site_dict(tmp_path),
            "devices": [
                {
                    "id": "ups-1",
                    "type": "ups-mib",
                    "transport": ups,
                    "poll_interval": 30,
                    "timeout": 2,
                    "options": {"retries": 1},
                },
                # a PSTN gateway behind the UPS that does not answer (nothing listens there)
                {
                    "id": "gw-pstn",
                    "type": "extron-sis",
                    "poll_interval": 30,
                    "transport": {"kind": "tcp", "host": "127.0.0.1", "port": closed_port()},
                },
            ],
            "rules": [
                {
                    "id": "on-battery",
                    "metric": f"{metric_prefix('ups-mib')}.on_battery",
                    "above": 1,
                    "level": "orange",
                    "impairs": True,
                },
                {
                    "id": "offline",
                    "event": "device.offline",
                    "level": "yellow",
                    "unreachable": True,
                },
            ],
            "dependencies": [{"parent": "ups-1", "children": ["gw-pstn"], "via": "power"}],
        }
    )


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    """Poll the public API every 50 ms until ``check()`` holds."""
    for _ in range(int(within / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not reached within {within:g} s")


async def test_ups_on_battery_raises_one_alarm_and_clears(
    bench: BenchThread, tmp_path: Path
) -> None:
    name = simulator(bench, "ups-mib")
    async with (
        Hub(site(tmp_path, bench.site_transport(name))) as hub,
        httpx.AsyncClient(base_url=hub.api_url, timeout=10, headers=auth("ops")) as http,
    ):

        async def alarms() -> dict[str, dict[str, Any]]:
            response = await http.get("/api/v1/alarms")
            assert response.status_code == 200
            return {a["id"]: a for a in response.json()}

        async def ups_online() -> bool:
            return bool((await http.get("/api/v1/devices/ups-1")).json()["online"])

        async def gateway_alarm(state: str) -> bool:
            return (await alarms()).get("offline@gw-pstn", {}).get("state") == state

        await eventually(ups_online)
        await eventually(lambda: gateway_alarm("active-unack"))
        assert "on-battery@ups-1" not in await alarms()

        await asyncio.to_thread(bench.set_state, name, output_source="battery")
        poll = await http.post("/api/v1/devices/ups-1/commands", json=REFRESH, headers=DISPATCHER)
        assert poll.json()["result"]["on_battery"] is True
        await eventually(lambda: gateway_alarm("suppressed"), within=5)
        now = await alarms()
        assert now["on-battery@ups-1"]["state"] == "active-unack"
        assert now["on-battery@ups-1"]["count"] == 1
        assert now["offline@gw-pstn"]["suppressed_by"] == "ups-1"
        assert sorted(now) == ["offline@gw-pstn", "on-battery@ups-1"]

        await asyncio.to_thread(bench.set_state, name, output_source="normal")
        await http.post("/api/v1/devices/ups-1/commands", json=REFRESH, headers=DISPATCHER)
        await eventually(lambda: gateway_alarm("active-unack"), within=5)
        back = (await http.get("/api/v1/alarms/on-battery@ups-1")).json()
        assert (back["state"], back["condition"]) == ("rtn-unack", "normal")
        acked = await http.post("/api/v1/alarms/on-battery@ups-1/ack", json={"comment": "ok"})
        assert acked.json()["state"] == "normal"
        history = (await http.get("/api/v1/alarms/on-battery@ups-1/history")).json()
        assert [h["new_state"] for h in history if not h["cause"].startswith("action")] == [
            "active-unack",
            "rtn-unack",
            "normal",
        ]
