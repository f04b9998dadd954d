"""Sony VISCA PTZ camera simulator: serial on a pty, or VISCA over IP on UDP (52381 on hardware).

``ViscaCamera`` is the sans-IO core: a packet body in, replies out through a callback (the
completion of a preset recall comes later, when the move is over). Pan, tilt and zoom move
while a drive is on, so the position inquiries see the camera turn.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from lab.registry import register
from lab.sims.streams import Session, SessionOutbox, StreamSimulator
from lab.simulator import SimState

PAN_LIMIT = 0x0990  # about +/-170 degrees in the units of an EVI-H100S
TILT_LIMIT = 0x0510
ZOOM_MAX = 0x4000
TICK = 0.05  # s between position updates while driving
UNITS_PER_SPEED = 24  # position units per tick per speed step

HEADER = struct.Struct(">HHI")
COMMAND, INQUIRY, REPLY, CONTROL, CONTROL_REPLY = 0x0100, 0x0110, 0x0111, 0x0200, 0x0201
SYNTAX, BUFFER_FULL, NOT_EXECUTABLE, LENGTH = 0x02, 0x03, 0x41, 0x01

Reply = Callable[[bytes], None]


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pan: int = 0
    tilt: int = 0
    zoom: int = 0


class ViscaState(SimState):
    address: int = Field(1, ge=1, le=7)
    power: bool = True
    pan: int = Field(0, ge=-PAN_LIMIT, le=PAN_LIMIT)
    tilt: int = Field(0, ge=-TILT_LIMIT, le=TILT_LIMIT)
    zoom: int = Field(0, ge=0, le=ZOOM_MAX)
    pan_drive: Literal[-1, 0, 1] = 0
    tilt_drive: Literal[-1, 0, 1] = 0
    zoom_drive: Literal[-1, 0, 1] = 0
    drive_speed: int = Field(8, ge=1, le=0x18)
    presets: dict[int, Preset] = Field({}, description="preset number -> stored position")
    max_preset: int = Field(127, ge=0, le=127)
    move_time: float = Field(0.2, ge=0, le=30, description="s a preset recall or home takes")


def _nibbles(value: int, count: int) -> bytes:
    value &= (1 << (4 * count)) - 1
    return bytes((value >> (4 * (count - 1 - i))) & 0x0F for i in range(count))


class ViscaCamera:
    """Interprets one packet body (between ``8x`` and ``FF``) and answers through ``reply``."""

    def __init__(self, sim: ViscaSimulator, reply: Reply) -> None:
        self.sim = sim
        self.state: ViscaState = sim.state
        self.reply = reply
        self.head = 0x80 | (self.state.address << 4)

    def _send(self, *body: int) -> None:
        self.reply(bytes([self.head, *body, 0xFF]))

    def error(self, socket: int, code: int) -> None:
        self._send(0x60 | socket, code)

    def handle(self, body: bytes) -> None:
        if not body:
            self.error(0, SYNTAX)
        elif body[0] == 0x09:
            self._inquiry(body[1:])
        elif body[0] == 0x01:
            self._command(body[1:])
        else:
            self.error(0, SYNTAX)

    def _inquiry(self, body: bytes) -> None:
        s = self.state
        if body == b"\x04\x00":
            self._send(0x50, 0x02 if s.power else 0x03)
        elif not s.power:
            self.error(0, NOT_EXECUTABLE)
        elif body == b"\x06\x12":
            self._send(0x50, *_nibbles(s.pan, 4), *_nibbles(s.tilt, 4))
        elif body == b"\x04\x47":
            self._send(0x50, *_nibbles(s.zoom, 4))
        else:
            self.error(0, SYNTAX)

    def _command(self, body: bytes) -> None:
        s = self.state
        if body == b"\x00\x01":  # IF_Clear: buffers emptied, answered at once
            self.sim.cancel_moves()
            self._send(0x50)
            return
        if body[:2] == b"\x04\x00" and len(body) == 3 and body[2] in (2, 3):
            self._accept(lambda: setattr(s, "power", body[2] == 2))
            return
        if not s.power:
            self.error(0, NOT_EXECUTABLE)
            return
        if body[:2] == b"\x06\x01" and len(body) == 6:
            self._drive(body[2], body[3], body[4], body[5])
        elif body == b"\x06\x04":
            self._move(Preset())
        elif body[:2] == b"\x04\x07" and len(body) == 3 and body[2] in (0, 2, 3):
            direction: Literal[-1, 0, 1] = {0: 0, 2: 1, 3: -1}[body[2]]  # type: ignore[assignment]
            self._accept(lambda: setattr(s, "zoom_drive", direction))
        elif body[:2] == b"\x04\x3f" and len(body) == 4 and body[2] in (0, 1, 2):
            self._memory(body[2], body[3])
        else:
            self.error(0, SYNTAX)

    def _accept(self, action: Callable[[], None]) -> None:
        """ACK in socket 1, act, complete at once."""
        self._send(0x41)
        action()
        self._send(0x51)

    def _drive(self, pan_speed: int, tilt_speed: int, pan: int, tilt: int) -> None:
        if not 1 <= pan_speed <= 0x18 or not 1 <= tilt_speed <= 0x17 or pan > 3 or tilt > 3:
            self.error(0, SYNTAX)
            return
        if pan == 0 or tilt == 0:
            self.error(0, SYNTAX)
            return
        s = self.state

        def go() -> None:
            s.pan_drive = {1: -1, 2: 1, 3: 0}[pan]  # type: ignore[assignment]
            s.tilt_drive = {1: 1, 2: -1, 3: 0}[tilt]  # type: ignore[assignment]
            s.drive_speed = pan_speed

        self._accept(go)

    def _memory(self, action: int, preset: int) -> None:
        s = self.state
        if preset > s.max_preset:
            self.error(0, SYNTAX)
        elif action == 1:
            stored = Preset(pan=s.pan, tilt=s.tilt, zoom=s.zoom)
            self._accept(lambda: setattr(s, "presets", {**s.presets, preset: stored}))
        elif action == 0:
            self._accept(
                lambda: setattr(s, "presets", {k: v for k, v in s.presets.items() if k != preset})
            )
        elif preset not in s.presets:
            self.error(0, NOT_EXECUTABLE)
        else:
            self._move(s.presets[preset])

    def _move(self, target: Preset) -> None:
        """A move that completes later (socket 2 while it runs; a second one: buffer full)."""
        if not self.sim.start_move(target, self):
            self.error(0, BUFFER_FULL)
            return
        self._send(0x42)


class ViscaSerialSession(Session):
    """The camera's serial line: packets end with ``FF``."""

    sim: ViscaSimulator

    def __init__(self, sim: ViscaSimulator, outbox: SessionOutbox) -> None:
        super().__init__(sim, outbox)
        self._buffer = bytearray()

    def received(self, data: bytes) -> None:
        for byte in data:
            if byte != 0xFF:
                self._buffer.append(byte)
                if len(self._buffer) > 15:
                    self._buffer.clear()
                    ViscaCamera(self.sim, self.send).error(0, LENGTH)
                continue
            packet, self._buffer = bytes(self._buffer), bytearray()
            self.sim.check_crash()
            if len(packet) < 2 or packet[0] & 0xF0 != 0x80:
                continue  # noise on the line
            target = packet[0] & 0x0F
            if target not in (self.sim.state.address, 8):
                continue  # another camera on the daisy chain
            self.sim.answer(packet[1:], self.send)


@register("visca")
class ViscaSimulator(StreamSimulator):
    """A PTZ camera on a pty (serial VISCA) or a UDP port (VISCA over IP)."""

    resource_kinds: ClassVar[tuple[str, ...]] = ("pty", "udp")
    state_model = ViscaState
    state: ViscaState

    _udp: asyncio.DatagramTransport | None = None
    _moving: asyncio.Task[Any] | None = None

    # -- transports -----------------------------------------------------------------------

    async def _open(self) -> None:
        self.spawn(self._drive_clock(), "drive clock")
        if self.kind != "udp":
            await super()._open()
            return
        self._conversations = {}
        self.host = getattr(self.device.resource, "host", "127.0.0.1")
        self.port = getattr(self.device.resource, "port", 0)
        await self._bind()
        self._last_sequence: dict[Any, int] = {}

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpCamera(self), local_addr=(self.host, self.port)
        )
        self._udp = transport
        self.port = transport.get_extra_info("sockname")[1]

    async def _close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        await super()._close()

    async def _on_link(self, down: bool) -> None:
        if self.kind != "udp":
            return
        if down and self._udp is not None:
            self._udp.close()  # the port is closed: ICMP unreachable
            self._udp = None
        elif not down and self._udp is None:
            await self._bind()

    def site_transport(self) -> dict[str, Any]:
        if self.kind == "udp":
            return {"kind": "udp", "host": self.host, "port": self.port}
        return super().site_transport()

    def new_session(self, outbox: SessionOutbox) -> Session:
        return ViscaSerialSession(self, outbox)

    # -- the camera -----------------------------------------------------------------------

    def answer(self, body: bytes, reply: Reply) -> None:
        """One packet for this camera; injected error codes replace the answer."""
        code = self.faults.error_code("41")
        if code is not None:
            try:
                value = int(code, 16)
            except ValueError:
                value = NOT_EXECUTABLE
            ViscaCamera(self, reply).error(0, value & 0x7F)
            return
        ViscaCamera(self, reply).handle(body)

    def start_move(self, target: Preset, camera: ViscaCamera) -> bool:
        if self._moving is not None and not self._moving.done():
            return False
        self._moving = self.spawn(self._move(target, camera), "move")
        return True

    async def _move(self, target: Preset, camera: ViscaCamera) -> None:
        await asyncio.sleep(self.state.move_time)
        s = self.state
        s.pan_drive = s.tilt_drive = s.zoom_drive = 0
        s.pan, s.tilt, s.zoom = target.pan, target.tilt, target.zoom
        if not self.faults.silent():
            camera._send(0x52)

    def cancel_moves(self) -> None:
        if self._moving is not None:
            self._moving.cancel()
            self._moving = None
        s = self.state
        s.pan_drive = s.tilt_drive = s.zoom_drive = 0

    async def _drive_clock(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            now, ticks = time.monotonic(), (time.monotonic() - last) / TICK
            last = now
            s = self.state
            step = int(UNITS_PER_SPEED * s.drive_speed * ticks)
            if s.pan_drive:
                s.pan = max(-PAN_LIMIT, min(PAN_LIMIT, s.pan + s.pan_drive * step))
            if s.tilt_drive:
                s.tilt = max(-TILT_LIMIT, min(TILT_LIMIT, s.tilt + s.tilt_drive * step))
            if s.zoom_drive:
                s.zoom = max(0, min(ZOOM_MAX, s.zoom + s.zoom_drive * int(200 * ticks)))

    # -- VISCA over IP --------------------------------------------------------------------

    def datagram(self, data: bytes, addr: Any) -> None:
        if self.faults.silent() or self.link_down or self._udp is None:
            return
        self.check_crash()
        udp = self._udp

        def send(kind: int, sequence: int, payload: bytes) -> None:
            due = self.faults.reply_delay()
            datagram = self.faults.mangle(
                HEADER.pack(kind, len(payload), sequence) + payload, per_datagram=True
            )
            if not datagram:
                return
            if due:
                asyncio.get_running_loop().call_later(due, self._sendto, udp, datagram, addr)
            else:
                self._sendto(udp, datagram, addr)

        if len(data) < HEADER.size + 1:
            return  # too short to answer: a camera drops it
        kind, length, sequence = HEADER.unpack_from(data)
        payload = data[HEADER.size :]
        if length != len(payload) or kind not in (COMMAND, INQUIRY, CONTROL):
            send(CONTROL_REPLY, sequence, b"\x0f\x02")  # abnormality in the message
            return
        if kind == CONTROL:
            if payload == b"\x01":
                self._last_sequence[addr] = -1
                send(CONTROL_REPLY, sequence, b"\x01")
            else:
                send(CONTROL_REPLY, sequence, b"\x0f\x02")
            return
        last = self._last_sequence.get(addr, -1)
        if sequence < last:
            send(CONTROL_REPLY, sequence, b"\x0f\x01")  # abnormality in the sequence number
            return
        self._last_sequence[addr] = sequence
        if len(payload) < 3 or payload[-1] != 0xFF or payload[0] & 0xF0 != 0x80:
            ViscaCamera(self, lambda b: send(REPLY, sequence, b)).error(0, SYNTAX)
            return
        self.answer(payload[1:-1], lambda b: send(REPLY, sequence, b))

    @staticmethod
    def _sendto(udp: asyncio.DatagramTransport, datagram: bytes, addr: Any) -> None:
        if not udp.is_closing():
            udp.sendto(datagram, addr)


class _UdpCamera(asyncio.DatagramProtocol):
    def __init__(self, sim: ViscaSimulator) -> None:
        self.sim = sim

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.sim.datagram(data, addr)
        except Exception as err:  # loop boundary: this camera crashes, the bench goes on
            self.sim.crashed(err)


__all__ = ["Preset", "ViscaCamera", "ViscaSimulator", "ViscaState"]
