"""Real peers for device tests: an Extron SIS server on TCP, a Kenwood CAT radio on a pty."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import tty
from collections.abc import Callable
from typing import Any

from devices.base import Device
from devices.config import DeviceConfig
from protocols import extron_sis as sis
from protocols import kenwood_cat as cat

FAST = {"retries": 0, "reconnect_initial": 0.05, "reconnect_max": 0.2}


def device_config(device_type: str, transport: dict[str, Any], **overrides: Any) -> DeviceConfig:
    options = {**FAST, **overrides.pop("options", {})}
    fields: dict[str, Any] = {"poll_interval": 0.2, "timeout": 0.3, **overrides}
    return DeviceConfig(
        id=fields.pop("id", "dev-1"),
        type=device_type,
        transport=transport,
        options=options,
        **fields,
    )


async def eventually(predicate: Callable[[], bool], within: float = 3.0) -> None:
    """Wait until ``predicate()`` holds (the public snapshot is polled every 10 ms)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {within:.1f} s")
        await asyncio.sleep(0.01)


async def online(device: Device[Any], within: float = 3.0) -> None:
    await eventually(lambda: device.snapshot.online, within)


class SisServer:
    """A small Extron matrix on 127.0.0.1: answers view-ties and ties from its own tie table."""

    def __init__(self, outputs: int = 4) -> None:
        self.ties = {out: 1 for out in range(1, outputs + 1)}
        self.outputs = outputs
        self.silent = False
        self.delay = 0.0
        self.errors: dict[bytes, str] = {}  # command -> error code to answer instead
        self.received: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        await self.drop_clients()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def drop_clients(self) -> None:
        for writer in list(self._writers):
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        self._writers.clear()

    def push(self, report: sis.TieReport) -> None:
        """An unsolicited front-panel change, sent to every client."""
        self.ties[report.output] = report.input
        for writer in self._writers:
            writer.write(bytes(report))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        writer.write(b"(c) Copyright 2013, Extron Electronics, DXP 44 HDMI, V1.05\r\n")
        buffer = b""
        try:
            while data := await reader.read(1024):
                buffer += data
                while match := re.search(rb"[!&$]", buffer):
                    command, buffer = buffer[: match.end()], buffer[match.end() :]
                    self.received.append(command)
                    if self.silent:
                        continue
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    writer.write(self._answer(command))
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, command: bytes) -> bytes:
        if command in self.errors:
            return bytes(sis.SisError(self.errors[command]))
        try:
            parsed = sis.parse_command(command)
        except ValueError:
            return bytes(sis.SisError("E10"))
        if parsed.output > self.outputs:
            return bytes(sis.SisError("E12"))
        if isinstance(parsed, sis.ViewTie):
            return bytes(sis.TieStatus(self.ties[parsed.output]))
        if parsed.input > 8:
            return bytes(sis.SisError("E01"))
        self.ties[parsed.output] = parsed.input
        return bytes(parsed.expected_report())


class CatRadio:
    """A Kenwood TS-590SG answering CAT on the master side of a pty; the driver opens the slave."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        self.path = os.ttyname(self.slave)
        self.frequency = 14_250_000
        self.mode = cat.Mode.USB
        self.transmitting = False
        self.silent = False
        self.received: list[bytes] = []
        self._framer = cat.cat_framer()
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)

    def send(self, message: cat.CatMessage) -> None:
        os.write(self.master, bytes(message))

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 1024)
        except OSError:
            return
        for frame in self._framer.feed(data):
            self.received.append(frame)
            if not self.silent:
                reply = self._answer(frame)
                if reply is not None:
                    self.send(reply)

    def _answer(self, frame: bytes) -> cat.CatMessage | None:
        try:
            message = cat.parse_message(frame)
        except ValueError:
            return cat.CatError(cat.CatErrorKind.SYNTAX)
        if isinstance(message, cat.Frequency):
            if message.hz > 60_000_000:
                return cat.CatError(cat.CatErrorKind.SYNTAX)
            self.frequency = message.hz
        elif isinstance(message, cat.OperatingMode):
            self.mode = message.mode
        elif isinstance(message, cat.Transmit | cat.Receive):
            self.transmitting = isinstance(message, cat.Transmit)
        elif isinstance(message, cat.Query):
            return self._status(message.command)
        return None

    def _status(self, command: str) -> cat.CatMessage:
        if command == "FA":
            return cat.Frequency("A", self.frequency)
        if command == "MD":
            return cat.OperatingMode(self.mode)
        if command == "ID":
            return cat.Identity(23)
        if command == "IF":
            return cat.Information(
                self.frequency, 0, False, False, 0, self.transmitting, self.mode, 0, 0, False, 0, 0
            )
        return cat.CatError(cat.CatErrorKind.SYNTAX)
