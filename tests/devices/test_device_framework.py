"""The device coordinator against a real TCP peer: reconnect, timeouts, queue, snapshots."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from devices.base import Device
from devices.errors import (
    DeviceBusy,
    DeviceCommandError,
    DeviceConfigError,
    DeviceError,
    DeviceTimeout,
    DeviceUnavailable,
)
from devices.registry import driver_for
from devices.snapshot import DeviceSnapshot
from tests.devices.peers import SisServer, device_config, eventually, online


def matrix(server: SisServer, **overrides: Any) -> Device[Any]:
    options = {"outputs": server.outputs, **overrides.pop("options", {})}
    transport = {"kind": "tcp", "host": "127.0.0.1", "port": server.port}
    config = device_config("extron-sis", transport, options=options, **overrides)
    device: Device[Any] = driver_for("extron-sis")(config)
    return device


async def test_comes_online_and_unchanged_polls_wake_nobody(sis_server: SisServer) -> None:
    seen: list[DeviceSnapshot] = []
    device = matrix(sis_server, poll_interval=0.05)
    device.add_listener(seen.append)
    async with device:
        await online(device)
        polls = len(sis_server.received)
        await eventually(lambda: len(sis_server.received) >= polls + 3 * sis_server.outputs)
    assert [s.online for s in seen] == [True, False]
    assert seen[0].state["ties"] == {1: 1, 2: 1, 3: 1, 4: 1}
    assert seen[-1].error == "stopped"
    assert seen[0].as_dict()["state"]["ties"] == {1: 1, 2: 1, 3: 1, 4: 1}


async def test_snapshot_is_immutable(sis_server: SisServer) -> None:
    async with matrix(sis_server) as device:
        await online(device)
        with pytest.raises(TypeError):
            device.snapshot.state["ties"][1] = 5
        with pytest.raises(AttributeError):
            device.snapshot.online = False  # type: ignore[misc]


async def test_reconnects_after_the_server_drops(
    sis_server: SisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devices")
    async with matrix(sis_server) as device:
        await online(device)
        await sis_server.close()  # listener gone: several reconnects fail
        await eventually(lambda: not device.snapshot.online)
        await asyncio.sleep(0.6)
        assert device.snapshot.error.startswith("cannot open tcp://127.0.0.1:")
        await sis_server.start()  # same port
        await online(device)
        await sis_server.drop_clients()
        await eventually(lambda: not device.snapshot.online)
        await online(device)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    recoveries = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
    assert len(warnings) == 2, warnings  # once per outage, not once per attempt
    assert warnings[0].startswith("[dev=dev-1] unavailable: connection closed by the device")
    assert len(recoveries) == 2


async def test_command_times_out_when_the_peer_stops_answering(sis_server: SisServer) -> None:
    async with matrix(sis_server, timeout=0.2, options={"retries": 1}) as device:
        await online(device)
        sis_server.silent = True
        started = time.monotonic()
        with pytest.raises(
            DeviceTimeout, match=r"no answer to b'2\*1!' within 0.2 s \(2 attempts\)"
        ):
            await device.command({"command": "route", "input": 2, "output": 1})
        assert 0.35 < time.monotonic() - started < 1.0
        assert sis_server.received[-2:] == [b"2*1!", b"2*1!"]
        await eventually(lambda: not device.snapshot.online)
        with pytest.raises(DeviceUnavailable, match="is offline"):
            await device.command({"command": "route", "input": 2, "output": 1})
        sis_server.silent = False
        await online(device)
        assert await device.command({"command": "route", "input": 2, "output": 1}) == {
            "input": 2,
            "output": 1,
            "type": "all",
        }


async def test_queue_does_not_wedge_and_no_command_is_dropped(sis_server: SisServer) -> None:
    sis_server.delay = 0.02
    sis_server.errors[b"3*2!"] = "E13"
    async with matrix(sis_server, options={"queue_size": 4}) as device:
        await online(device)
        commands = [{"command": "route", "input": i % 4, "output": 2} for i in range(10)]
        results = await asyncio.gather(
            *(device.command(c) for c in commands), return_exceptions=True
        )
        busy = [r for r in results if isinstance(r, DeviceBusy)]
        rejected = [r for r in results if isinstance(r, DeviceCommandError)]
        done = [r for r in results if isinstance(r, dict)]
        assert len(busy) + len(rejected) + len(done) == len(commands)
        assert busy and done and all(r.code == "E13" for r in rejected)
        # after a burst with failures the queue still serves commands
        result = await device.command({"command": "route", "input": 4, "output": 2})
        assert result["input"] == 4
        assert device.snapshot.state["ties"][2] == 4


async def test_stop_fails_pending_commands_and_reaps_tasks(sis_server: SisServer) -> None:
    device = matrix(sis_server)
    await device.start()
    await online(device)
    sis_server.silent = True
    pending = [
        asyncio.create_task(device.command({"command": "route", "input": 1, "output": o}))
        for o in (1, 2, 3)
    ]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await device.stop()
    assert time.monotonic() - started < 2.0
    for task in pending:
        with pytest.raises(DeviceUnavailable, match="stopped"):
            await task
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("dev-1")] == []
    assert not device.snapshot.online


async def test_dead_device_is_offline_without_failing_start(unused_tcp_port: int) -> None:
    transport = {"kind": "tcp", "host": "127.0.0.1", "port": unused_tcp_port}
    device = driver_for("extron-sis")(device_config("extron-sis", transport))
    async with device:
        await eventually(lambda: "connect call failed" in device.snapshot.error.lower())
        assert not device.snapshot.online
        with pytest.raises(DeviceUnavailable):
            await device.command({"command": "refresh"})


def test_bad_options_fail_with_the_option_named() -> None:
    transport = {"kind": "tcp", "host": "127.0.0.1", "port": 1}
    with pytest.raises(DeviceConfigError, match=r"options.outputs: Input should be greater"):
        driver_for("extron-sis")(device_config("extron-sis", transport, options={"outputs": 0}))
    with pytest.raises(DeviceConfigError, match=r"options.colour: Extra inputs"):
        driver_for("extron-sis")(device_config("extron-sis", transport, options={"colour": 1}))
    serial = {"kind": "snmp", "host": "127.0.0.1"}
    with pytest.raises(DeviceConfigError, match="needs a tcp or serial transport, not 'snmp'"):
        driver_for("extron-sis")(device_config("extron-sis", serial))


def test_errors_share_one_root() -> None:
    error = DeviceCommandError("E13", "invalid value")
    assert isinstance(error, DeviceError)
    assert (error.code, error.reason, str(error)) == ("E13", "invalid value", "E13: invalid value")
    assert issubclass(DeviceTimeout, DeviceUnavailable)
