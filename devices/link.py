"""Byte links to devices: TCP (asyncio streams), serial (pyserial-asyncio-fast, pyserial URLs), UDP.

A link is opened with :func:`open_link` under a timeout and yields raw bytes (one datagram per
read on UDP); framing and parsing happen above it, never in its callbacks.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import io
from typing import Any, cast

import serial
import serial_asyncio_fast

from devices.config import SerialTransport, TcpTransport, UdpTransport
from devices.errors import DeviceUnavailable

READ_SIZE = 4096
URL_POLL_INTERVAL = 0.005


class Link(abc.ABC):
    """A connected byte stream to one device."""

    description: str

    @abc.abstractmethod
    async def read(self) -> bytes:
        """Next bytes from the device; ``b""`` once the link is closed by the peer."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Send bytes; raises ``ConnectionError`` / ``OSError`` if the link is gone."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the link (idempotent)."""


class StreamLink(Link):
    """A link over an asyncio reader/writer pair (TCP, or a serial port with a file descriptor)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, description: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.description = description

    async def read(self) -> bytes:
        return await self._reader.read(READ_SIZE)

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        if self._writer.is_closing():
            return
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError, asyncio.TimeoutError):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()


class UrlSerialLink(Link):
    """A pyserial URL handler without a file descriptor (``loop://``, ``spy://``, ``rfc2217://``).

    Reads are non-blocking and polled every few milliseconds; nothing blocks the loop.
    """

    def __init__(self, port: serial.Serial, description: str) -> None:
        self._port = port
        self.description = description
        self._closed = False

    async def read(self) -> bytes:
        while not self._closed:
            try:
                data = self._port.read(max(1, min(self._port.in_waiting, READ_SIZE)))
            except (serial.SerialException, OSError) as err:
                raise ConnectionError(f"{self.description}: {err}") from err
            if data:
                return bytes(data)
            await asyncio.sleep(URL_POLL_INTERVAL)
        return b""

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionError(f"{self.description}: link closed")
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as err:
            raise ConnectionError(f"{self.description}: {err}") from err

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._port.close)


class DatagramLink(Link, asyncio.DatagramProtocol):
    """A connected UDP socket: each read is one datagram; ICMP unreachable ends the link."""

    MAX_QUEUED = 256  # datagrams held for a slow reader; more are dropped

    def __init__(self, description: str) -> None:
        self.description = description
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(self.MAX_QUEUED)
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(ConnectionError(f"{self.description}: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(ConnectionError(f"{self.description}: closed"))

    async def read(self) -> bytes:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError(f"{self.description}: link closed")
        self._transport.sendto(data)

    async def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


async def _open_udp(transport: UdpTransport) -> Link:
    description = f"udp://{transport.host}:{transport.port}"
    link = DatagramLink(description)
    await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: link, remote_addr=(transport.host, transport.port)
    )
    return link


async def _open_tcp(transport: TcpTransport) -> Link:
    reader, writer = await asyncio.open_connection(transport.host, transport.port)
    return StreamLink(reader, writer, f"tcp://{transport.host}:{transport.port}")


def _serial_for_url(transport: SerialTransport) -> serial.Serial:
    port = serial.serial_for_url(
        transport.port,
        baudrate=transport.baudrate,
        bytesize=transport.bytesize,
        parity=transport.parity,
        stopbits=transport.stopbits,
        timeout=0,
        do_not_open=True,
    )
    port.open()
    return port


async def _open_serial(transport: SerialTransport) -> Link:
    port = await asyncio.to_thread(_serial_for_url, transport)
    try:
        port.fileno()
    except (io.UnsupportedOperation, AttributeError):
        return UrlSerialLink(port, transport.port)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    serial_transport, _ = await serial_asyncio_fast.connection_for_serial(
        loop, lambda: protocol, port
    )
    writer = asyncio.StreamWriter(serial_transport, protocol, reader, loop)
    return StreamLink(reader, writer, transport.port)


async def open_link(transport: TcpTransport | SerialTransport | UdpTransport, limit: float) -> Link:
    """Open a link to a TCP, serial or UDP transport, raising :class:`DeviceUnavailable`."""
    where = (
        transport.port
        if isinstance(transport, SerialTransport)
        else f"{transport.kind}://{transport.host}:{transport.port}"
    )
    try:
        async with asyncio.timeout(limit):
            if isinstance(transport, TcpTransport):
                return await _open_tcp(transport)
            if isinstance(transport, UdpTransport):
                return await _open_udp(transport)
            return await _open_serial(transport)
    except TimeoutError:
        raise DeviceUnavailable(f"cannot open {where}: no answer within {limit:g} s") from None
    except (OSError, serial.SerialException, ValueError) as err:
        raise DeviceUnavailable(f"cannot open {where}: {err}") from err
