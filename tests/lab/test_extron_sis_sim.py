"""The Extron SIS simulator over TCP: ties, errors, front-panel reports, injected faults."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest

from lab.harness import BenchThread
from tests.lab.wire import SisPeer, device, simulator


@pytest.fixture
def matrix(bench: BenchThread) -> Iterator[SisPeer]:
    peer = SisPeer(bench.site_transport(device(bench, "extron-sis")))
    yield peer
    peer.close()


def test_banner_identifies_the_switcher(matrix: SisPeer) -> None:
    assert matrix.banner.startswith(b"(c) Copyright") and b"Extron Electronics" in matrix.banner


def test_tie_and_query(matrix: SisPeer) -> None:
    assert matrix.ask(b"1*3!") == b"Out03 In01 All"
    assert matrix.ask(b"3!") == b"01"
    assert matrix.ask(b"4*3&") == b"Out03 In04 Vid"
    assert matrix.ask(b"3&") == b"04"
    assert matrix.ask(b"3$") == b"01"
    assert matrix.ask(b"2*!") == b"In02 All"
    assert matrix.ask(b"7!") == b"02"
    assert re.fullmatch(rb"V\d+X\d+ A\d+X\d+", matrix.ask(b"I"))


def test_commands_may_share_one_packet(matrix: SisPeer) -> None:
    matrix.sock.sendall(b"5*1!\r\n1!Q")
    assert [matrix.line(), matrix.line()] == [b"Out01 In05 All", b"05"]
    assert re.fullmatch(rb"\d+\.\d+.*", matrix.line())  # firmware version


def test_errors_are_the_extron_codes(matrix: SisPeer, bench: BenchThread) -> None:
    simulator(bench, "extron-sis")  # the simulated matrix is 8x8
    assert matrix.ask(b"9*1!") == b"E01"  # input out of range
    assert matrix.ask(b"1*9!") == b"E13"  # output out of range
    assert matrix.ask(b"X") == b"E10"  # invalid command
    assert matrix.ask(b"1*5B") == b"E13"  # invalid mute value
    assert matrix.ask(b"1*1B") == b"Vmt1*1"


def test_front_panel_tie_is_reported_to_every_client(matrix: SisPeer, bench: BenchThread) -> None:
    name = simulator(bench, "extron-sis")
    other = SisPeer(bench.site_transport(name))
    try:
        bench.set_state(name, video_ties={4: 6}, audio_ties={4: 6})
        assert matrix.line() == b"Out04 In06 All"
        assert other.line() == b"Out04 In06 All"
        assert other.ask(b"1*2!") == b"Out02 In01 All"
        assert matrix.line() == b"Out02 In01 All"  # the other client's change, unsolicited
    finally:
        other.close()
    assert bench.state(name)["video_ties"]["2"] == 1


def test_refuse_closes_the_port_until_cleared(bench: BenchThread) -> None:
    name = simulator(bench, "extron-sis")
    transport = bench.site_transport(name)
    bench.inject(name, "refuse")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((transport["host"], transport["port"]), timeout=1)
    bench.clear(name, "refuse")
    peer = SisPeer(transport)
    assert peer.ask(b"Q") == b"1.23"
    peer.close()


def test_disconnect_drops_live_connections(matrix: SisPeer, bench: BenchThread) -> None:
    name = simulator(bench, "extron-sis")
    bench.inject(name, "disconnect")
    matrix.sock.settimeout(1)
    assert matrix.sock.recv(100) == b""  # EOF
    bench.clear(name)
    assert SisPeer(bench.site_transport(name)).ask(b"N") == b"60-1494-01"


def test_device_error_and_delay(matrix: SisPeer, bench: BenchThread) -> None:
    name = simulator(bench, "extron-sis")
    bench.inject(name, "error", code="E22")
    assert matrix.ask(b"1*1!") == b"E22"
    bench.clear(name, "error")
    bench.inject(name, "delay", seconds=0.4)
    start = time.monotonic()
    assert matrix.ask(b"Q") == b"1.23"
    assert time.monotonic() - start >= 0.35


def test_garble_and_drop(matrix: SisPeer, bench: BenchThread) -> None:
    name = simulator(bench, "extron-sis")
    bench.inject(name, "garble", rate=1.0)
    matrix.sock.sendall(b"Q")
    time.sleep(0.2)
    garbled = matrix.sock.recv(100)
    assert len(garbled) == len(b"1.23\r\n") and garbled != b"1.23\r\n"
    bench.clear(name, "garble")
    bench.inject(name, "drop", rate=1.0)
    matrix.sock.sendall(b"Q")
    matrix.sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        matrix.sock.recv(100)


def test_flap_refuses_then_accepts_again(bench: BenchThread) -> None:
    name = simulator(bench, "extron-sis")
    transport = bench.site_transport(name)
    bench.inject(name, "flap", down=0.6, up=5)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((transport["host"], transport["port"]), timeout=1)
    time.sleep(0.7)
    peer = SisPeer(transport)
    assert peer.ask(b"Q") == b"1.23"
    peer.close()
