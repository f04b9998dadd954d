"""The nut driver against the real upsd + dummy-ups (lab simulator ``nut``), on loopback.

upsd must be installed (Debian nut-server; ``make deps`` installs it): its absence fails.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import yaml

from devices.base import Device
from devices.capabilities import Ups
from devices.drivers.nut import ups_state
from devices.errors import DeviceConfigError, InvalidCommand
from devices.registry import driver_for
from devices.snapshot import DeviceSnapshot
from hub.yamlsource import load_yaml
from lab.bench import Bench
from lab.benchfile import validate_bench
from lab.sims.nut import NutUnavailable, nut_programs
from protocols import nut
from tests.devices.peers import device_config, eventually, online

UPS = "rack-a3"
USER = {"username": "monitor", "password": "s3cret-pass"}
SHARED_LOOP = pytest.mark.asyncio(loop_scope="module")  # the module's bench lives in it


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bench() -> AsyncIterator[Bench]:
    """One NUT server (real upsd + dummy-ups) serving UPS ``rack-a3`` for this module's tests."""
    document = {
        "bench": "nut",
        "devices": {
            "ups-2": {
                "resource": {"kind": "tcp"},
                "driver": {"type": "nut", "name": "Rack A3 UPS", "options": {"ups": UPS, **USER}},
            }
        },
        "strategy": {"on_crash": "stop"},
    }
    try:
        nut_programs()
    except NutUnavailable as err:
        pytest.fail(str(err))
    async with Bench(validate_bench(load_yaml(yaml.safe_dump(document))), control=False) as lab:
        yield lab


@pytest_asyncio.fixture(loop_scope="module")
async def nut_server(bench: Bench) -> AsyncIterator[Bench]:
    """The module's NUT server, back to its initial state (processes included) after a test."""
    yield bench
    await bench.reset()


def ups(bench: Bench, **options: Any) -> Device[Any]:
    config = device_config(
        "nut", bench.site_transport("ups-2"), id="ups-2", timeout=1.0, options=options
    )
    device: Device[Any] = driver_for("nut")(config)
    return device


async def upsc(bench: Bench, var: str) -> str:
    """NUT's own client (nut-client's upsc) asks upsd: an independent reading."""
    transport = bench.site_transport("ups-2")
    program = shutil.which("upsc")
    assert program is not None, "upsc is missing: install Debian's nut-client (`make deps`)"
    proc = await asyncio.create_subprocess_exec(
        program, f"{UPS}@127.0.0.1:{transport['port']}", var,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    return out.decode().strip()


def changes_after(seen: list[DeviceSnapshot], mark: int) -> list[dict[str, Any]]:
    return [dict(s.state) for s in seen[mark:] if s.online]


@SHARED_LOOP
async def test_reads_upsd_and_reports_a_mains_failure_on_the_next_poll(nut_server: Bench) -> None:
    bench = nut_server
    async with ups(bench, ups=UPS) as device:
        seen: list[DeviceSnapshot] = []
        device.add_listener(seen.append)
        await online(device, within=5.0)
        state = dict(device.snapshot.state)
        assert Ups.missing_state(state) == []
        assert {k: state[k] for k in Ups.state_keys} == {
            "status": "online",
            "on_battery": False,
            "battery_low": False,
            "charge_percent": 100,
            "minutes_remaining": 52,
            "input_voltage": 230,
            "output_voltage": 230,
            "output_load_percent": 34,
            "alarms": (),
        }
        assert state["runtime_s"] == 3120 and state["charging"] is True
        assert state["flags"] == ("OL", "CHRG") and state["model"] == "Smart-UPS 3000 RM"
        assert state["vars"]["ups.serial"] == "AS1834123456"
        assert state["server"].startswith("Network UPS Tools upsd 2.8")
        assert await upsc(bench, "ups.status") == "OL CHRG"

        # mains fail: once upsd serves it (set_state waits for that), the next poll shows it
        mark = len(seen)
        await bench.set_state(
            "ups-2", {"status": "OB DISCHRG", "battery_charge": 87, "input_voltage": 0}
        )
        assert await upsc(bench, "ups.status") == "OB DISCHRG"
        await eventually(lambda: len(seen) > mark, within=5.0)
        first = changes_after(seen, mark)[0]
        assert first["status"] == "on_battery" and first["on_battery"] is True
        assert first["charge_percent"] == 87 and first["input_voltage"] == 0

        mark = len(seen)
        await bench.set_state(
            "ups-2",
            {"status": "OB DISCHRG LB", "battery_charge": 9, "alarm": "Replace battery!"},
        )
        await eventually(lambda: len(seen) > mark, within=5.0)
        first = changes_after(seen, mark)[0]
        assert first["status"] == "low_battery" and first["battery_low"] is True
        assert first["alarms"] == ("Replace battery!",)
        assert first["flags"] == ("OB", "DISCHRG", "LB", "ALARM")

        mark = len(seen)
        await bench.set_state("ups-2", {"status": "OL CHRG", "battery_charge": 10, "alarm": ""})
        await eventually(lambda: len(seen) > mark, within=5.0)
        first = changes_after(seen, mark)[0]
        assert first["status"] == "online" and first["alarms"] == ()
        assert "ups.alarm" not in first["vars"]

        with pytest.raises(InvalidCommand, match="unknown command 'shutdown' for nut"):
            await device.command({"command": "shutdown"})
        assert (await device.command({"command": "refresh"}))["charge_percent"] == 10


@SHARED_LOOP
async def test_stale_or_missing_ups_driver_is_offline_with_upsds_reason(nut_server: Bench) -> None:
    bench = nut_server
    async with ups(bench) as device:  # no ups option: the only one
        await online(device, within=5.0)
        assert device.snapshot.state["ups"] == UPS
        await bench.set_state("ups-2", {"driver": "frozen"})  # returns once upsd says stale
        await eventually(lambda: not device.snapshot.online, within=5.0)
        assert "DATA-STALE" in device.snapshot.error
        assert "the UPS driver stopped sending fresh data" in device.snapshot.error

        await bench.set_state("ups-2", {"driver": "stopped"})
        await eventually(lambda: "DRIVER-NOT-CONNECTED" in device.snapshot.error, within=5.0)
        assert not device.snapshot.online

        await bench.set_state("ups-2", {"driver": "running", "status": "OB DISCHRG"})
        await eventually(
            lambda: device.snapshot.online and device.snapshot.state["on_battery"], within=5.0
        )
        assert device.snapshot.error == ""


@SHARED_LOOP
async def test_upsd_gone_or_hung_then_back(nut_server: Bench) -> None:
    bench = nut_server
    async with ups(bench, ups=UPS) as device:
        await online(device, within=5.0)
        await bench.set_state("ups-2", {"upsd": "stopped"})
        await eventually(lambda: "cannot open nut://" in device.snapshot.error, within=5.0)
        assert not device.snapshot.online and "111" in device.snapshot.error  # refused

        await bench.set_state("ups-2", {"upsd": "running"})
        await online(device, within=5.0)

        await bench.set_state("ups-2", {"upsd": "frozen"})  # connects, never answers
        await eventually(lambda: not device.snapshot.online, within=5.0)
        assert "did not answer" in device.snapshot.error
        assert "within 1 s" in device.snapshot.error

        await bench.set_state("ups-2", {"upsd": "running"})
        await online(device, within=5.0)
        assert device.snapshot.state["status"] == "online"


@SHARED_LOOP
async def test_credentials_are_checked_at_login(nut_server: Bench) -> None:
    bench = nut_server
    good = ups(bench, ups=UPS, **USER)
    wrong = ups(bench, ups=UPS, username="monitor", password="not-the-password")
    unchecked = ups(bench, ups=UPS, username="monitor", password="nope", login=False)
    unknown = ups(bench, ups="rack-b9")
    async with good, wrong, unchecked, unknown:
        await online(good, within=5.0)
        await eventually(lambda: wrong.snapshot.error != "not started", within=5.0)
        assert not wrong.snapshot.online
        assert wrong.snapshot.error.startswith("upsd LOGIN as 'monitor': ACCESS-DENIED")
        assert "not-the-password" not in wrong.snapshot.error
        # without LOGIN upsd never checks the password: reading needs none
        await online(unchecked, within=5.0)
        await eventually(lambda: "UNKNOWN-UPS" in unknown.snapshot.error, within=5.0)
        transport = bench.site_transport("ups-2")
        async with await nut.NutClient.connect("127.0.0.1", transport["port"], limit=3.0) as client:
            answer = await client.request(nut.Request(("GET", "NUMLOGINS", UPS)))
        assert answer == nut.Text(f"NUMLOGINS {UPS} 1")  # only the good one logged in


def test_config_errors_are_precise() -> None:
    with pytest.raises(DeviceConfigError, match="needs a tcp transport"):
        driver_for("nut")(device_config("nut", {"kind": "serial", "port": "loop://"}))
    with pytest.raises(DeviceConfigError, match="username and password go together"):
        driver_for("nut")(
            device_config(
                "nut", {"kind": "tcp", "host": "127.0.0.1", "port": 3493}, options={"username": "u"}
            )
        )


@pytest.mark.parametrize(
    ("status", "expected", "on_battery", "low"),
    [
        ("OL", "online", False, False),
        ("OL CHRG LB", "low_battery", False, True),
        ("OB DISCHRG", "on_battery", True, False),
        ("OB LB", "low_battery", True, True),
        ("FSD OL", "low_battery", True, True),  # forced shutdown: treat like OB LB
        ("OL BYPASS", "bypass", False, False),
        ("OFF", "off", False, False),
        ("WAIT", "unknown", False, False),
        ("", "unknown", False, False),
    ],
)
def test_status_flags_map_to_the_ups_capability(
    status: str, expected: str, on_battery: bool, low: bool
) -> None:
    state = ups_state("u", {"ups.status": status, "battery.charge": "55.5"})
    assert (state["status"], state["on_battery"], state["battery_low"]) == (
        expected,
        on_battery,
        low,
    )
    assert state["charge_percent"] == 55.5 and state["minutes_remaining"] is None
    assert ups_state("u", {"ups.status": "OL ALARM"})["alarms"] == ["ALARM"]
    assert ups_state("u", {"ups.status": "OL RB OVER ECO"})["flags"] == ["OL", "RB", "OVER", "ECO"]
