"""SIP transports on asyncio (RFC 3261 section 18): UDP and TCP on the same port, TLS via an
``ssl.SSLContext``, IPv4 and IPv6; size limits, a connection cap and an idle timeout.

The layer moves bytes only: every complete message (a datagram, or a frame cut by
``SipStreamFramer``) goes to the sink with its ``Origin``; parsing happens in the stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, cast

from sip.errors import SipOverloadError, SipParseError, SipTransportError
from sip.framing import SipStreamFramer
from sip.hops import TCP, TLS, UDP, Address

logger = logging.getLogger(__name__)


@dataclass
class SipCounters:
    """Plain counters the hub reads for metrics (monotonic except the ``*_active`` gauges)."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    parse_errors: int = 0
    oversize_dropped: int = 0
    rate_limited: int = 0
    overload_rejected: int = 0
    retransmissions: int = 0
    send_errors: int = 0
    connections_rejected: int = 0
    connections_active: int = 0
    transactions_active: int = 0  # every live transaction, answered ones included
    transactions_pending: int = 0  # waiting for a final response (what max_transactions caps)
    dialogs_active: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


class LogThrottle:
    """Logs a warning at most once per ``interval`` per key (so a flood logs a line, not a
    line per packet) and says how many were suppressed in between."""

    def __init__(self, log: logging.Logger, interval: float = 60.0, max_keys: int = 1024) -> None:
        self._log = log
        self._interval = interval
        self._max_keys = max_keys
        self._seen: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._interval:
            self._seen[key] = (last[0], last[1] + 1)
            return
        if len(self._seen) >= self._max_keys:
            self._seen.clear()
        suppressed = last[1] if last is not None else 0
        suffix = f" ({suppressed} similar suppressed)" if suppressed else ""
        self._log.warning(message + suffix, *args)
        self._seen[key] = (now, 0)


@dataclass(frozen=True)
class TransportConfig:
    """Where to listen and the bounds. ``port`` 0 picks a free port shared by UDP and TCP;
    ``tls_port`` None means TLS on ``port + 1`` (or a free port when ``port`` is 0)."""

    hosts: tuple[str, ...] = ("127.0.0.1",)
    port: int = 5060
    udp: bool = True
    tcp: bool = True
    tls_context: ssl.SSLContext | None = None
    tls_port: int | None = None
    tls_client_context: ssl.SSLContext | None = None
    max_datagram_bytes: int = 16384
    max_header_bytes: int = 16384
    max_body_bytes: int = 262144
    max_connections: int = 1024
    idle_timeout: float = 300.0
    connect_timeout: float = 5.0
    max_write_buffer: int = 1 << 20


@dataclass(frozen=True, slots=True, eq=False)
class Origin:
    """Where a message came from: the peer, our local address, and for TCP/TLS the
    connection (responses go back on it, section 18.2.2)."""

    remote: Address
    local: Address
    connection: SipConnection | None = None


MessageSink = Callable[[bytes, Origin], None]
ErrorCallback = Callable[[str], None]


def _address(transport: str, sockaddr: Any) -> Address:
    return Address(transport, str(sockaddr[0]), int(sockaddr[1]))


class _UdpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, layer: TransportLayer) -> None:
        self._layer = layer
        self.transport: asyncio.DatagramTransport | None = None
        self.local: Address | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not every loop's datagram transport subclasses DatagramTransport (CPython 3.11).
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.local = _address(UDP, transport.get_extra_info("sockname"))

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        assert self.local is not None
        self._layer._datagram(data, Origin(_address(UDP, addr), self.local))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the transaction's timers deal with loss.
        logger.debug("UDP %s: %s", self.local, exc)

    def send(self, data: bytes, address: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (address.host, address.port))


class SipConnection(asyncio.Protocol):
    """One TCP or TLS connection, inbound or outbound, framed by ``SipStreamFramer``."""

    def __init__(self, layer: TransportLayer, transport_name: str) -> None:
        self._layer = layer
        self.transport_name = transport_name
        self._transport: asyncio.Transport | None = None
        self._framer = SipStreamFramer(
            max_header_bytes=layer.config.max_header_bytes,
            max_body_bytes=layer.config.max_body_bytes,
        )
        self.remote = Address(transport_name, "", 0)
        self.local = Address(transport_name, "", 0)
        self.origin = Origin(self.remote, self.local, self)
        self.last_activity = time.monotonic()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.remote = _address(self.transport_name, transport.get_extra_info("peername"))
        self.local = _address(self.transport_name, transport.get_extra_info("sockname"))
        self.origin = Origin(self.remote, self.local, self)
        if not self._layer._register(self):
            self.closed = True
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        try:
            frames = self._framer.feed(data)
        except SipParseError as err:
            self._layer._stream_error(self, err)
            return
        for frame in frames:
            if self.closed:
                return
            self._layer._deliver(frame, self.origin)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._layer._unregister(self)

    def write(self, data: bytes) -> bool:
        """Queue ``data``; False when the connection is closed. A peer that does not read
        (write buffer over the limit) is disconnected rather than buffered without bound."""
        if self.closed or self._transport is None or self._transport.is_closing():
            return False
        self._transport.write(data)
        self.last_activity = time.monotonic()
        if self._transport.get_write_buffer_size() > self._layer.config.max_write_buffer:
            self._layer._throttle.warning(
                f"slow:{self.remote.host}",
                "closing %s: peer does not read (write buffer over %d bytes)",
                self.remote,
                self._layer.config.max_write_buffer,
            )
            self.close()
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._transport is not None:
                self._transport.close()

    def __repr__(self) -> str:
        return f"<SipConnection {self.remote} local={self.local.hostport}>"


class TransportLayer:
    """Listens on the configured hosts and port, sends to addresses and connections."""

    def __init__(
        self,
        config: TransportConfig,
        sink: MessageSink,
        counters: SipCounters | None = None,
    ) -> None:
        self.config = config
        self.counters = counters if counters is not None else SipCounters()
        self._sink = sink
        self._udp: list[_UdpEndpoint] = []
        self._servers: list[asyncio.Server] = []
        self._listening: list[Address] = []
        self._connections: dict[Address, SipConnection] = {}
        self._connecting: dict[Address, asyncio.Task[SipConnection]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._throttle = LogThrottle(logger)
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every listener; raises ``SipTransportError`` when a port is taken."""
        if not self.config.hosts or not (self.config.udp or self.config.tcp):
            raise SipTransportError("no host or no transport to listen on")
        attempts = 20 if self.config.port == 0 else 1
        for attempt in range(attempts):
            try:
                await self._bind(self.config.port)
                break
            except OSError as err:
                await self._unbind()
                if err.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise SipTransportError(
                        f"cannot listen on port {self.config.port}: {err}"
                    ) from err
                # port 0: the free UDP port was taken for TCP (or another host); try again.
        if self.config.tls_context is not None:
            try:
                await self._bind_tls()
            except OSError as err:
                await self._unbind()
                raise SipTransportError(f"cannot listen for TLS: {err}") from err
        self._sweeper = asyncio.get_running_loop().create_task(
            self._sweep_idle(), name="sip-idle-sweeper"
        )
        logger.info("SIP listening on %s", ", ".join(str(a) for a in self._listening))

    async def _bind(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        for host in self.config.hosts:
            if self.config.udp:
                _, endpoint = await loop.create_datagram_endpoint(
                    lambda: _UdpEndpoint(self), local_addr=(host, port)
                )
                self._udp.append(endpoint)
                assert endpoint.local is not None
                self._listening.append(endpoint.local)
                port = endpoint.local.port
            if self.config.tcp:
                server = await loop.create_server(
                    lambda: SipConnection(self, TCP), host, port, reuse_address=True, backlog=256
                )
                self._servers.append(server)
                local = _address(TCP, server.sockets[0].getsockname())
                self._listening.append(local)
                port = local.port

    async def _bind_tls(self) -> None:
        loop = asyncio.get_running_loop()
        port = self.config.tls_port
        if port is None:
            port = 0 if self.config.port == 0 else self.config.port + 1
        for host in self.config.hosts:
            server = await loop.create_server(
                lambda: SipConnection(self, TLS),
                host,
                port,
                ssl=self.config.tls_context,
                reuse_address=True,
                backlog=256,
                ssl_handshake_timeout=self.config.connect_timeout,
            )
            self._servers.append(server)
            local = _address(TLS, server.sockets[0].getsockname())
            self._listening.append(local)
            port = local.port

    async def _unbind(self) -> None:
        for endpoint in self._udp:
            if endpoint.transport is not None:
                endpoint.transport.close()
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._udp.clear()
        self._servers.clear()
        self._listening.clear()

    async def close(self) -> None:
        """Stop listening, close every connection and cancel pending connects."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self._connections.values()):
            connection.close()
        for task in [*self._tasks, *self._connecting.values()]:
            task.cancel()
        pending = [*self._tasks, *self._connecting.values()]
        if self._sweeper is not None:
            pending.append(self._sweeper)
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        for server in self._servers:
            server.close()
        await self._unbind()
        self._connections.clear()

    # -- addresses ------------------------------------------------------------------------

    @property
    def addresses(self) -> list[Address]:
        """The bound addresses, one per host and transport (the real port for port 0)."""
        return list(self._listening)

    def local_address(self, transport: str, ipv6: bool = False) -> Address:
        """Our listening address for ``transport`` in the right address family."""
        candidates = [a for a in self._listening if a.transport == transport]
        for address in candidates:
            if address.is_ipv6 == ipv6:
                return address
        if candidates:
            return candidates[0]
        raise SipTransportError(f"not listening on {transport}")

    def supports(self, transport: str) -> bool:
        return any(a.transport == transport for a in self._listening) or (
            transport == TLS and self.config.tls_client_context is not None
        )

    # -- receiving ------------------------------------------------------------------------

    def _datagram(self, data: bytes, origin: Origin) -> None:
        size = len(data)
        if size > self.config.max_datagram_bytes:
            self.counters.oversize_dropped += 1
            self._throttle.warning(
                f"big:{origin.remote.host}",
                "dropped a %d-byte UDP datagram from %s: over the %d-byte limit"
                " (TransportConfig.max_datagram_bytes)",
                size,
                origin.remote,
                self.config.max_datagram_bytes,
            )
            return
        if not data.strip(b"\r\n\x00"):
            return  # keep-alive (RFC 5626 CRLF) or padding
        self._deliver(data, origin)

    def _deliver(self, data: bytes, origin: Origin) -> None:
        self.counters.messages_in += 1
        self.counters.bytes_in += len(data)
        try:
            self._sink(data, origin)
        except Exception:
            # The stack must never raise here; if it does, keep the transport alive.
            logger.exception("SIP message from %s could not be handled", origin.remote)

    def _stream_error(self, connection: SipConnection, err: SipParseError) -> None:
        self.counters.parse_errors += 1
        if "exceeds" in err.reason:
            self.counters.oversize_dropped += 1
        self._throttle.warning(
            f"frame:{connection.remote.host}",
            "closing %s: %s (a stream cannot resynchronise)",
            connection.remote,
            err.reason,
        )
        connection.close()

    def _register(self, connection: SipConnection) -> bool:
        if len(self._connections) >= self.config.max_connections:
            self.counters.connections_rejected += 1
            self._throttle.warning(
                "connections",
                "refused connection from %s: %d connections open (max_connections)",
                connection.remote,
                len(self._connections),
            )
            return False
        self._connections[connection.remote] = connection
        self.counters.connections_active = len(self._connections)
        logger.debug("connection %s open", connection.remote)
        return True

    def _unregister(self, connection: SipConnection) -> None:
        if self._connections.get(connection.remote) is connection:
            del self._connections[connection.remote]
            logger.debug("connection %s closed", connection.remote)
        self.counters.connections_active = len(self._connections)

    async def _sweep_idle(self) -> None:
        period = max(0.05, min(self.config.idle_timeout / 2, 30.0))
        while True:
            await asyncio.sleep(period)
            limit = time.monotonic() - self.config.idle_timeout
            for connection in list(self._connections.values()):
                if connection.last_activity < limit:
                    logger.debug("closing idle connection %s", connection.remote)
                    connection.close()

    # -- sending --------------------------------------------------------------------------

    def connection_to(self, address: Address) -> SipConnection | None:
        """An open connection to ``address`` (inbound or outbound), if any."""
        connection = self._connections.get(address)
        return connection if connection is not None and not connection.closed else None

    async def connect(self, address: Address, server_name: str | None = None) -> SipConnection:
        """An open connection to ``address``, reusing one when there is one; raises
        ``SipTransportError`` (or ``SipOverloadError`` at the connection cap)."""
        existing = self.connection_to(address)
        if existing is not None:
            return existing
        task = self._connecting.get(address)
        if task is None:
            if len(self._connections) >= self.config.max_connections:
                self.counters.connections_rejected += 1
                raise SipOverloadError(f"no connection to {address}: max_connections reached")
            task = asyncio.get_running_loop().create_task(
                self._open(address, server_name), name=f"sip-connect-{address}"
            )
            self._connecting[address] = task
            task.add_done_callback(lambda _t: self._connecting.pop(address, None))
        return await asyncio.shield(task)

    async def _open(self, address: Address, server_name: str | None) -> SipConnection:
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if address.transport == TLS:
            context = self.config.tls_client_context
            if context is None:
                raise SipTransportError(f"no TLS client context to reach {address}")
        local = self._source_for(address)
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: SipConnection(self, address.transport),
                    address.host,
                    address.port,
                    ssl=context,
                    server_hostname=(server_name or address.host) if context else None,
                    local_addr=(local, 0) if local else None,
                ),
                self.config.connect_timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as err:
            raise SipTransportError(f"cannot connect to {address}: {err or 'timeout'}") from err
        if connection.closed:
            raise SipTransportError(f"connection to {address} refused (max_connections)")
        # Key it by the address we dialled, so later requests to it reuse the connection.
        if connection.remote != address:
            self._connections[address] = connection
        return connection

    def _source_for(self, address: Address) -> str | None:
        """Bind outgoing connections to our listening host of the same family, so that a
        peer sees the address our Via advertises (not for wildcard listeners)."""
        for local in self._listening:
            if local.is_ipv6 == address.is_ipv6 and local.host not in ("0.0.0.0", "::"):
                return local.host
        return None

    def send(
        self,
        data: bytes,
        address: Address,
        connection: SipConnection | None = None,
        on_error: ErrorCallback | None = None,
        *,
        local: Address | None = None,
    ) -> None:
        """Send one message: on ``connection`` when open, else to ``address`` (opening a
        connection for TCP/TLS in the background); over UDP from the socket bound to
        ``local`` when given (answer from the address a request came to). Failures go
        to ``on_error``."""
        if connection is not None and connection.write(data):
            self._sent(data)
            return
        if address.reliable:
            existing = self.connection_to(address)
            if existing is not None and existing.write(data):
                self._sent(data)
                return
            task = asyncio.get_running_loop().create_task(
                self._connect_and_write(data, address, on_error), name=f"sip-send-{address}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        endpoint = self._udp_for(address, local)
        if endpoint is None:
            self._send_failed(f"no UDP listener for {address}", on_error)
            return
        try:
            endpoint.send(data, address)
        except OSError as err:
            self._send_failed(f"UDP send to {address} failed: {err}", on_error)
            return
        self._sent(data)

    async def _connect_and_write(
        self, data: bytes, address: Address, on_error: ErrorCallback | None
    ) -> None:
        try:
            connection = await self.connect(address)
        except (SipTransportError, SipOverloadError) as err:
            self._send_failed(str(err), on_error)
            return
        if connection.write(data):
            self._sent(data)
        else:
            self._send_failed(f"connection to {address} closed", on_error)

    def _udp_for(self, address: Address, local: Address | None) -> _UdpEndpoint | None:
        family_match = None
        for endpoint in self._udp:
            bound = endpoint.local
            if bound is not None and bound.is_ipv6 == address.is_ipv6:
                if bound == local:
                    return endpoint
                family_match = family_match or endpoint
        return family_match

    def _sent(self, data: bytes) -> None:
        self.counters.messages_out += 1
        self.counters.bytes_out += len(data)

    def _send_failed(self, reason: str, on_error: ErrorCallback | None) -> None:
        self.counters.send_errors += 1
        logger.debug("send failed: %s", reason)
        if on_error is not None:
            on_error(reason)


def ipv6_available() -> bool:
    """Whether ``::1`` can be bound here (tests skip IPv6 otherwise)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True
