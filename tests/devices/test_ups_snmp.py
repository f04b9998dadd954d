"""The ups-mib driver against a real net-snmp agent (snmpd) on 127.0.0.1 serving UPS-MIB values."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pysnmp.hlapi.v3arch.asyncio import (  # type: ignore[import-untyped]
    CommunityData,
    ContextData,
    Integer,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    set_cmd,
)

from devices.base import Device
from devices.errors import InvalidCommand
from devices.registry import driver_for
from devices.snapshot import DeviceSnapshot
from lab.processes import free_port
from tests.devices.peers import device_config, eventually, online

SNMPD = shutil.which("snmpd") or ("/usr/sbin/snmpd" if os.path.exists("/usr/sbin/snmpd") else None)
pytestmark = pytest.mark.skipif(SNMPD is None, reason="net-snmp snmpd is not installed")

SOURCE = "1.3.6.1.2.1.33.1.4.1.0"
VALUES = {
    "1.3.6.1.2.1.33.1.2.1.0": ("integer", 2),  # batteryNormal
    "1.3.6.1.2.1.33.1.2.3.0": ("integer", 42),
    "1.3.6.1.2.1.33.1.2.4.0": ("integer", 97),
    "1.3.6.1.2.1.33.1.3.3.1.3.1": ("integer", 229),
    SOURCE: ("integer", 3),  # normal
    "1.3.6.1.2.1.33.1.4.4.1.5.1": ("integer", 35),
    "1.3.6.1.2.1.33.1.6.1.0": ("unsigned", 0),
}


class Agent:
    def __init__(self, port: int) -> None:
        self.port = port

    async def set(self, oid: str, value: int) -> None:
        engine = SnmpEngine()
        try:
            target = await UdpTransportTarget.create(("127.0.0.1", self.port), timeout=1, retries=1)
            indication, status, _, _ = await set_cmd(
                engine,
                CommunityData("private", mpModel=1),
                target,
                ContextData(),
                ObjectType(ObjectIdentity(oid), Integer(value)),
            )
            assert not indication and not status, (indication, status)
        finally:
            engine.close_dispatcher()


@pytest.fixture
async def snmpd(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Agent]:
    assert SNMPD is not None
    omit: tuple[str, ...] = getattr(request, "param", ())
    port = free_port(kind=socket.SOCK_DGRAM)
    lines = ["rocommunity public 127.0.0.1", "rwcommunity private 127.0.0.1"]
    served = {oid: v for oid, v in VALUES.items() if oid not in omit}
    lines += [f"override -rw {oid} {kind} {value}" for oid, (kind, value) in served.items()]
    conf = tmp_path / "snmpd.conf"
    conf.write_text("\n".join(lines) + "\n")
    log = (tmp_path / "snmpd.log").open("wb")
    env = {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        SNMPD, "-f", "-Lo", "-C", "-c", str(conf), "-I", "-smux", "-p", str(tmp_path / "pid"),
        f"udp:127.0.0.1:{port}", stdout=log, stderr=log, env=env,
    )  # fmt: skip
    try:
        yield Agent(port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(3):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        log.close()


def ups(port: int, version: str = "2c", **overrides: Any) -> Device[Any]:
    transport = {"kind": "snmp", "host": "127.0.0.1", "port": port, "version": version}
    overrides.setdefault("options", {"retries": 1})
    device: Device[Any] = driver_for("ups-mib")(
        device_config("ups-mib", transport, id="ups-1", **overrides)
    )
    return device


async def test_reads_the_ups_mib_and_follows_a_mains_failure(snmpd: Agent) -> None:
    seen: list[DeviceSnapshot] = []
    async with ups(snmpd.port, poll_interval=5.0, timeout=0.5) as device:
        device.add_listener(seen.append)
        await online(device, within=5.0)
        assert dict(device.snapshot.state) == {
            "battery_status": "normal",
            "minutes_remaining": 42,
            "charge_percent": 97,
            "input_voltage": 229,
            "output_source": "normal",
            "output_load_percent": 35,
            "alarms_present": 0,
            "on_battery": False,
            "battery_low": False,
            "status": "online",
            "output_voltage": None,  # this agent lacks upsOutputVoltage
            "alarms": (),  # the snapshot is frozen: lists become tuples
        }
        await snmpd.set(SOURCE, 5)
        state = await device.command({"command": "refresh"})
        assert state["on_battery"] is True and state["output_source"] == "battery"
        assert state["status"] == "on_battery"
        assert device.snapshot.state["on_battery"] is True
        await device.command({"command": "refresh"})  # unchanged: nobody woken
        with pytest.raises(InvalidCommand, match="unknown command 'shutdown' for ups-mib"):
            await device.command({"command": "shutdown"})
    assert [s.state.get("on_battery") for s in seen if s.online] == [False, True]


async def test_silent_agent_is_offline_with_a_timeout() -> None:
    device = ups(free_port(kind=socket.SOCK_DGRAM), timeout=0.2, options={"retries": 0})
    async with device:
        await eventually(lambda: device.snapshot.error != "not started")
        assert not device.snapshot.online
        assert device.snapshot.error == "No SNMP response received before timeout"


ALARMS = "1.3.6.1.2.1.33.1.6.1.0"


@pytest.mark.parametrize("snmpd", [(ALARMS,)], indirect=True)
async def test_snmp_v1_agent_without_an_object(snmpd: Agent) -> None:
    # v1 answers noSuchName for the whole GET: the driver stops asking for that object
    async with ups(snmpd.port, version="1", timeout=0.5) as device:
        await online(device, within=5.0)
        assert device.snapshot.state["alarms_present"] is None
        assert device.snapshot.state["charge_percent"] == 97
