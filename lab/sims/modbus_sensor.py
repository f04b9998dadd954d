"""Modbus sensor simulator: a Modbus TCP server and a Modbus RTU slave on a pseudo-terminal,
written here from the Modbus Application Protocol spec (independent of pymodbus, which the
hub uses as the client), serving holding (03) and input (04) registers.

Each point is an engineering value encoded as the real device would: ``raw = (value -
offset) / scale`` as int16/uint16/int32/uint32/float32, 32-bit values in either word order.
Faults: ``exception`` (answer every read with that exception code), ``garble`` (corrupt
the reply: bad CRC on RTU, a broken MBAP header on TCP), ``silent`` (answer nothing).

    python -m lab.sims.modbus_sensor --port 1502     # then: mbpoll -m tcp -p 1502 127.0.0.1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import struct
import termios
import tty
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from devices.tasks import TaskOwner
from monitoring.modbus import encode_words

logger = logging.getLogger(__name__)

MAX_READ = 125
RTU_GAP = 0.004  # seconds of silence that end an RTU frame (3.5 characters at 9600 baud)


class SensorPoint(BaseModel):
    """One reading served at wire ``address`` (0-based) by ``function`` 3 or 4."""

    model_config = ConfigDict(extra="forbid")
    name: str
    function: Literal[3, 4] = 3
    address: int = Field(ge=0, le=65535)
    type: Literal["int16", "uint16", "int32", "uint32", "float32"] = "uint16"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    value: float = 0.0


class SensorState(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    unit_id: int = Field(1, ge=1, le=247)
    points: list[SensorPoint] = []
    holes: Literal["zero", "exception"] = "zero"
    exception: int | None = Field(None, ge=1, le=255)
    garble: bool = False
    silent: bool = False


def crc16(data: bytes) -> int:
    """Modbus RTU CRC (polynomial 0xA001 reflected, initial 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(frame: bytes) -> bytes:
    return frame + struct.pack("<H", crc16(frame))


class ModbusSensor:
    """``async with ModbusSensor(state, tcp=True, rtu=True) as sim:`` — ``sim.port``,
    ``sim.rtu_path``; ``sim.set_value(name, v)`` changes a reading."""

    def __init__(
        self, state: SensorState, *, host: str = "127.0.0.1", tcp: bool = True, rtu: bool = False
    ) -> None:
        self.state = state
        self.host = host
        self._want_tcp = tcp
        self._want_rtu = rtu
        self._server: asyncio.Server | None = None
        self._tasks = TaskOwner(logger)
        self._master: int | None = None
        self._slave: int | None = None
        self._rx = bytearray()
        self._frame_timer: asyncio.TimerHandle | None = None
        self.port = 0
        self.rtu_path = ""
        self.requests = 0
        self.bad_frames = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> ModbusSensor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._want_tcp:
            self._server = await asyncio.start_server(self._tcp_client, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]
        if self._want_rtu:
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave, termios.TCSANOW)
            tty.setraw(self._master, termios.TCSANOW)
            self.rtu_path = os.ttyname(self._slave)
            os.set_blocking(self._master, False)
            asyncio.get_running_loop().add_reader(self._master, self._rtu_readable)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._tasks.close()
            await self._server.wait_closed()
            self._server = None
        if self._frame_timer is not None:
            self._frame_timer.cancel()
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            self._master = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    # -- state ------------------------------------------------------------------------------

    def set_value(self, name: str, value: float) -> None:
        for point in self.state.points:
            if point.name == name:
                point.value = value
                return
        raise KeyError(f"no point {name!r}")

    def registers(self, function: int) -> dict[int, int]:
        out: dict[int, int] = {}
        for point in self.state.points:
            if point.function != function:
                continue
            raw = (point.value - point.offset) / point.scale
            for i, word in enumerate(encode_words(raw, point.type, point.word_order)):
                out[point.address + i] = word
        return out

    # -- the application protocol (PDU in, PDU out) ----------------------------------------

    def answer(self, pdu: bytes) -> bytes:
        self.requests += 1
        function = pdu[0] if pdu else 0
        if self.state.exception is not None:
            return bytes([function | 0x80, self.state.exception])
        if function not in (3, 4):
            return bytes([function | 0x80, 1])  # illegal function
        if len(pdu) != 5:
            return bytes([function | 0x80, 3])  # illegal data value
        address, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= MAX_READ:
            return bytes([function | 0x80, 3])
        table = self.registers(function)
        words = []
        for wire in range(address, address + count):
            if wire not in table and self.state.holes == "exception":
                return bytes([function | 0x80, 2])  # illegal data address
            words.append(table.get(wire, 0))
        return bytes([function, 2 * count]) + struct.pack(f">{count}H", *words)

    # -- Modbus TCP (MBAP header) -------------------------------------------------------------

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.adopt(task)
        try:
            while True:
                header = await reader.readexactly(7)
                tid, protocol, length, unit = struct.unpack(">HHHB", header)
                if protocol != 0 or not 2 <= length <= 254:
                    self.bad_frames += 1
                    return  # not Modbus: hang up, as servers do
                pdu = await reader.readexactly(length - 1)
                if self.state.silent:
                    continue
                reply = self.answer(pdu)
                frame = struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply
                if self.state.garble:
                    frame = struct.pack(">HHHB", tid, 0x1234, 0xFFFF, unit) + reply
                writer.write(frame)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    # -- Modbus RTU on the pty (frames end with silence) ------------------------------------

    def _rtu_readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return
        self._rx += data
        if self._frame_timer is not None:
            self._frame_timer.cancel()
        self._frame_timer = asyncio.get_running_loop().call_later(RTU_GAP, self._rtu_frame)

    def _rtu_frame(self) -> None:
        frame, self._rx = bytes(self._rx), bytearray()
        if len(frame) < 4 or crc16(frame[:-2]) != struct.unpack("<H", frame[-2:])[0]:
            self.bad_frames += 1  # a slave ignores a frame with a bad CRC
            return
        unit, pdu = frame[0], frame[1:-2]
        if unit != self.state.unit_id or self.state.silent:
            return  # another slave's, or a broadcast (0): no answer
        reply = with_crc(bytes([unit]) + self.answer(pdu))
        if self.state.garble:
            reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
        assert self._master is not None
        with contextlib.suppress(OSError):
            os.write(self._master, reply)


def demo_state() -> SensorState:
    """A water-level and pressure sensor as in a pump room (for the CLI)."""
    return SensorState(
        points=[
            SensorPoint(name="level", address=0, type="uint16", scale=0.01, value=1.25),
            SensorPoint(name="pressure", address=1, type="float32", value=3.5),
            SensorPoint(
                name="temperature", function=4, address=0, type="int16", scale=0.1, value=-4.5
            ),
        ]
    )


async def _serve(port: int, rtu: bool) -> None:
    sim = ModbusSensor(demo_state(), rtu=rtu)
    sim.port = port
    async with sim:
        print(f"modbus tcp 127.0.0.1:{sim.port}" + (f", rtu {sim.rtu_path}" if rtu else ""))
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rtu", action="store_true", help="also serve RTU on a pty")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, args.rtu))


if __name__ == "__main__":
    main()
