"""The Kramer P3000 driver against the lab's Kramer simulator (TCP and serial) and a raw peer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices.capabilities import Matrix
from devices.errors import DeviceCommandError, DeviceTimeout, DeviceUnavailable, InvalidCommand
from hub.config import SiteConfig
from hub.runtime import Hub
from tests.devices.avpeers import driver, fault, simulator
from tests.devices.peers import FAST, device_config, eventually, online
from tests.hub.sitefile import auth, site_dict

ROUTE = {"command": "route", "input": 3, "output": 1}


@pytest.mark.parametrize("kind", ["tcp", "pty"])
async def test_routes_and_reads_ties_over_tcp_and_serial(kind: str) -> None:
    async with (
        simulator("kramer-p3000", kind, video_ties={2: 5}, audio_ties={2: 5}) as sim,
        driver(sim, timeout=2.0) as device,
    ):
        await online(device, 10)
        state = device.snapshot.state
        assert Matrix.missing_state(state) == []
        assert (state["inputs"], state["outputs"], state["model"]) == (8, 8, "VS-88UT")
        assert state["ties"][2] == 5 and state["ties"][1] == 0
        assert await device.command(ROUTE) == {"input": 3, "output": 1, "type": "all"}
        assert sim.snapshot()["video_ties"]["1"] == 3
        assert sim.snapshot()["audio_ties"]["1"] == 3  # audio follows video
        assert device.snapshot.state["audio_ties"][1] == 3
        assert Matrix.verify(ROUTE, device.snapshot.state)
        audio = {"command": "route", "input": 7, "output": 2, "type": "audio"}
        await device.command(audio)
        assert sim.snapshot()["audio_ties"]["2"] == 7 and sim.snapshot()["video_ties"]["2"] == 5
        assert Matrix.verify(audio, device.snapshot.state)
        assert await device.command({"command": "route", "input": 0, "output": 2}) == {
            "input": 0,
            "output": 2,
            "type": "all",
        }
        assert sim.snapshot()["video_ties"]["2"] == 0


async def test_without_afv_all_routes_both_layers() -> None:
    async with (
        simulator("kramer-p3000", afv=False) as sim,
        driver(sim, timeout=2.0, options={"afv": False}) as device,
    ):
        await online(device, 10)
        await device.command({"command": "route", "input": 4, "output": 3})
        assert (sim.snapshot()["video_ties"]["3"], sim.snapshot()["audio_ties"]["3"]) == (4, 4)
        await device.command({"command": "route", "input": 6, "output": 3, "type": "video"})
        assert (sim.snapshot()["video_ties"]["3"], sim.snapshot()["audio_ties"]["3"]) == (6, 4)
        assert device.snapshot.state["audio_ties"][3] == 4


async def test_front_panel_changes_are_reported_and_not_taken_for_replies() -> None:
    async with simulator("kramer-p3000") as sim, driver(sim, timeout=2.0) as device:
        await online(device, 10)
        sim.set_state({"video_ties": {4: 6}})
        await eventually(lambda: device.snapshot.state["ties"][4] == 6)
        # a change notice for the very output being routed arrives before the confirmation
        seen: list[int] = []
        device.add_listener(lambda s: seen.append(s.state["ties"][4]))
        fault(sim, "delay", seconds=0.2)
        sim.set_state({"video_ties": {4: 8}})  # '~01@ROUTE 1,4,8' queued first, no OK
        result = await device.command({**ROUTE, "output": 4})
        assert result == {"input": 3, "output": 4, "type": "all"}
        assert sim.snapshot()["video_ties"]["4"] == 3
        assert device.snapshot.state["ties"][4] == 3
        assert seen[-2:] == [8, 3]  # the notice was applied, then the confirmation


async def test_device_error_codes_reach_the_caller() -> None:
    async with simulator("kramer-p3000") as sim, driver(sim, timeout=2.0) as device:
        await online(device, 10)
        fault(sim, "error", code="ERR 006")
        with pytest.raises(DeviceCommandError) as busy:
            await device.command(ROUTE)
        assert busy.value.code == "ERR 006"
        assert busy.value.reason.startswith("protocol busy (after '#ROUTE 1,1,3')")
        sim.clear()
        # the device shrank behind the driver's back: its own range check answers
        sim.set_state({"inputs": 2})
        with pytest.raises(DeviceCommandError, match="ERR 003: parameter out of range"):
            await device.command(ROUTE)
        with pytest.raises(InvalidCommand, match=r"'output' must be 1\.\.8, got 9"):
            await device.command({**ROUTE, "output": 9})
        with pytest.raises(InvalidCommand, match=r"unknown command 'mute'.*legal: refresh, route"):
            await device.command({"command": "mute"})
        assert await device.command({**ROUTE, "input": 2}) == {
            "input": 2,
            "output": 1,
            "type": "all",
        }


async def test_device_that_stops_answering_times_out_and_recovers() -> None:
    async with (
        simulator("kramer-p3000") as sim,
        driver(sim, timeout=0.5, options={"queue_size": 4}) as device,
    ):
        await online(device, 10)
        fault(sim, "drop", rate=1.0)  # replies vanish mid-command
        queued = [asyncio.create_task(device.command({**ROUTE, "output": o})) for o in (1, 2)]
        results = await asyncio.gather(*queued, return_exceptions=True)
        assert isinstance(results[0], DeviceTimeout)
        assert "no answer to b'#ROUTE 1,1,3\\r' within 0.5 s" in str(results[0])
        assert isinstance(results[1], DeviceUnavailable)  # failed, not silently dropped
        await eventually(lambda: not device.snapshot.online)
        sim.clear()
        await online(device, 10)
        assert (await device.command(ROUTE))["input"] == 3


class ScriptedP3k:
    """A raw Protocol 3000 peer: noise lines, replies cut in two, or half a reply then silence."""

    def __init__(self) -> None:
        self.mode = "noise"
        self.port = 0
        self.ties: dict[int, int] = {}
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readuntil(b"\r"):
                await self._answer(line.decode().strip(), writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _answer(self, line: str, writer: asyncio.StreamWriter) -> None:
        body = line.lstrip("#")
        if body == "":
            reply = "~01@ OK"
        elif body == "INFO-IO?":
            reply = "~01@INFO-IO ERR 002"  # an older model: the configured size is used
        elif body == "MODEL?":
            reply = "~01@MODEL VS-42UHD"
        elif body.startswith("ROUTE? "):
            layer, out = body[7:].split(",")
            reply = f"~01@ROUTE {layer},{out},{self.ties.get(int(out), 0)}"
        else:
            _, out, inp = body[6:].split(",")
            self.ties[int(out)] = int(inp)
            reply = f"~01@ROUTE 1,{out},{inp} OK"
        data = (reply + "\r\n").encode()
        if self.mode == "silent-half" and body.startswith("ROUTE "):
            writer.write(data[:9])  # half a reply, then nothing
            return
        writer.write(b"~01@\xfe\xfd garbage\r\n~zz@%%%\r\n\x00\x01\r\n")  # unknown replies
        writer.write(data[:7])
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(data[7:])  # the rest of the reply in a second segment


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedP3k]:
    peer = ScriptedP3k()
    await peer.start()
    yield peer
    await peer.close()


async def test_unknown_replies_and_half_frames(scripted: ScriptedP3k) -> None:
    transport = {"kind": "tcp", "host": "127.0.0.1", "port": scripted.port}
    config = device_config("kramer-p3000", transport, timeout=1.0, options={"outputs": 4})
    async with driver_from(config) as device:
        await online(device, 10)
        state = device.snapshot.state
        assert (state["outputs"], state["model"], state["ties"]) == (
            4,
            "VS-42UHD",
            {
                1: 0,
                2: 0,
                3: 0,
                4: 0,
            },
        )
        assert await device.command({**ROUTE, "output": 2}) == {
            "input": 3,
            "output": 2,
            "type": "all",
        }
        scripted.mode = "silent-half"
        with pytest.raises(DeviceTimeout, match="no answer"):
            await device.command(ROUTE)
        scripted.mode = "noise"
        await eventually(lambda: not device.snapshot.online)  # the link is declared lost
        await online(device, 10)
        assert (await device.command(ROUTE))["output"] == 1
        assert scripted.ties == {2: 3, 1: 3}


def driver_from(config: Any) -> Any:
    from devices.registry import driver_for

    return driver_for(config.type)(config)


async def test_route_through_the_api_returns_the_devices_answer(tmp_path: Path) -> None:
    async with simulator("kramer-p3000") as sim:
        data = site_dict(tmp_path)
        data["devices"] = [
            {
                "id": "kramer-1",
                "type": "kramer-p3000",
                "transport": sim.site_transport(),
                "poll_interval": 0.5,
                "timeout": 2.0,
                "options": FAST,
            }
        ]
        async with Hub(SiteConfig.model_validate(data)) as hub:
            await eventually(lambda: hub.equipment.snapshots()["kramer-1"].online, 10)
            async with httpx.AsyncClient(base_url=hub.api_url, timeout=10) as client:
                routed = await client.post(
                    "/api/v1/devices/kramer-1/commands",
                    json={"command": "route", "input": 3, "output": 1},
                    headers=auth("dispatcher"),
                )
                assert routed.status_code == 200, routed.text
                assert routed.json() == {
                    "device": "kramer-1",
                    "result": {"input": 3, "output": 1, "type": "all"},
                }
                assert sim.snapshot()["video_ties"]["1"] == 3
                shown = (await client.get("/api/v1/devices/kramer-1", headers=auth("ops"))).json()
                assert shown["state"]["ties"]["1"] == 3
                fault(sim, "error", code="ERR 004")
                refused = await client.post(
                    "/api/v1/devices/kramer-1/commands",
                    json={"command": "route", "input": 2, "output": 1},
                    headers=auth("dispatcher"),
                )
                assert refused.status_code == 502
                assert refused.json()["device_code"] == "ERR 004"
                assert "unauthorized access" in refused.json()["detail"]
                bad = await client.post(
                    "/api/v1/devices/kramer-1/commands",
                    json={"command": "route", "input": -1, "output": 1},
                    headers=auth("dispatcher"),
                )
                assert bad.status_code == 422
                assert "'input' must be >= 0, got -1" in bad.json()["detail"]
