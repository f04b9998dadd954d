"""Modbus TCP and RTU sensors read by register map (pymodbus client).

The map's registers are grouped into as few reads as the limits allow (function 03/04,
``max_read`` registers, ``max_gap`` unused ones in between). Values decode by type
(int16/uint16/int32/uint32/float32) and word order, then ``raw * scale + offset``.
An exception reply makes that block's readings "no value" and is counted by code; a
frame that does not parse (bad CRC, wrong length) is counted as a bad frame.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from devices.config import SerialTransport
from monitoring.coordinator import Coordinator, Feed, PollFailed
from monitoring.samples import Sample
from monitoring.targets import ModbusRegister, ModbusTarget

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


# -- pure decoding (the simulator encodes with the same rules) -----------------------------


def decode_words(words: Sequence[int], kind: str, word_order: str = "big") -> float:
    """Registers (16-bit words, each big-endian on the wire) as a number of ``kind``."""
    if any(not 0 <= w <= 0xFFFF for w in words):
        raise ValueError(f"register values must be 0..65535: {list(words)}")
    if kind in ("int16", "uint16"):
        if len(words) != 1:
            raise ValueError(f"{kind} takes 1 register, got {len(words)}")
        raw = words[0]
        return float(raw - 0x10000 if kind == "int16" and raw & 0x8000 else raw)
    if len(words) != 2:
        raise ValueError(f"{kind} takes 2 registers, got {len(words)}")
    high, low = (words[0], words[1]) if word_order == "big" else (words[1], words[0])
    data = struct.pack(">HH", high, low)
    if kind == "int32":
        return float(struct.unpack(">i", data)[0])
    if kind == "uint32":
        return float(struct.unpack(">I", data)[0])
    if kind == "float32":
        return float(struct.unpack(">f", data)[0])
    raise ValueError(f"unknown register type {kind!r}")


def encode_words(value: float, kind: str, word_order: str = "big") -> list[int]:
    """The inverse of :func:`decode_words` (integers are rounded; range is checked)."""
    if kind == "float32":
        data = struct.pack(">f", value)
    else:
        number = round(value)
        fmt = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I"}.get(kind)
        if fmt is None:
            raise ValueError(f"unknown register type {kind!r}")
        try:
            data = struct.pack(fmt, number)
        except struct.error:
            raise ValueError(f"{value!r} does not fit {kind}") from None
    if len(data) == 2:
        return [struct.unpack(">H", data)[0]]
    high, low = struct.unpack(">HH", data)
    return [high, low] if word_order == "big" else [low, high]


def engineering(register: ModbusRegister, words: Sequence[int]) -> float:
    return (
        decode_words(words, register.type, register.word_order) * register.scale + register.offset
    )


@dataclass(frozen=True)
class Block:
    """One read request: ``count`` registers from wire ``address`` with ``function``."""

    function: int
    address: int
    count: int
    registers: tuple[tuple[ModbusRegister, int], ...]  # (register, its wire address)


def plan_reads(target: ModbusTarget) -> list[Block]:
    """Group the map into reads: per function, sorted by address, joined while the span
    stays within ``max_read`` and the hole between two registers within ``max_gap``."""
    blocks: list[Block] = []
    for function in (3, 4):
        regs = sorted(
            (
                (r, r.address - target.addressing)
                for r in target.registers
                if r.function == function
            ),
            key=lambda item: item[1],
        )
        current: list[tuple[ModbusRegister, int]] = []
        start = end = 0
        for reg, wire in regs:
            last = wire + reg.words  # one past
            if (
                current
                and (wire - end <= target.max_gap)
                and (max(end, last) - start <= target.max_read)
            ):
                current.append((reg, wire))
                end = max(end, last)
                continue
            if current:
                blocks.append(Block(function, start, end - start, tuple(current)))
            current, start, end = [(reg, wire)], wire, last
        if current:
            blocks.append(Block(function, start, end - start, tuple(current)))
    return blocks


# -- the coordinator -------------------------------------------------------------------------


class ModbusCoordinator(Coordinator):
    """Polls one Modbus device (TCP, or RTU on a serial line)."""

    kind = "modbus"
    target: ModbusTarget

    def __init__(self, target: ModbusTarget, feed: Feed, **kwargs: Any) -> None:
        super().__init__(target, feed, **kwargs)
        # the coordinator logs an outage once; pymodbus would log every failed request
        # with a frame dump
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        self.blocks = plan_reads(target)
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._rx_bytes = 0  # bytes received since the current request went out
        self._logged_exceptions: set[tuple[int, int]] = set()

    @property
    def deadline(self) -> float:
        return self.target.deadline * max(1, len(self.blocks))

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self._rx_bytes = 0
        else:
            self._rx_bytes += len(data)
        return data

    async def _connect(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self._client is not None and self._client.connected:
            return self._client
        transport = self.target.transport
        common: dict[str, Any] = {
            "timeout": self.target.timeout,
            "retries": self.target.retries,
            "reconnect_delay": 0,  # the coordinator's schedule reconnects, with back-off
            "trace_packet": self._trace_packet,
        }
        client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if isinstance(transport, SerialTransport):
            where = f"serial {transport.port}"
            client = AsyncModbusSerialClient(
                transport.port,
                framer=FramerType.RTU,
                baudrate=transport.baudrate,
                bytesize=transport.bytesize,
                parity=transport.parity,
                stopbits=transport.stopbits,
                **common,
            )
        else:
            where = f"tcp {transport.host}:{transport.port}"
            client = AsyncModbusTcpClient(transport.host, port=transport.port, **common)
        try:
            connected = await client.connect()
        except (OSError, ModbusException) as err:
            client.close()
            raise PollFailed("refused", f"cannot open {where}: {err}") from err
        if not connected:
            client.close()
            raise PollFailed("refused", f"cannot open {where}")
        self._client = client
        return client

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _fetch(self) -> Sequence[Sample]:
        client = await self._connect()
        now = self._clock()
        samples: list[Sample] = []
        answered = 0
        for block in self.blocks:
            words = await self._read(client, block)
            if words is not None:
                answered += 1
            now = self._clock()
            for reg, wire in block.registers:
                value: float | None = None
                if words is not None:
                    offset = wire - block.address
                    value = engineering(reg, words[offset : offset + reg.words])
                    if not math.isfinite(value):
                        self.count("not_finite")  # the intake refuses it, with its reason
                samples.append(self.make_sample(reg.metric, value, now, reg.unit, reg.labels))
        if self.blocks and answered == 0:
            raise PollFailed("device", "every read was refused with an exception reply")
        return samples

    async def _read(
        self, client: AsyncModbusTcpClient | AsyncModbusSerialClient, block: Block
    ) -> list[int] | None:
        unit = self.target.unit_id
        read = client.read_holding_registers if block.function == 3 else client.read_input_registers
        try:
            response = await read(block.address, count=block.count, device_id=unit)
        except ModbusIOException as err:
            if self._rx_bytes:
                self.count("bad_frame")
                raise PollFailed(
                    "protocol",
                    f"no valid answer to function {block.function:02d} at {block.address}"
                    f" ({self._rx_bytes} byte(s) came back that did not form a frame)",
                ) from err
            raise PollFailed(
                "timeout", f"no answer to function {block.function:02d} at {block.address}"
            ) from err
        except ConnectionException as err:
            raise PollFailed("refused", f"connection lost: {err}") from err
        except ModbusException as err:
            self.count("bad_frame")
            raise PollFailed("protocol", f"bad answer: {err}") from err
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            self.count(f"exception_{code:02d}")
            key = (block.function, block.address)
            if key not in self._logged_exceptions:
                self._logged_exceptions.add(key)
                self.log.warning(
                    "function %02d at %d (%d registers): exception %02d %s",
                    block.function,
                    block.address,
                    block.count,
                    code,
                    EXCEPTION_NAMES.get(code, "unknown"),
                )
            return None
        registers = list(getattr(response, "registers", []) or [])
        if len(registers) < block.count:
            self.count("short_reply")
            raise PollFailed(
                "protocol",
                f"asked {block.count} registers at {block.address}, got {len(registers)}",
            )
        self._logged_exceptions.discard((block.function, block.address))
        return registers[: block.count]
