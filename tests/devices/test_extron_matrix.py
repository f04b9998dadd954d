"""The extron-sis driver against a SIS server on 127.0.0.1: routes, device errors, front panel."""

from __future__ import annotations

from typing import Any

import pytest

from devices.base import Device
from devices.errors import DeviceCommandError, InvalidCommand
from devices.registry import driver_for
from devices.snapshot import DeviceSnapshot
from protocols import extron_sis as sis
from tests.devices.peers import SisServer, device_config, eventually, online


def matrix(server: SisServer) -> Device[Any]:
    transport = {"kind": "tcp", "host": "127.0.0.1", "port": server.port}
    options = {"outputs": server.outputs, "inputs": 8}
    device: Device[Any] = driver_for("extron-sis")(
        device_config("extron-sis", transport, options=options, poll_interval=5.0)
    )
    return device


async def test_route_ties_and_updates_the_snapshot(sis_server: SisServer) -> None:
    async with matrix(sis_server) as device:
        await online(device)
        result = await device.command({"command": "route", "input": 3, "output": 1})
        assert result == {"input": 3, "output": 1, "type": "all"}
        assert sis_server.received[-1] == b"3*1!"
        assert device.snapshot.state["ties"][1] == 3
        assert device.snapshot.state["audio_ties"][1] == 3
        await device.command({"command": "route", "input": 2, "output": 4, "type": "audio"})
        assert sis_server.received[-1] == b"2*4$"
        assert device.snapshot.state["audio_ties"][4] == 2
        assert device.snapshot.state["ties"][4] == 1
        state = await device.command({"command": "refresh"})
        assert state["ties"] == {1: 3, 2: 1, 3: 1, 4: 2}


async def test_device_errors_carry_the_extron_code(sis_server: SisServer) -> None:
    sis_server.errors[b"5*2!"] = "E13"
    async with matrix(sis_server) as device:
        await online(device)
        with pytest.raises(DeviceCommandError) as excinfo:
            await device.command({"command": "route", "input": 5, "output": 2})
        assert excinfo.value.code == "E13"
        assert excinfo.value.reason == "invalid value (after '5*2!')"
        assert device.snapshot.online


async def test_invalid_commands_are_refused_before_sending(sis_server: SisServer) -> None:
    async with matrix(sis_server) as device:
        await online(device)
        sent = len(sis_server.received)
        bad: list[tuple[dict[str, Any], str]] = [
            ({"command": "route", "input": 1, "output": 9}, "'output' must be 1..4, got 9"),
            ({"command": "route", "input": "1", "output": 1}, "'input' must be an integer"),
            ({"command": "route", "input": 1, "output": 1, "type": "rgb"}, "'type' must be one of"),
            ({"command": "mute"}, "unknown command 'mute' for extron-sis"),
        ]
        for command, message in bad:
            with pytest.raises(InvalidCommand, match=message):
                await device.command(command)
        assert len(sis_server.received) == sent


async def test_front_panel_ties_reach_the_snapshot(sis_server: SisServer) -> None:
    seen: list[DeviceSnapshot] = []
    async with matrix(sis_server) as device:
        await online(device)
        device.add_listener(seen.append)
        sis_server.push(sis.TieReport(2, 7, sis.TieKind.VIDEO))
        await eventually(lambda: device.snapshot.state["ties"][2] == 7)
        sis_server.push(sis.TieReport(2, 7, sis.TieKind.VIDEO))  # same again: nobody woken
        # unsolicited report while a route is in flight is not taken for its reply
        sis_server.delay = 0.05
        sis_server.push(sis.TieReport(3, 6))
        result = await device.command({"command": "route", "input": 4, "output": 1})
        assert result["input"] == 4
        await eventually(lambda: device.snapshot.state["ties"][3] == 6)
    changes = [s.state["ties"] for s in seen if s.online]
    assert changes[0] == {1: 1, 2: 7, 3: 1, 4: 1}
    assert len(changes) == 3
