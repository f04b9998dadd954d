"""The kenwood-cat driver over a real serial line (a pty) and over pyserial ``loop://``."""

from __future__ import annotations

from typing import Any

import pytest

from devices.base import Device
from devices.config import SerialTransport
from devices.errors import DeviceCommandError, InvalidCommand
from devices.link import open_link
from devices.registry import driver_for
from protocols import kenwood_cat as cat
from tests.devices.peers import CatRadio, device_config, eventually, online


def radio_device(port: str, **overrides: Any) -> Device[Any]:
    transport = {"kind": "serial", "port": port, "baudrate": 9600}
    device: Device[Any] = driver_for("kenwood-cat")(
        device_config("kenwood-cat", transport, id="hf-1", **overrides)
    )
    return device


async def test_polls_frequency_mode_and_tx_state(cat_radio: CatRadio) -> None:
    async with radio_device(cat_radio.path) as device:
        await online(device)
        assert dict(device.snapshot.state) == {
            "frequency_hz": 14_250_000,
            "mode": "USB",
            "transmitting": False,
            "split": False,
        }
        assert cat_radio.received[:3] == [b"FA;", b"MD;", b"IF;"]


async def test_commands_set_and_verify(cat_radio: CatRadio) -> None:
    async with radio_device(cat_radio.path, poll_interval=5.0) as device:
        await online(device)
        result = await device.command({"command": "set_frequency", "hz": 7_100_000})
        assert result == {"frequency_hz": 7_100_000}
        assert cat_radio.frequency == 7_100_000
        assert await device.command({"command": "set_mode", "mode": "lsb"}) == {"mode": "LSB"}
        assert cat_radio.received[-2:] == [b"MD1;", b"MD;"]
        assert await device.command({"command": "ptt", "on": True}) == {"transmitting": True}
        assert cat_radio.received[-2:] == [b"TX;", b"IF;"]
        assert device.snapshot.state["transmitting"] is True
        assert await device.command({"command": "ptt", "on": False}) == {"transmitting": False}
        assert cat_radio.received[-2:] == [b"RX;", b"IF;"]
        assert device.snapshot.state["frequency_hz"] == 7_100_000


async def test_radio_errors_carry_the_cat_code(cat_radio: CatRadio) -> None:
    async with radio_device(cat_radio.path, poll_interval=5.0) as device:
        await online(device)
        with pytest.raises(DeviceCommandError) as excinfo:
            await device.command({"command": "set_frequency", "hz": 70_000_000})
        assert excinfo.value.code == "?"
        assert "syntax error" in excinfo.value.reason
        with pytest.raises(InvalidCommand, match="unknown mode 'SSB'"):
            await device.command({"command": "set_mode", "mode": "SSB"})
        with pytest.raises(InvalidCommand, match="'on' must be true/false"):
            await device.command({"command": "ptt", "on": "yes"})
        # the radio is still answering after the rejected command
        assert (await device.command({"command": "refresh"}))["frequency_hz"] == 14_250_000


async def test_auto_information_updates_the_snapshot(cat_radio: CatRadio) -> None:
    async with radio_device(cat_radio.path, poll_interval=5.0) as device:
        await online(device)
        cat_radio.send(cat.Frequency("A", 3_650_000))
        cat_radio.send(cat.OperatingMode(cat.Mode.AM))
        await eventually(lambda: device.snapshot.state["mode"] == "AM")
        assert device.snapshot.state["frequency_hz"] == 3_650_000


async def test_silent_radio_goes_offline_and_comes_back(cat_radio: CatRadio) -> None:
    async with radio_device(cat_radio.path, timeout=0.1, poll_interval=0.1) as device:
        await online(device)
        cat_radio.silent = True
        await eventually(lambda: not device.snapshot.online)
        assert device.snapshot.error.startswith("no answer to b'FA;' within 0.1 s")
        cat_radio.silent = False
        await online(device)


async def test_serial_url_link_loops_bytes_back() -> None:
    link = await open_link(SerialTransport(kind="serial", port="loop://"), 1.0)
    try:
        await link.write(b"FA;MD;")
        received = b""
        while len(received) < 6:
            received += await link.read()
        assert received == b"FA;MD;"
    finally:
        await link.close()


async def test_radio_on_a_loop_url_hears_only_itself() -> None:
    # loop:// echoes the driver's own queries: nothing answers, so the radio stays offline
    async with radio_device("loop://", timeout=0.1) as device:
        await eventually(lambda: device.snapshot.error != "not started")
        assert not device.snapshot.online
        assert device.snapshot.error == "no answer to b'FA;' within 0.1 s (1 attempt)"
