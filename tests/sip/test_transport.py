"""SIP transports over real sockets on loopback: UDP and TCP on one port, TLS, IPv6, size
limits, the connection cap and the idle timeout."""

from __future__ import annotations

import asyncio
import datetime
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sip.hops import Address
from sip.transport import Origin, TransportConfig, TransportLayer, ipv6_available

OPTIONS = (
    b"OPTIONS sip:hub@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKt1\r\n"
    b"To: <sip:hub@127.0.0.1>\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nCall-ID: t1\r\n"
    b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)
TIMEOUT = 5.0


class Sink:
    """Collects what the layer delivers."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Origin]] = asyncio.Queue()

    def __call__(self, data: bytes, origin: Origin) -> None:
        self.queue.put_nowait((data, origin))

    async def next(self) -> tuple[bytes, Origin]:
        return await asyncio.wait_for(self.queue.get(), TIMEOUT)


async def started(config: TransportConfig) -> tuple[TransportLayer, Sink]:
    sink = Sink()
    layer = TransportLayer(config, sink)
    await layer.start()
    return layer, sink


@pytest.fixture
async def layer() -> AsyncIterator[tuple[TransportLayer, Sink]]:
    layer, sink = await started(TransportConfig(port=0))
    yield layer, sink
    await layer.close()


async def test_udp_and_tcp_share_one_port(layer: tuple[TransportLayer, Sink]) -> None:
    transport, sink = layer
    udp = transport.local_address("UDP")
    tcp = transport.local_address("TCP")
    assert udp.port == tcp.port != 0 and udp.host == "127.0.0.1"

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        client.sendto(OPTIONS, (udp.host, udp.port))
        data, origin = await sink.next()
        assert data == OPTIONS
        assert origin.remote == Address("UDP", "127.0.0.1", client.getsockname()[1])
        assert origin.connection is None and origin.local == udp
        transport.send(b"SIP/2.0 200 OK\r\n\r\n", origin.remote)
        client.settimeout(TIMEOUT)
        assert (await asyncio.to_thread(client.recv, 2048)).startswith(b"SIP/2.0 200")


async def test_tcp_framing_and_reply_on_the_connection(layer: tuple[TransportLayer, Sink]) -> None:
    transport, sink = layer
    tcp = transport.local_address("TCP")
    reader, writer = await asyncio.open_connection(tcp.host, tcp.port)
    try:
        # Two messages, split at awkward places, with keep-alive CRLFs between them.
        stream = OPTIONS + b"\r\n\r\n" + OPTIONS.replace(b"t1", b"t2")
        for piece in (stream[:10], stream[10:200], stream[200:]):
            writer.write(piece)
            await writer.drain()
        first, origin = await sink.next()
        second, _ = await sink.next()
        assert first == OPTIONS and b"Call-ID: t2" in second
        assert origin.connection is not None and origin.remote.transport == "TCP"
        assert transport.counters.connections_active == 1
        transport.send(
            b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", origin.remote, origin.connection
        )
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert line == b"SIP/2.0 200 OK\r\n"
    finally:
        writer.close()


async def test_oversized_datagram_dropped_with_a_clear_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport, sink = await started(TransportConfig(port=0, max_datagram_bytes=1000, tcp=False))
    try:
        udp = transport.local_address("UDP")
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
            caplog.at_level(logging.WARNING, logger="sip.transport"),
        ):
            client.sendto(OPTIONS + b"x" * 2000, (udp.host, udp.port))
            client.sendto(OPTIONS, (udp.host, udp.port))
            data, _ = await sink.next()
        assert data == OPTIONS  # the small one passed, the big one did not
        assert transport.counters.oversize_dropped == 1
        assert f"dropped a {len(OPTIONS) + 2000}-byte UDP datagram" in caplog.text
        assert "over the 1000-byte limit" in caplog.text
    finally:
        await transport.close()


async def test_oversized_stream_header_closes_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport, _ = await started(TransportConfig(port=0, max_header_bytes=512))
    try:
        tcp = transport.local_address("TCP")
        reader, writer = await asyncio.open_connection(tcp.host, tcp.port)
        with caplog.at_level(logging.WARNING, logger="sip.transport"):
            writer.write(b"OPTIONS sip:x SIP/2.0\r\nX-Long: " + b"a" * 1000)
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # closed by the hub
        writer.close()
        assert "header section exceeds 512 bytes" in caplog.text
        assert transport.counters.oversize_dropped == 1
    finally:
        await transport.close()


async def test_connection_cap() -> None:
    transport, _ = await started(TransportConfig(port=0, max_connections=2))
    tcp = transport.local_address("TCP")
    streams = []
    try:
        for _ in range(2):
            streams.append(await asyncio.open_connection(tcp.host, tcp.port))
        for _, writer in streams:
            writer.write(b"\r\n\r\n")
            await writer.drain()
        reader, writer = await asyncio.open_connection(tcp.host, tcp.port)
        streams.append((reader, writer))
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        assert transport.counters.connections_rejected == 1
        assert transport.counters.connections_active == 2
    finally:
        for _, writer in streams:
            writer.close()
        await transport.close()


async def test_idle_connections_are_closed() -> None:
    transport, _ = await started(TransportConfig(port=0, idle_timeout=0.2))
    try:
        tcp = transport.local_address("TCP")
        reader, writer = await asyncio.open_connection(tcp.host, tcp.port)
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()
    finally:
        await transport.close()


async def test_outbound_connection_is_reused(layer: tuple[TransportLayer, Sink]) -> None:
    server, sink = layer
    client, _ = await started(TransportConfig(port=0, udp=False))
    try:
        target = server.local_address("TCP")
        client.send(OPTIONS, target)
        client.send(OPTIONS.replace(b"t1", b"t2"), target)
        (_, first), (_, second) = await sink.next(), await sink.next()
        assert first.connection is second.connection
        assert client.counters.connections_active == 1
        assert client.connection_to(target) is not None
    finally:
        await client.close()


async def test_send_failure_is_reported() -> None:
    transport, _ = await started(TransportConfig(port=0, connect_timeout=2.0))
    try:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        errors: asyncio.Queue[str] = asyncio.Queue()
        transport.send(OPTIONS, Address("TCP", "127.0.0.1", port), on_error=errors.put_nowait)
        reason = await asyncio.wait_for(errors.get(), TIMEOUT)
        assert f"cannot connect to tcp:127.0.0.1:{port}" in reason
        assert transport.counters.send_errors == 1
    finally:
        await transport.close()


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback here")
async def test_ipv6_udp_and_tcp() -> None:
    transport, sink = await started(TransportConfig(hosts=("127.0.0.1", "::1"), port=0))
    try:
        v6 = transport.local_address("UDP", ipv6=True)
        assert v6.host == "::1" and v6.port == transport.local_address("UDP").port
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
            client.sendto(OPTIONS, ("::1", v6.port))
            _, origin = await sink.next()
            assert origin.remote.host == "::1" and origin.remote.is_ipv6
            assert str(origin.local) == f"udp:[::1]:{v6.port}"
        _, writer = await asyncio.open_connection("::1", v6.port)
        writer.write(OPTIONS)
        _, origin = await sink.next()
        assert origin.remote.transport == "TCP" and origin.remote.host == "::1"
        writer.close()
    finally:
        await transport.close()


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_listener_and_client(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    server, sink = await started(TransportConfig(port=0, tls_context=server_context))
    client, _ = await started(TransportConfig(port=0, udp=False, tls_client_context=client_context))
    try:
        tls = server.local_address("TLS")
        assert tls.port not in (0, server.local_address("UDP").port)
        connection = await client.connect(tls, server_name="localhost")
        assert connection.write(OPTIONS)
        data, origin = await sink.next()
        assert data == OPTIONS and origin.remote.transport == "TLS"
    finally:
        await client.close()
        await server.close()
