"""The demo's conference pieces: the duty-officer endpoint from the gateway's numbers, the
ops room, and the baresip configuration the README tells a newcomer to use: with it
Debian's baresip registers as the demo SIP user and its call to 8000 reaches the room."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hub.config import SiteConfig
from hub.runtime import Hub
from hub.yamlsource import load_yaml
from lab.bench import Bench
from lab.benchfile import validate_bench
from lab.demo_conference import (
    conference_endpoints,
    conference_section,
    write_baresip_config,
)
from lab.processes import find_program, stop_process
from tests.hub.sitefile import auth, site_dict

pytestmark = pytest.mark.slow


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {within} s: {check}")
        await asyncio.sleep(0.05)


async def test_duty_officer_walks_from_the_busy_mobile_to_the_toned_line() -> None:
    document = {
        "bench": "demo-conference",
        "devices": {
            "gw": {
                "resource": {"kind": "udp"},
                "driver": {"type": "sip-pstn-gateway"},
                "state": {
                    "numbers": {
                        "+861": {"action": "ring", "ring_seconds": 1},
                        "+862": {"action": "busy"},
                        "+863": {"action": "answer", "tone_hz": 660},
                    }
                },
            }
        },
    }
    async with Bench(validate_bench(load_yaml(yaml.safe_dump(document))), control=False) as bench:
        (endpoint,) = conference_endpoints(bench)
    assert endpoint["id"] == "duty-officer"
    assert endpoint["routes"] == ["pstn:+862", "pstn:+863"]


async def test_demo_baresip_config_registers_and_dials_the_room(tmp_path: Path) -> None:
    baresip = find_program("baresip", "apt-get install baresip")
    data = site_dict(tmp_path)
    data["users"][0]["sip_password"] = "demo-sip-pw"  # dispatcher-user
    data["sip"] = {"host": "127.0.0.1", "port": 0, "digest_algorithms": ["MD5"]}
    data["conferences"] = conference_section()
    async with Hub(SiteConfig.model_validate(data)) as hub:
        port = hub.telephony.stack.address("UDP").port
        # no sound card here: the aubridge device instead of ALSA, nothing else changed
        config = write_baresip_config(
            tmp_path / "baresip",
            host="127.0.0.1",
            port=port,
            user="dispatcher-user",
            password="demo-sip-pw",
            audio="aubridge",
        )
        account = (config / "accounts").read_text()
        assert account == f"<sip:dispatcher-user@127.0.0.1:{port}>;auth_pass=demo-sip-pw\n"
        phone = await asyncio.create_subprocess_exec(
            baresip,
            "-f",
            str(config),
            "-e",
            "/dial 8000",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        http = httpx.AsyncClient(base_url=hub.api_url, timeout=15, headers=auth("ops"))
        try:

            async def registered() -> bool:
                return bool(hub.telephony.registrar.lookup("dispatcher-user"))

            await eventually(registered)

            async def in_the_lobby() -> list[dict[str, Any]]:
                room = (await http.get("/api/v1/conferences/ops")).json()
                return [p for p in room["participants"] if p["state"] == "lobby"]

            (caller,) = await eventually(in_the_lobby)
            assert (caller["direction"], caller["target"]) == ("inbound", "dispatcher-user")
        finally:
            await http.aclose()
            await stop_process(phone)
