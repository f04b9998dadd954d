"""The VISCA driver against the lab's camera simulator, over serial (pty) and over IP (UDP)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from devices.capabilities import Ptz
from devices.errors import DeviceCommandError, DeviceConfigError, DeviceTimeout, InvalidCommand
from devices.registry import driver_for
from protocols import visca
from tests.devices.avpeers import driver, fault, simulator
from tests.devices.peers import device_config, eventually, online

KINDS = ["pty", "udp"]
PRESETS = {"3": {"pan": 300, "tilt": -40, "zoom": 1200}}


@pytest.mark.parametrize("kind", KINDS)
async def test_drive_zoom_presets_and_home(kind: str) -> None:
    async with simulator("visca", kind, presets=PRESETS) as sim, driver(sim, timeout=2.0) as device:
        await online(device, 10)
        state = device.snapshot.state
        assert Ptz.missing_state(state) == []
        assert (state["power"], state["pan"], state["tilt"], state["preset"]) == (
            "on",
            0,
            0,
            None,
        )
        moved = await device.command({"command": "move", "pan": 1, "tilt": -1, "speed": 24})
        assert moved == {"pan": 1, "tilt": -1, "speed": 24}
        await eventually(lambda: sim.snapshot()["pan"] > 0 and sim.snapshot()["tilt"] < 0)
        await device.command({"command": "stop"})
        assert (sim.snapshot()["pan_drive"], sim.snapshot()["tilt_drive"]) == (0, 0)
        refreshed = await device.command({"command": "refresh"})
        assert refreshed["pan"] == sim.snapshot()["pan"] > 0
        assert await device.command({"command": "zoom", "direction": "in"}) == {"zoom": "in"}
        await device.command({"command": "zoom", "direction": "stop"})
        recall = {"command": "preset_recall", "preset": 3}
        assert await device.command(recall) == {
            "pan": 300,
            "tilt": -40,
            "zoom": 1200,
            "preset": 3,
        }
        assert Ptz.verify(recall, device.snapshot.state)
        assert await device.command({"command": "preset_store", "preset": 4}) == {
            "preset_stored": 4
        }
        assert sim.snapshot()["presets"]["4"] == {"pan": 300, "tilt": -40, "zoom": 1200}
        home = await device.command({"command": "home"})
        assert (home["pan"], home["tilt"], home["preset"]) == (0, 0, None)
        assert Ptz.verify({"command": "home"}, device.snapshot.state)


@pytest.mark.parametrize("kind", KINDS)
async def test_camera_error_replies_carry_the_visca_code(kind: str) -> None:
    async with simulator("visca", kind) as sim, driver(sim, timeout=2.0) as device:
        await online(device, 10)
        with pytest.raises(DeviceCommandError) as empty:
            await device.command({"command": "preset_recall", "preset": 9})  # never stored
        assert (empty.value.code, empty.value.reason) == (
            "41",
            "command not executable (after command 01 04 3f 02 09)",
        )
        fault(sim, "error", code="03")
        with pytest.raises(DeviceCommandError, match="03: command buffer full"):
            await device.command({"command": "home"})
        fault(sim, "error", code="02")
        with pytest.raises(DeviceCommandError, match="02: syntax error"):
            await device.command({"command": "zoom", "direction": "out"})
        sim.clear()
        sim.set_state({"power": False})
        with pytest.raises(DeviceCommandError, match="41: command not executable"):
            await device.command({"command": "move", "pan": 1, "tilt": 0})
        await eventually(lambda: device.snapshot.state["power"] == "off")
        with pytest.raises(InvalidCommand, match=r"'preset' must be 0\.\.15, got 20"):
            await device.command({"command": "preset_recall", "preset": 20})
        with pytest.raises(InvalidCommand, match="'pan' must be one of -1, 0 or 1, got 2"):
            await device.command({"command": "move", "pan": 2})


@pytest.mark.parametrize("kind", KINDS)
async def test_camera_that_never_completes_times_out_and_recovers(kind: str) -> None:
    options = {"completion_timeout": 0.5}
    async with (
        simulator("visca", kind, presets=PRESETS, move_time=30) as sim,
        driver(sim, timeout=2.0, options=options) as device,
    ):
        await online(device, 10)
        # ACKed, but the completion never comes within the limit
        with pytest.raises(DeviceTimeout, match="no completion of command 01 04 3f 02 03"):
            await device.command({"command": "preset_recall", "preset": 3})
        await eventually(lambda: not device.snapshot.online)
        await online(device, 10)  # reconnected: IF_Clear (serial) / RESET (IP) first
        sim.set_state({"move_time": 0.05})
        assert (await device.command({"command": "preset_recall", "preset": 3}))["pan"] == 300


@pytest.mark.parametrize("kind", KINDS)
async def test_camera_that_goes_silent_mid_command(kind: str) -> None:
    async with simulator("visca", kind) as sim, driver(sim, timeout=0.5) as device:
        await online(device, 10)
        fault(sim, "disconnect")  # serial: cable pulled; IP: nothing answers
        with pytest.raises(DeviceTimeout, match="no answer to"):
            await device.command({"command": "home"})
        await eventually(lambda: not device.snapshot.online)
        sim.clear()
        await online(device, 10)
        assert (await device.command({"command": "home"}))["pan"] == 0


class ScriptedIpCamera(asyncio.DatagramProtocol):
    """A raw VISCA-over-IP peer that answers each command late and out of order."""

    def __init__(self) -> None:
        self.sequences: list[tuple[int, int]] = []  # (payload type, sequence) received
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def reply(self, kind: int, sequence: int, payload: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.transport.sendto(
            bytes(visca.IpMessage(visca.PayloadType(kind), sequence, payload)), addr
        )

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message = visca.IpMessage.parse(data)
        seq = message.sequence
        self.sequences.append((int(message.payload_type), seq))
        if message.payload_type is visca.PayloadType.CONTROL:
            self.reply(0x0201, seq, b"\x01", addr)
            return
        body = message.payload[1:-1]
        if body == visca.POWER_INQUIRY:
            self.reply(0x0111, seq, bytes.fromhex("90 50 02 ff"), addr)
        elif body == visca.PAN_TILT_INQUIRY:
            self.reply(0x0111, seq, bytes.fromhex("90 50 00 00 00 00 00 00 00 00 ff"), addr)
        elif body == visca.ZOOM_INQUIRY:
            self.reply(0x0111, seq, bytes.fromhex("90 50 00 00 00 00 ff"), addr)
        else:
            # a stale completion of an earlier command, then this one's ACK and completion
            self.reply(0x0111, seq - 1, bytes.fromhex("90 61 41 ff"), addr)
            self.reply(0x0111, seq, bytes.fromhex("90 41 ff"), addr)
            self.reply(0x0111, seq - 1, bytes.fromhex("90 51 ff"), addr)
            self.reply(0x0111, seq, bytes.fromhex("90 51 ff"), addr)


async def test_visca_over_ip_matches_replies_by_sequence_number() -> None:
    loop = asyncio.get_running_loop()
    camera = ScriptedIpCamera()
    transport, _ = await loop.create_datagram_endpoint(lambda: camera, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        config = device_config("visca", {"kind": "udp", "host": "127.0.0.1", "port": port})
        async with driver_for("visca")(config) as device:
            await online(device, 10)
            for _ in range(3):
                assert (await device.command({"command": "home"}))["pan"] == 0
        assert camera.sequences[0] == (0x0200, 0)  # RESET first
        numbers = [seq for _, seq in camera.sequences[1:]]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
        assert numbers[0] == 1
    finally:
        transport.close()


def test_visca_needs_serial_or_udp() -> None:
    tcp = {"kind": "tcp", "host": "127.0.0.1", "port": 1}
    with pytest.raises(DeviceConfigError, match="needs a serial or udp transport, not 'tcp'"):
        driver_for("visca")(device_config("visca", tcp))


async def test_ip_camera_port_closed_is_offline_with_the_reason() -> None:
    async with simulator("visca", "udp") as sim, driver(sim, timeout=0.5) as device:
        await online(device, 10)
        fault(sim, "refuse")
        await asyncio.sleep(0.1)
        await eventually(lambda: not device.snapshot.online, 10)
        assert "udp://127.0.0.1:" in device.snapshot.error or "no answer" in device.snapshot.error
        sim.clear()
        await online(device, 10)
