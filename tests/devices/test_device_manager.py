"""DeviceManager: the hub's entry point, with one live and one dead device."""

from __future__ import annotations

import time

import pytest

from devices.config import DeviceConfig
from devices.errors import DeviceCommandError, DeviceConfigError, DeviceNotFound, DeviceUnavailable
from devices.manager import DeviceManager
from devices.snapshot import DeviceSnapshot
from tests.devices.peers import SisServer, device_config, eventually


def configs(server: SisServer, dead_port: int) -> list[DeviceConfig]:
    options = {"outputs": server.outputs}
    return [
        device_config(
            "extron-sis",
            {"kind": "tcp", "host": "127.0.0.1", "port": server.port},
            id="matrix-1",
            options=options,
        ),
        device_config(
            "extron-sis",
            {"kind": "tcp", "host": "127.0.0.1", "port": dead_port},
            id="matrix-2",
            options=options,
        ),
    ]


async def test_manager_runs_live_and_dead_devices(
    sis_server: SisServer, unused_tcp_port: int
) -> None:
    manager = DeviceManager(configs(sis_server, unused_tcp_port))
    assert {s.online for s in manager.snapshots().values()} == {False}
    seen: list[DeviceSnapshot] = []
    manager.add_listener(seen.append)
    await manager.start()
    try:
        await eventually(lambda: manager.snapshots()["matrix-1"].online)
        await eventually(lambda: manager.snapshots()["matrix-2"].error.startswith("cannot open"))
        result = await manager.command("matrix-1", {"command": "route", "input": 2, "output": 3})
        assert result == {"input": 2, "output": 3, "type": "all"}
        assert manager.snapshots()["matrix-1"].state["ties"][3] == 2
        sis_server.errors[b"4*1!"] = "E13"
        with pytest.raises(DeviceCommandError) as excinfo:
            await manager.command("matrix-1", {"command": "route", "input": 4, "output": 1})
        assert excinfo.value.code == "E13"
        with pytest.raises(DeviceUnavailable, match="matrix-2 is offline: cannot open"):
            await manager.command("matrix-2", {"command": "route", "input": 1, "output": 1})
        with pytest.raises(KeyError) as not_found:
            await manager.command("nope", {"command": "refresh"})
        assert isinstance(not_found.value, DeviceNotFound)
        assert str(not_found.value) == "no device 'nope'"
    finally:
        started = time.monotonic()
        await manager.stop()
        assert time.monotonic() - started < 2.0
    ids = {s.id for s in seen}
    assert ids == {"matrix-1", "matrix-2"}
    assert manager.snapshots()["matrix-1"].error == "stopped"


def test_duplicate_ids_are_refused(sis_server: SisServer) -> None:
    config = configs(sis_server, 1)[0]
    with pytest.raises(DeviceConfigError, match="duplicate device ids: matrix-1"):
        DeviceManager([config, config])


async def test_bad_options_fail_start_naming_the_device(sis_server: SisServer) -> None:
    config = device_config(
        "extron-sis",
        {"kind": "tcp", "host": "127.0.0.1", "port": sis_server.port},
        id="m-bad",
        options={"outputs": "many"},
    )
    manager = DeviceManager([config])
    with pytest.raises(DeviceConfigError, match=r"device 'm-bad' \(extron-sis\): options\.outputs"):
        await manager.start()
    await manager.stop()
