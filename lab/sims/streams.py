"""Byte-stream simulators on TCP or a pty: one session per TCP client (or the serial line).

A protocol simulator subclasses ``StreamSimulator`` and returns a ``Session`` per conversation;
the base owns listening, the pty, the outbox (delay, drop, garble) and the link faults.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import time
import tty
from collections.abc import Callable
from typing import Any, ClassVar

from lab.simulator import Simulator

READ_SIZE = 4096


class SessionOutbox:
    """Replies of one session, sent in order after the injected delay, through drop/garble.

    Like ``lab.simulator.Outbox``, plus a hang-up that waits behind the replies already
    queued (a display answers ``PJLINK ERRA`` and then closes the connection).
    """

    def __init__(
        self, sim: Simulator, write: Callable[[bytes], None], close: Callable[[], None]
    ) -> None:
        self._sim = sim
        self._write = write
        self._close = close
        self._queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

    def send(self, data: bytes) -> None:
        due = time.monotonic() + self._sim.faults.reply_delay()
        self._queue.put_nowait((due, data))

    def hang_up(self) -> None:
        """Close the connection once everything sent before has gone out."""
        self._queue.put_nowait((time.monotonic(), None))

    async def run(self) -> None:
        while True:
            due, data = await self._queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                self._close()
                continue
            data = self._sim.faults.mangle(data)
            if data:
                self._write(data)


class Session(abc.ABC):
    """One conversation with the hub: a TCP client, or the serial line of a pty."""

    def __init__(self, sim: StreamSimulator, outbox: SessionOutbox) -> None:
        self.sim = sim
        self.outbox = outbox

    def opened(self) -> None:  # noqa: B027 - optional hook
        """The conversation started (send a greeting or banner here)."""

    @abc.abstractmethod
    def received(self, data: bytes) -> None:
        """Bytes from the hub; answer with ``send``. Exceptions crash the simulator."""

    def send(self, data: bytes) -> None:
        """Queue bytes to the hub (after the injected delay, through drop/garble)."""
        self.outbox.send(data)

    def hang_up(self) -> None:
        """Close this TCP connection after the replies queued so far (a pty line: no-op)."""
        self.outbox.hang_up()


class _Conversation:
    def __init__(
        self, session: Session, task: asyncio.Task[Any] | None, close: Callable[[], None]
    ) -> None:
        self.session = session
        self.task = task
        self.close = close  # at once, dropping what is queued (a pulled cable)


class StreamSimulator(Simulator):
    """Serves ``new_session`` on TCP (``resource: {kind: tcp}``) or a pty (``kind: pty``)."""

    resource_kinds: ClassVar[tuple[str, ...]] = ("tcp", "pty")

    _server: asyncio.Server | None = None
    _master = -1
    _slave = -1
    path = ""
    host = "127.0.0.1"
    port = 0
    connections = 0  # TCP clients accepted so far (tests check for reconnect storms)

    @abc.abstractmethod
    def new_session(self, outbox: SessionOutbox) -> Session:
        """A fresh conversation (a new TCP client, or the pty line at start-up)."""

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return str(self.device.resource.kind)

    async def _open(self) -> None:
        self._conversations: dict[object, _Conversation] = {}
        if self.kind == "pty":
            await self._open_pty()
        else:
            self.host = getattr(self.device.resource, "host", "127.0.0.1")
            self.port = getattr(self.device.resource, "port", 0)
            await self._listen()

    async def _close(self) -> None:
        await self._stop_listening()
        self._drop_clients()
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
            for fd in (self._master, self._slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._master = self._slave = -1

    def site_transport(self) -> dict[str, Any]:
        if self.kind == "pty":
            baudrate = getattr(self.device.resource, "baudrate", 9600)
            return {"kind": "serial", "port": self.path, "baudrate": baudrate}
        return {"kind": "tcp", "host": self.host, "port": self.port}

    def sessions(self) -> list[Session]:
        return [c.session for c in self._conversations.values()]

    def broadcast(self, data: bytes, skip: Session | None = None) -> None:
        """Send unsolicited bytes to every session but ``skip``."""
        if self.faults.silent() or self.link_down:
            return
        for session in self.sessions():
            if session is not skip:
                session.send(data)

    # -- link faults ----------------------------------------------------------------------

    async def _on_link(self, down: bool) -> None:
        if self.kind == "pty":
            return  # a serial device that is down just stops answering
        if down:
            await self._stop_listening()
            self._drop_clients()
        else:
            await self._listen()

    def _on_disconnect(self) -> None:
        if self.kind != "pty":
            self._drop_clients()

    # -- TCP ------------------------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _drop_clients(self) -> None:
        for key, conversation in list(self._conversations.items()):
            if conversation.task is not None:
                conversation.close()
                conversation.task.cancel()
                self._conversations.pop(key, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self.faults.silent() or self.link_down or task is None:
            writer.close()
            return
        self._tasks.adopt(task)
        self.connections += 1

        def write(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        outbox = SessionOutbox(self, write, writer.close)
        session = self.new_session(outbox)
        self._conversations[task] = _Conversation(session, task, writer.close)
        sender = self.spawn(outbox.run(), "tcp writer")
        peer = writer.get_extra_info("peername")
        self.log.info("client connected: %s", peer)
        try:
            session.opened()
            while data := await reader.read(READ_SIZE):
                session.received(data)
                await writer.drain()
        except ConnectionError as err:
            self.log.info("client %s: %s", peer, err)
        except asyncio.CancelledError:
            pass  # hung up by a fault or on stop: the connection handler just ends
        except Exception as err:  # loop boundary: this device crashes, the bench goes on
            self.crashed(err)
        finally:
            self._conversations.pop(task, None)
            sender.cancel()
            writer.close()
            self.log.info("client gone: %s", peer)

    # -- pty ------------------------------------------------------------------------------

    async def _open_pty(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # a serial line: no echo, no line editing
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        outbox = SessionOutbox(self, self._write_pty, lambda: None)
        self.spawn(outbox.run(), "pty writer")
        session = self.new_session(outbox)
        self._conversations["pty"] = _Conversation(session, None, lambda: None)
        session.opened()
        asyncio.get_running_loop().add_reader(self._master, self._readable)

    def _write_pty(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except BlockingIOError:
            self.log.debug("pty full: nobody reads the slave, %d bytes lost", len(data))

    def _readable(self) -> None:
        try:
            data = os.read(self._master, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as err:
            self.crashed(err)
            return
        if self.faults.silent() or self.link_down:
            return  # the cable is pulled / the device is off
        try:
            for conversation in self._conversations.values():
                conversation.session.received(data)
        except Exception as err:  # loop boundary: this device crashes, the bench goes on
            self.crashed(err)


__all__ = ["Session", "StreamSimulator"]
