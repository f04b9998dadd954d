"""The PJLink driver against the lab's projector simulator: power cycle, input, auth, faults."""

from __future__ import annotations

import asyncio

import pytest

from devices.capabilities import Display
from devices.errors import DeviceCommandError, DeviceTimeout, DeviceUnavailable, InvalidCommand
from lab.sims.streams import StreamSimulator
from tests.devices.avpeers import driver, fault, simulator
from tests.devices.peers import eventually, online


async def test_power_cycle_and_input_with_warm_up() -> None:
    async with (
        simulator("pjlink", warm_up=0.4, cool_down=0.4, errors="000020") as sim,
        driver(sim, timeout=2.0, poll_interval=0.1) as device,
    ):
        await online(device, 10)
        state = device.snapshot.state
        assert Display.missing_state(state) == []
        assert (state["power"], state["name"], state["lamp_hours"]) == (
            "off",
            "Dispatch wall projector",
            1234,
        )
        assert state["errors"]["filter"] == "error" and state["errors"]["fan"] == "ok"
        on = {"command": "power", "on": True}
        assert await device.command(on) == {"power": "warming"}
        assert Display.verify(on, device.snapshot.state)
        # while warming the display refuses input changes: ERR3, unavailable time
        with pytest.raises(DeviceCommandError) as warming:
            await device.command({"command": "input", "input": "32"})
        assert warming.value.code == "ERR3"
        assert "unavailable time" in warming.value.reason
        await eventually(lambda: device.snapshot.state["power"] == "on", 10)
        assert await device.command({"command": "input", "input": "32"}) == {"input": "32"}
        assert sim.snapshot()["input"] == "32"
        await eventually(lambda: device.snapshot.state["input"] == "32")
        with pytest.raises(DeviceCommandError, match="ERR2: out of parameter"):
            await device.command({"command": "input", "input": "59"})  # no such input
        with pytest.raises(InvalidCommand, match="'input' String should match pattern"):
            await device.command({"command": "input", "input": "HDMI1"})
        assert await device.command({"command": "power", "on": False}) == {"power": "cooling"}
        await eventually(lambda: device.snapshot.state["power"] == "off", 10)
        assert device.snapshot.state["input"] == "32"  # remembered while in standby


async def test_password_is_sent_as_the_md5_digest() -> None:
    options = {"password": "JBMIAProjectorLink"}
    async with (
        simulator("pjlink", password="JBMIAProjectorLink", power="on") as sim,
        driver(sim, timeout=2.0, options=options) as device,
    ):
        await online(device, 10)
        assert device.snapshot.state["power"] == "on"
        assert await device.command({"command": "input", "input": "11"}) == {"input": "11"}


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"password": "wrong"}, "wrong PJLink password (the display answered PJLINK ERRA)"),
        ({}, "the display requires a PJLink password; none is configured"),
    ],
)
async def test_bad_password_is_an_auth_failure_not_a_reconnect_storm(
    options: dict[str, str], reason: str
) -> None:
    async with (
        simulator("pjlink", password="secret") as sim,
        driver(sim, timeout=2.0, options=options) as device,
    ):
        await eventually(lambda: device.snapshot.error.startswith("auth-failed"), 10)
        assert device.snapshot.error == f"auth-failed: {reason}; next try after 300 s"
        assert not device.snapshot.online
        assert isinstance(sim, StreamSimulator)
        attempts = sim.connections
        await asyncio.sleep(1.0)  # several reconnect periods (0.05..0.2 s) go by
        assert sim.connections == attempts == 1
        assert device.snapshot.error.startswith("auth-failed")
        with pytest.raises(DeviceUnavailable, match="is offline: auth-failed"):
            await device.command({"command": "power", "on": True})


async def test_display_failure_code_and_lampless_projector() -> None:
    async with (
        simulator("pjlink", lamp_hours=None, power="on") as sim,
        driver(sim, timeout=2.0) as device,
    ):
        await online(device, 10)
        assert device.snapshot.state["lamp_hours"] is None
        assert device.snapshot.state["lamps"] == ()
        fault(sim, "error", code="ERR4")
        with pytest.raises(DeviceCommandError) as failure:
            await device.command({"command": "power", "on": False})
        assert (failure.value.code, failure.value.reason) == (
            "ERR4",
            "projector/display failure (after '%1POWR 0')",
        )


async def test_display_that_stops_answering_times_out_and_recovers() -> None:
    async with simulator("pjlink", power="on") as sim, driver(sim, timeout=0.5) as device:
        await online(device, 10)
        fault(sim, "drop", rate=1.0)
        with pytest.raises(DeviceTimeout, match=r"no answer to b'%1INPT 12\\r' within 0.5 s"):
            await device.command({"command": "input", "input": "12"})
        await eventually(lambda: not device.snapshot.online)
        sim.clear()
        await online(device, 10)
        assert await device.command({"command": "input", "input": "12"}) == {"input": "12"}


async def test_idle_connection_closed_by_the_display_is_reopened() -> None:
    async with (
        simulator("pjlink", idle_timeout=0.3) as sim,
        driver(sim, timeout=2.0, poll_interval=5.0) as device,
    ):
        await online(device, 10)
        await eventually(lambda: not device.snapshot.online, 10)
        assert device.snapshot.error == "connection closed by the device"
        await online(device, 10)
        assert isinstance(sim, StreamSimulator) and sim.connections >= 2


def test_pjlink_needs_tcp() -> None:
    from devices.errors import DeviceConfigError
    from devices.registry import driver_for
    from tests.devices.peers import device_config

    serial = {"kind": "serial", "port": "/dev/ttyS0"}
    with pytest.raises(DeviceConfigError, match="needs a tcp transport, not 'serial'"):
        driver_for("pjlink")(device_config("pjlink", serial))
