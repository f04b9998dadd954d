"""Devices on a byte stream (TCP, serial; UDP datagrams): framed reader, one request in flight.

The reader task frames and decodes bytes; a decoded message goes to the waiting request if
that request accepts it, otherwise to ``_on_unsolicited`` (front-panel changes, banners).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from devices.base import C, Device
from devices.config import DeviceConfig, SerialTransport, TcpTransport, UdpTransport
from devices.errors import DeviceConfigError, DeviceTimeout, DeviceUnavailable, InvalidCommand
from devices.link import Link, open_link
from protocols.framing import Framer, FramingError

M = TypeVar("M")


@dataclass
class _Waiter(Generic[M]):
    accepts: Callable[[M], bool]
    future: asyncio.Future[M]


class StreamDevice(Device[C], Generic[C, M]):
    """A device reached over TCP or serial; ``M`` is the driver's decoded message type."""

    # the transports the driver speaks; "udp" reads one datagram per frame
    transport_kinds: ClassVar[tuple[str, ...]] = ("tcp", "serial")

    def __init__(self, config: DeviceConfig) -> None:
        super().__init__(config)
        transport = config.transport
        if transport.kind not in self.transport_kinds or not isinstance(
            transport, TcpTransport | SerialTransport | UdpTransport
        ):
            raise DeviceConfigError(
                f"device {config.id!r} ({config.type}) needs a "
                f"{' or '.join(self.transport_kinds)} transport, not {transport.kind!r}"
            )
        self.transport: TcpTransport | SerialTransport | UdpTransport = transport
        self._link: Link | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiter: _Waiter[M] | None = None

    @abc.abstractmethod
    def _framer(self) -> Framer:
        """A fresh framer for a new connection."""

    @abc.abstractmethod
    def _decode(self, frame: bytes) -> M:
        """Parse one frame; raise ``ValueError`` for bytes that are not a valid message."""

    def _on_unsolicited(self, message: M) -> None:
        """A message nobody asked for; drivers override to update the snapshot."""
        self.log.debug("unsolicited %r", message)

    async def _connect(self) -> None:
        link = await open_link(self.transport, self.config.timeout)
        self._link = link
        self._reader = self._tasks.spawn(self._read(link, self._framer()), f"{self.id}-reader")
        self.log.debug("connected to %s", link.description)

    async def _disconnect(self) -> None:
        link, self._link = self._link, None
        reader, self._reader = self._reader, None
        if reader is not None:
            await self._tasks.cancel(reader)
        if link is not None:
            await link.close()
        self._fail_waiter(DeviceUnavailable(f"link to {self.id} closed"))

    async def transact(self, request: bytes, accepts: Callable[[M], bool]) -> M:
        """Send ``request`` and return the first message that ``accepts`` the reply.

        Resends after a timeout per the retry policy; after the last attempt the link is
        declared lost (the supervisor reconnects) and :class:`DeviceTimeout` is raised.
        Call with the I/O lock held (inside ``_fetch`` / ``_execute``).
        """
        timeout = self.config.timeout
        attempts = self.retry.attempts
        for attempt in range(1, attempts + 1):
            link = self._link
            if link is None or self._lost.is_set():
                raise DeviceUnavailable(self._lost_reason or f"device {self.id} is not connected")
            future: asyncio.Future[M] = asyncio.get_running_loop().create_future()
            self._waiter = _Waiter(accepts, future)
            try:
                async with asyncio.timeout(timeout):
                    await link.write(request)
                    return await future
            except TimeoutError:
                self.log.debug("no answer to %r (attempt %d/%d)", request, attempt, attempts)
            except (OSError, ConnectionError) as err:
                self._waiter = None  # nobody awaits its future any more
                self._link_lost(f"write failed: {err}")
                raise DeviceUnavailable(f"device {self.id}: write failed: {err}") from err
            finally:
                self._waiter = None
        tries = f"{attempts} attempts" if attempts > 1 else "1 attempt"
        reason = f"no answer to {request!r} within {timeout:g} s ({tries})"
        self._link_lost(reason)
        raise DeviceTimeout(f"device {self.id}: {reason}")

    def _fail_waiter(self, error: BaseException) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.future.done():
            waiter.future.set_exception(error)

    def _link_lost(self, reason: str) -> None:
        super()._link_lost(reason)
        self._fail_waiter(DeviceUnavailable(f"device {self.id}: {reason}"))

    async def _read(self, link: Link, framer: Framer) -> None:
        try:
            while True:
                data = await link.read()
                if not data:
                    self._link_lost("connection closed by the device")
                    return
                try:
                    frames = framer.feed(data)
                except FramingError as err:
                    self.log.debug("framing: %s", err)
                    frames = err.frames
                for frame in frames:
                    self._dispatch(frame)
        except (OSError, ConnectionError) as err:
            self._link_lost(f"read failed: {err}")

    def _dispatch(self, frame: bytes) -> None:
        try:
            message = self._decode(frame)
        except ValueError as err:
            self.log.debug("dropped malformed frame %r: %s", frame, err)
            return
        waiter = self._waiter
        if waiter is not None and not waiter.future.done() and waiter.accepts(message):
            waiter.future.set_result(message)
            return
        try:
            self._on_unsolicited(message)
        except Exception:
            self.log.exception("handling unsolicited %r failed", message)


def require_int(command: Any, key: str, minimum: int, maximum: int) -> int:
    """Read an integer field of a command dict, raising :class:`InvalidCommand`."""
    value = command.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidCommand(f"{key!r} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise InvalidCommand(f"{key!r} must be {minimum}..{maximum}, got {value}")
    return value
