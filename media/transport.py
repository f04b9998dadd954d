"""Asyncio UDP endpoints for RTP/RTCP: the callback only queues (bounded); the tick parses."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import cast

logger = logging.getLogger(__name__)

Address = tuple[str, int]
Datagram = tuple[bytes, tuple[str, int], float]


class RtpEndpoint(asyncio.DatagramProtocol):
    """One leg's socket. Datagrams wait in a bounded queue until the next tick drains them.

    A flood fills the queue and the excess is dropped and counted here, before any parsing,
    so a misbehaving peer costs the loop one append per datagram and nothing more.
    """

    def __init__(self, max_queue: int, clock: Callable[[], float]) -> None:
        self.queue: deque[Datagram] = deque()
        self.max_queue = max_queue
        self.received = 0
        self.overflow = 0
        self.wrong_source = 0
        # once the far end is known, datagrams from anywhere else are counted and dropped
        # here, so a stranger's flood cannot push the real peer's packets out of the queue
        self.accept_from: Address | None = None
        self.send_errors = 0
        self.transport: asyncio.DatagramTransport | None = None
        self._clock = clock

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received += 1
        expected = self.accept_from
        if expected is not None and (addr[1] != expected[1] or addr[0] != expected[0]):
            self.wrong_source += 1
            return
        if len(self.queue) >= self.max_queue:
            self.overflow += 1
            return
        self.queue.append((data, addr, self._clock()))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the far end is not listening yet: normal, count it
        self.send_errors += 1
        logger.debug("RTP socket error: %s", exc)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    @property
    def local_address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)


async def open_endpoint(
    local: Address | None,
    sock: socket.socket | None,
    max_queue: int,
    receive_buffer: int = 0,
) -> RtpEndpoint:
    """Bind (or adopt ``sock``) and return the endpoint; raises OSError when binding fails."""
    loop = asyncio.get_running_loop()
    endpoint = RtpEndpoint(max_queue, loop.time)
    if sock is not None:
        await loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
    else:
        assert local is not None
        await loop.create_datagram_endpoint(lambda: endpoint, local_addr=local)
    if receive_buffer and endpoint.transport is not None:
        raw = endpoint.transport.get_extra_info("socket")
        if raw is not None:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    return endpoint


def bind_rtp_pair(
    host: str = "127.0.0.1", attempts: int = 50
) -> tuple[socket.socket, socket.socket]:
    """Two bound UDP sockets on an even port and the next one (RTP, RTCP), for SDP offers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(attempts):
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtp.bind((host, 0))
        port = rtp.getsockname()[1]
        if port % 2 or port >= 65535:
            rtp.close()
            continue
        rtcp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtcp.bind((host, port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        rtp.setblocking(False)
        rtcp.setblocking(False)
        return rtp, rtcp
    raise OSError(f"no free even/odd UDP port pair on {host} after {attempts} attempts")
