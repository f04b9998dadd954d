"""The VISCA camera simulator: serial packets on a pty, VISCA over IP on UDP, errors and faults."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import httpx
import pytest

from lab.harness import BenchThread
from tests.lab.wire import SerialPeer, device

HEADER = struct.Struct(">HHI")


def camera_on(bench: BenchThread, kind: str) -> str:
    """The bench's VISCA camera on ``kind`` (pty or udp)."""
    for name, spec in bench.spec.devices.items():
        if spec.driver.type == "visca" and spec.resource.kind == kind and spec.simulated:
            return name
    pytest.skip(f"the bench has no simulated VISCA camera on {kind}")


@pytest.fixture
def serial(bench: BenchThread) -> Iterator[tuple[str, SerialPeer]]:
    device(bench, "visca")
    name = camera_on(bench, "pty")
    peer = SerialPeer(bench.site_transport(name))
    yield name, peer
    peer.close()


def ask(peer: SerialPeer, hex_packet: str, replies: int = 1) -> list[str]:
    peer.send(bytes.fromhex(hex_packet))
    return [peer.read_until(b"\xff").hex(" ") for _ in range(replies)]


def test_serial_commands_inquiries_and_completions(
    serial: tuple[str, SerialPeer], bench: BenchThread
) -> None:
    name, peer = serial
    assert ask(peer, "81 01 00 01 ff") == ["90 50 ff"]  # IF_Clear
    assert ask(peer, "81 09 04 00 ff") == ["90 50 02 ff"]  # power on
    assert ask(peer, "81 01 06 01 18 14 02 01 ff", 2) == ["90 41 ff", "90 51 ff"]  # right+up
    time.sleep(0.2)
    assert ask(peer, "81 01 06 01 01 01 03 03 ff", 2) == ["90 41 ff", "90 51 ff"]  # stop
    state = bench.state(name)
    assert state["pan"] > 0 and state["tilt"] > 0
    answer = ask(peer, "81 09 06 12 ff")[0].split(" ")
    assert answer[:2] == ["90", "50"] and len(answer) == 11
    # the stored preset 1: ACK in socket 2 at once, completion when the move is over
    assert ask(peer, "81 01 04 3f 02 01 ff", 2) == ["90 42 ff", "90 52 ff"]
    assert ask(peer, "81 09 04 47 ff") == ["90 50 00 07 0d 00 ff"]  # zoom 2000
    assert ask(peer, "81 01 04 3f 01 09 ff", 2) == ["90 41 ff", "90 51 ff"]  # store 9
    assert bench.state(name)["presets"]["9"] == {"pan": 400, "tilt": 100, "zoom": 2000}


def test_serial_error_replies(serial: tuple[str, SerialPeer], bench: BenchThread) -> None:
    name, peer = serial
    assert ask(peer, "81 01 7e 01 ff") == ["90 60 02 ff"]  # syntax error
    assert ask(peer, "81 01 04 3f 02 20 ff") == ["90 60 41 ff"]  # preset never stored
    assert ask(peer, "81" + " 01" * 16 + " ff") == ["90 60 01 ff"]  # message length
    bench.set_state(name, move_time=1.0)
    assert ask(peer, "81 01 06 04 ff") == ["90 42 ff"]  # home, still moving...
    assert ask(peer, "81 01 06 04 ff") == ["90 60 03 ff"]  # ...so the buffer is full
    assert ask(peer, "81 01 00 01 ff") == ["90 50 ff"]  # IF_Clear cancels the move
    bench.set_state(name, power=False)
    assert ask(peer, "81 09 04 00 ff") == ["90 50 03 ff"]
    assert ask(peer, "81 01 06 04 ff") == ["90 60 41 ff"]  # not in standby
    assert ask(peer, "82 09 04 00 ff") == [""]  # camera 2 is not on this line
    bench.inject(name, "error", code="04")
    assert ask(peer, "81 09 04 00 ff") == ["90 60 04 ff"]
    bench.clear(name)
    bench.inject(name, "disconnect")
    peer.send(bytes.fromhex("81 09 04 00 ff"))
    assert peer.read_for(0.3) == b""


@pytest.fixture
def udp(bench: BenchThread) -> Iterator[tuple[str, socket.socket, tuple[str, int]]]:
    name = camera_on(bench, "udp")
    transport = bench.site_transport(name)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    yield name, sock, (transport["host"], transport["port"])
    sock.close()


def exchange(
    sock: socket.socket, to: tuple[str, int], kind: int, seq: int, hex_payload: str, replies: int
) -> list[tuple[int, int, str]]:
    payload = bytes.fromhex(hex_payload)
    sock.sendto(HEADER.pack(kind, len(payload), seq) + payload, to)
    out = []
    for _ in range(replies):
        data = sock.recv(64)
        got_kind, length, got_seq = HEADER.unpack_from(data)
        assert length == len(data) - HEADER.size
        out.append((got_kind, got_seq, data[HEADER.size :].hex(" ")))
    return out


def test_visca_over_ip(udp: tuple[str, socket.socket, tuple[str, int]]) -> None:
    _, sock, to = udp
    assert exchange(sock, to, 0x0200, 0, "01", 1) == [(0x0201, 0, "01")]  # RESET
    assert exchange(sock, to, 0x0110, 1, "81 09 04 00 ff", 1) == [(0x0111, 1, "90 50 02 ff")]
    assert exchange(sock, to, 0x0100, 2, "81 01 04 07 02 ff", 2) == [
        (0x0111, 2, "90 41 ff"),
        (0x0111, 2, "90 51 ff"),
    ]
    # a sequence number older than the last one is abnormal
    assert exchange(sock, to, 0x0100, 1, "81 01 04 07 00 ff", 1) == [(0x0201, 1, "0f 01")]
    assert exchange(sock, to, 0x0999, 3, "01", 1) == [(0x0201, 3, "0f 02")]  # bad type
    assert exchange(sock, to, 0x0100, 4, "81 01 7e ff", 1) == [(0x0111, 4, "90 60 02 ff")]


def test_visca_over_ip_faults_and_http_control(
    udp: tuple[str, socket.socket, tuple[str, int]], bench: BenchThread
) -> None:
    name, sock, to = udp
    control = bench.bench.control_url
    assert httpx.post(f"{control}/sims/{name}/faults", json={"kind": "drop", "rate": 1}).is_success
    sock.sendto(HEADER.pack(0x0200, 1, 0) + b"\x01", to)
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(64)
    assert httpx.delete(f"{control}/sims/{name}/faults/drop").is_success
    sock.settimeout(2)
    patched = httpx.patch(f"{control}/sims/{name}/state", json={"zoom": 0x4000})
    assert patched.is_success and patched.json()["zoom"] == 0x4000
    assert exchange(sock, to, 0x0110, 1, "81 09 04 47 ff", 1) == [
        (0x0111, 1, "90 50 04 00 00 00 ff")
    ]
    bench.inject(name, "refuse")  # the port is closed: ICMP unreachable
    sock.sendto(HEADER.pack(0x0110, 5, 2) + bytes.fromhex("81 09 04 00 ff"), to)
    with pytest.raises((ConnectionRefusedError, TimeoutError)):
        sock.settimeout(0.5)
        sock.recv(64)
