"""The demo's conference pieces: the duty-officer endpoint from the gateway's numbers, the
ops room, and the baresip configuration the README tells a newcomer to use: with it
Debian's baresip registers as the demo SIP user and its call to 8000 reaches the room."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hub.config import SiteConfig
from hub.runtime import Hub
from lab.demo_conference import (
    conference_endpoints,
    conference_section,
    write_baresip_config,
)
from lab.processes import find_program, stop_process
from tests.hub.confkit import api_client, eventually, gateway_bench, sip_port, sip_site_dict

pytestmark = pytest.mark.slow


async def test_duty_officer_walks_from_the_busy_mobile_to_the_toned_line() -> None:
    numbers = {
        "+861": {"action": "ring", "ring_seconds": 1},
        "+862": {"action": "busy"},
        "+863": {"action": "answer", "tone_hz": 660},
    }
    async with gateway_bench("demo-conference", {"numbers": numbers}, device="gw") as bench:
        (endpoint,) = conference_endpoints(bench)
    assert endpoint["id"] == "duty-officer"
    assert endpoint["routes"] == ["pstn:+862", "pstn:+863"]


async def test_demo_baresip_config_registers_and_dials_the_room(tmp_path: Path) -> None:
    baresip = find_program("baresip", "apt-get install baresip")
    data = sip_site_dict(
        tmp_path, dispatcher_password="demo-sip-pw", domain=None, digest_algorithms=["MD5"]
    )
    data["conferences"] = conference_section()
    async with Hub(SiteConfig.model_validate(data)) as hub:
        port = sip_port(hub)
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
        http = api_client(hub, "ops")
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
