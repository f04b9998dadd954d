"""Sony VISCA PTZ cameras over serial or VISCA over IP (UDP 52381): drive, zoom, presets.

A command is in flight until its completion (ACK first, then ``y0 5z FF`` in the same
socket); inquiries poll power, pan/tilt and zoom. Over IP every request carries a sequence
number, and a RESET starts the count on each (re)connect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from devices.base import DeviceOptions
from devices.capabilities import (
    CapabilityCommand,
    Home,
    Move,
    PresetRecall,
    PresetStore,
    Ptz,
    Stop,
    Zoom,
    validate_command,
)
from devices.errors import DeviceCommandError, DeviceTimeout, InvalidCommand
from devices.registry import register
from devices.stream import StreamDevice
from protocols import visca
from protocols.framing import Framer

ZOOM_ACTIONS = {
    "in": visca.ZoomAction.TELE,
    "out": visca.ZoomAction.WIDE,
    "stop": visca.ZoomAction.STOP,
}


class ViscaOptions(DeviceOptions):
    address: int = Field(1, ge=1, le=7, description="camera address on the serial chain")
    completion_timeout: float = Field(
        10.0, gt=0, le=120, description="s a command may run before its completion (moves)"
    )
    max_pan_speed: int = Field(visca.MAX_PAN_SPEED, ge=1, le=visca.MAX_PAN_SPEED)
    max_tilt_speed: int = Field(0x14, ge=1, le=visca.MAX_TILT_SPEED)
    presets: int = Field(16, ge=1, le=visca.MAX_PRESET + 1, description="presets 0..N-1")


@dataclass(frozen=True)
class Incoming:
    """A camera message; over IP with its sequence number (``control`` for control replies)."""

    reply: visca.Reply | None
    sequence: int | None = None
    control: bytes = b""


def _camera_error(error: visca.ViscaError, what: str) -> DeviceCommandError:
    return DeviceCommandError(error.device_code, f"{error.reason} (after {what})")


@register("visca")
class ViscaCamera(StreamDevice[CapabilityCommand, Incoming]):
    """State (Ptz): ``power``, ``pan``, ``tilt``, ``zoom``, ``preset`` (last recalled)."""

    Options = ViscaOptions
    options: ViscaOptions
    capabilities = (Ptz,)
    transport_kinds = ("serial", "udp")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ip = self.transport.kind == "udp"
        self._sequence = 0
        self._greeted = False
        self._awaiting: int | None = None  # sequence (IP) or -1 (serial) of the command in flight
        self._finished: dict[int, visca.Completion | visca.ViscaError] = {}
        self._finish = asyncio.Event()
        self._preset: int | None = None

    # --- framing ----------------------------------------------------------------------

    def _framer(self) -> Framer:
        self._greeted = False  # a new link: clear the camera / reset the sequence again
        return visca.DatagramFramer() if self._ip else visca.serial_framer()

    def _decode(self, frame: bytes) -> Incoming:
        if not self._ip:
            return Incoming(self._own(visca.parse_reply(frame)))
        message = visca.IpMessage.parse(frame)
        if message.payload_type is visca.PayloadType.CONTROL_REPLY:
            return Incoming(None, message.sequence, message.payload)
        if message.payload_type is not visca.PayloadType.REPLY:
            raise ValueError(f"unexpected {message.payload_type.name} datagram from a camera")
        return Incoming(self._own(visca.parse_reply(message.payload)), message.sequence)

    def _own(self, reply: visca.Reply) -> visca.Reply:
        address = getattr(reply, "address", None)
        if not self._ip and address is not None and address != self.options.address:
            raise ValueError(f"reply from camera {address}, not {self.options.address}")
        return reply

    # --- requests ---------------------------------------------------------------------

    def _frame(self, packet: visca.Packet) -> tuple[bytes, int | None]:
        if not self._ip:
            return bytes(packet), None
        self._sequence = (self._sequence + 1) & visca.MAX_SEQUENCE
        return bytes(visca.IpMessage.wrap(packet, self._sequence)), self._sequence

    def _matches(self, message: Incoming, sequence: int | None) -> bool:
        return sequence is None or message.sequence == sequence

    def _control_error(self, message: Incoming, what: str) -> DeviceCommandError:
        self._greeted = False  # start the sequence again before the next request
        reason = visca.CONTROL_ERRORS.get(message.control, "control error")
        return DeviceCommandError(message.control.hex().upper(), f"{reason} (after {what})")

    async def _inquire(self, body: bytes) -> bytes:
        packet = visca.inquiry(self.options.address, body)
        data, sequence = self._frame(packet)

        def accepts(message: Incoming) -> bool:
            if not self._matches(message, sequence):
                return False
            reply = message.reply
            if reply is None:
                return True  # a control error about this sequence number
            return isinstance(reply, visca.ViscaError) or (
                isinstance(reply, visca.Completion) and reply.socket == 0 and bool(reply.data)
            )

        message = await self.transact(data, accepts)
        what = f"inquiry {body.hex(' ')}"
        if message.reply is None:
            raise self._control_error(message, what)
        if isinstance(message.reply, visca.ViscaError):
            raise _camera_error(message.reply, what)
        assert isinstance(message.reply, visca.Completion)
        return message.reply.data

    async def _command(self, packet: visca.Packet) -> None:
        """Send a command and wait for its completion (ACK first, unless it completes at once)."""
        data, sequence = self._frame(packet)
        what = f"command {packet.body.hex(' ')}"
        self._finished.clear()
        self._awaiting = -1 if sequence is None else sequence

        def accepts(message: Incoming) -> bool:
            if not self._matches(message, sequence):
                return False
            return message.reply is None or isinstance(
                message.reply, visca.Ack | visca.Completion | visca.ViscaError
            )

        try:
            message = await self.transact(data, accepts)
            if message.reply is None:
                raise self._control_error(message, what)
            if isinstance(message.reply, visca.ViscaError):
                raise _camera_error(message.reply, what)
            if isinstance(message.reply, visca.Completion):
                return
            assert isinstance(message.reply, visca.Ack)
            done = await self._completion(message.reply.socket, what)
            if isinstance(done, visca.ViscaError):
                raise _camera_error(done, what)
        finally:
            self._awaiting = None

    async def _completion(self, socket: int, what: str) -> visca.Completion | visca.ViscaError:
        limit = self.options.completion_timeout
        try:
            async with asyncio.timeout(limit):
                while socket not in self._finished:
                    self._finish.clear()
                    await self._finish.wait()
        except TimeoutError:
            reason = f"no completion of {what} within {limit:g} s"
            self._link_lost(reason)
            raise DeviceTimeout(f"device {self.id}: {reason}") from None
        return self._finished.pop(socket)

    def _on_unsolicited(self, message: Incoming) -> None:
        reply = message.reply
        in_flight = self._awaiting is not None and (
            not self._ip or message.sequence == self._awaiting
        )
        if in_flight and isinstance(reply, visca.Completion | visca.ViscaError) and reply.socket:
            self._finished[reply.socket] = reply
            self._finish.set()
        elif isinstance(reply, visca.Notice):
            self.log.info("camera notice %s", reply.data.hex(" "))
        else:
            self.log.debug("unsolicited %r", message)

    # --- polling ----------------------------------------------------------------------

    async def _greet(self) -> None:
        if self._ip:
            # RESET: the camera forgets the old sequence numbers; count from 0 again
            self._sequence = 0
            reset = bytes(visca.IpMessage.reset())
            message = await self.transact(reset, lambda m: m.reply is None)
            if message.control != visca.CONTROL_RESET:
                raise self._control_error(message, "RESET")
        # empty the camera's sockets: a command left running by a lost link would block both
        await self._command(visca.if_clear(self.options.address))
        self._greeted = True

    async def _fetch(self) -> Mapping[str, Any]:
        if not self._greeted:
            await self._greet()
        previous = self._snapshot.state
        on = visca.parse_power(await self._inquire(visca.POWER_INQUIRY))
        state: dict[str, Any] = {
            "power": "on" if on else "off",
            "pan": previous.get("pan"),
            "tilt": previous.get("tilt"),
            "zoom": previous.get("zoom"),
            "preset": self._preset,
        }
        if on:
            state.update(await self._positions())
        return state

    async def _positions(self) -> dict[str, int]:
        pan, tilt = visca.parse_pan_tilt(await self._inquire(visca.PAN_TILT_INQUIRY))
        zoom = visca.parse_zoom(await self._inquire(visca.ZOOM_INQUIRY))
        return {"pan": pan, "tilt": tilt, "zoom": zoom}

    # --- commands ---------------------------------------------------------------------

    def _prepare(self, command: Mapping[str, Any]) -> CapabilityCommand:
        prepared = validate_command(self.capabilities, command, self.config.type)
        if isinstance(prepared, PresetRecall | PresetStore):
            limit = self.options.presets - 1
            if prepared.preset > limit:
                raise InvalidCommand(f"'preset' must be 0..{limit}, got {prepared.preset}")
        return prepared

    async def _execute(self, command: CapabilityCommand) -> dict[str, Any]:
        address = self.options.address
        if isinstance(command, Move | Stop):
            pan, tilt, speed = (
                (command.pan, command.tilt, command.speed)
                if isinstance(command, Move)
                else (0, 0, 1)
            )
            await self._command(
                visca.pan_tilt_drive(
                    address,
                    pan,
                    tilt,
                    min(speed, self.options.max_pan_speed),
                    min(speed, self.options.max_tilt_speed),
                )
            )
            return {"pan": pan, "tilt": tilt, "speed": speed}
        if isinstance(command, Zoom):
            await self._command(visca.zoom(address, ZOOM_ACTIONS[command.direction]))
            return {"zoom": command.direction}
        if isinstance(command, PresetStore):
            await self._command(visca.memory(address, visca.MemoryAction.SET, command.preset))
            return {"preset_stored": command.preset}
        if isinstance(command, PresetRecall):
            await self._command(visca.memory(address, visca.MemoryAction.RECALL, command.preset))
            self._preset = command.preset
        else:
            assert isinstance(command, Home)
            await self._command(visca.home(address))
            self._preset = None
        positions = await self._positions()
        self._merge_state({**positions, "preset": self._preset})
        return {**positions, "preset": self._preset}


__all__ = ["ViscaCamera", "ViscaOptions"]
