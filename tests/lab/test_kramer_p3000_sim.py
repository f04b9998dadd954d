"""The Kramer Protocol 3000 simulator: routes, queries, errors, notices, faults, HTTP control."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from hub.yamlsource import load_yaml
from lab.benchfile import validate_bench
from lab.harness import BenchThread
from tests.lab.wire import SerialPeer, SisPeer, device, simulator


@pytest.fixture
def matrix(bench: BenchThread) -> Iterator[SisPeer]:
    peer = SisPeer(bench.site_transport(device(bench, "kramer-p3000")), banner=False)
    yield peer
    peer.close()


def test_handshake_route_and_query(matrix: SisPeer) -> None:
    assert matrix.ask(b"#\r") == b"~01@ OK"
    assert matrix.ask(b"#ROUTE 1,1,3\r") == b"~01@ROUTE 1,1,3 OK"
    assert matrix.ask(b"#ROUTE? 1,1\r") == b"~01@ROUTE 1,1,3"
    assert matrix.ask(b"#ROUTE? 2,1\r") == b"~01@ROUTE 2,1,3"  # audio follows video
    assert matrix.ask(b"#VID 4>2\r") == b"~01@VID 4>2 OK"
    assert matrix.ask(b"#VID? 2\r") == b"~01@VID 4>2"
    assert matrix.ask(b"#INFO-IO?\r") == b"~01@INFO-IO IN 8,OUT 8"
    assert matrix.ask(b"#MODEL?\r") == b"~01@MODEL VS-88UT"


def test_chains_addresses_and_split_packets(matrix: SisPeer) -> None:
    matrix.sock.sendall(b"#ROUTE 1,3,2|ROUTE? 1,3\r")
    assert [matrix.line(), matrix.line()] == [b"~01@ROUTE 1,3,2 OK", b"~01@ROUTE 1,3,2"]
    matrix.sock.sendall(b"#ROU")
    time.sleep(0.05)
    matrix.sock.sendall(b"TE? 1,3\r\n")
    assert matrix.line() == b"~01@ROUTE 1,3,2"
    matrix.sock.sendall(b"#05@ROUTE 1,3,1\r")  # for machine 5, not this one: no answer
    assert matrix.ask(b"#01@ROUTE? 1,3\r") == b"~01@ROUTE 1,3,2"


def test_error_codes_are_the_protocol_3000_ones(matrix: SisPeer) -> None:
    assert matrix.ask(b"#ROUTE 1,9,1\r") == b"~01@ROUTE ERR 003"  # output out of range
    assert matrix.ask(b"#ROUTE 1,1\r") == b"~01@ROUTE ERR 001"  # syntax
    assert matrix.ask(b"#FOO 1\r") == b"~01@FOO ERR 002"  # command not available
    assert matrix.ask(b"ROUTE 1,1,1\r") == b"~01@ERR 001"  # no '#'
    assert matrix.ask(b"#" + b"X" * 70 + b"\r") == b"~01@ERR 001"  # over 64 characters


def test_route_changes_are_announced_to_other_clients(matrix: SisPeer, bench: BenchThread) -> None:
    name = simulator(bench, "kramer-p3000")
    other = SisPeer(bench.site_transport(name), banner=False)
    try:
        assert other.ask(b"#ROUTE 1,5,6\r") == b"~01@ROUTE 1,5,6 OK"
        assert [matrix.line(), matrix.line()] == [b"~01@ROUTE 1,5,6", b"~01@ROUTE 2,5,6"]
        bench.set_state(name, video_ties={6: 2})  # the front panel
        assert matrix.line() == b"~01@ROUTE 1,6,2"
        assert other.line() == b"~01@ROUTE 1,6,2"
    finally:
        other.close()


def test_faults_error_delay_drop_disconnect(matrix: SisPeer, bench: BenchThread) -> None:
    name = simulator(bench, "kramer-p3000")
    bench.inject(name, "error", code="ERR 006")
    assert matrix.ask(b"#ROUTE 1,1,1\r") == b"~01@ROUTE ERR 006"
    bench.clear(name, "error")
    bench.inject(name, "delay", seconds=0.4)
    start = time.monotonic()
    assert matrix.ask(b"#\r") == b"~01@ OK"
    assert time.monotonic() - start >= 0.35
    bench.clear(name, "delay")
    bench.inject(name, "drop", rate=1.0)
    matrix.sock.sendall(b"#\r")
    matrix.sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        matrix.sock.recv(100)
    bench.clear(name, "drop")
    bench.inject(name, "disconnect")
    matrix.sock.settimeout(2)
    assert matrix.sock.recv(100) == b""


def test_refuse_then_control_over_http(bench: BenchThread) -> None:
    name = simulator(bench, "kramer-p3000")
    transport = bench.site_transport(name)
    control = bench.bench.control_url
    assert control is not None
    assert httpx.post(f"{control}/sims/{name}/faults", json={"kind": "refuse"}).status_code == 200
    time.sleep(0.2)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((transport["host"], transport["port"]), timeout=1)
    assert httpx.delete(f"{control}/sims/{name}/faults").status_code == 200
    time.sleep(0.2)
    patched = httpx.patch(f"{control}/sims/{name}/state", json={"video_ties": {"7": 4}})
    assert patched.status_code == 200 and patched.json()["video_ties"]["7"] == 4
    bad = httpx.patch(f"{control}/sims/{name}/state", json={"video_ties": {"7": 99}})
    assert bad.status_code == 422 and "outside 8x8" in bad.json()["detail"]
    peer = SisPeer(transport, banner=False)
    try:
        assert peer.ask(b"#ROUTE? 1,7\r") == b"~01@ROUTE 1,7,4"
    finally:
        peer.close()


SERIAL_BENCH = """\
bench: kramer-serial
devices:
  matrix:
    resource: {kind: pty, baudrate: 115200}
    driver: {type: kramer-p3000}
    state: {machine: 2, inputs: 4, outputs: 4}
"""


def test_serial_line_on_a_pty() -> None:
    with BenchThread(validate_bench(load_yaml(SERIAL_BENCH))) as serial_bench:
        transport = serial_bench.site_transport("matrix")
        assert transport["kind"] == "serial" and transport["baudrate"] == 115200
        line = SerialPeer(transport)
        try:
            line.send(b"#\r")
            assert line.read_until(b"\r\n") == b"~02@ OK\r\n"
            line.send(b"#ROUTE 1,4,4\r")
            assert line.read_until(b"\r\n") == b"~02@ROUTE 1,4,4 OK\r\n"
            line.send(b"#ROUTE 1,5,1\r")
            assert line.read_until(b"\r\n") == b"~02@ROUTE ERR 003\r\n"
            serial_bench.inject("matrix", "disconnect")  # the cable is pulled: silence
            line.send(b"#\r")
            assert line.read_for(0.3) == b""
        finally:
            line.close()
