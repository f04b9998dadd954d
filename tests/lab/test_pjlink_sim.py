"""The PJLink projector simulator: greeting, MD5 auth, warm-up, error codes, faults, control."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from lab.harness import BenchThread
from tests.lab.wire import device, simulator


class PjlinkPeer:
    """A raw PJLink controller: CR-terminated lines over TCP."""

    def __init__(self, transport: dict[str, object]) -> None:
        self.sock = socket.create_connection((transport["host"], transport["port"]), timeout=2)  # type: ignore[arg-type]
        self.buffer = b""
        self.greeting = self.line()

    def close(self) -> None:
        self.sock.close()

    def line(self, timeout: float = 2.0) -> bytes:
        self.sock.settimeout(timeout)
        while b"\r" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionResetError("connection closed by the projector")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r", 1)
        return line

    def ask(self, command: bytes) -> bytes:
        self.sock.sendall(command + b"\r")
        return self.line()


@pytest.fixture
def projector(bench: BenchThread) -> Iterator[tuple[str, dict[str, object]]]:
    name = device(bench, "pjlink")
    yield name, bench.site_transport(name)


def digest(greeting: bytes, password: str) -> bytes:
    random = greeting.split(b" ")[2]
    return hashlib.md5(random + password.encode(), usedforsecurity=False).hexdigest().encode()


def test_secured_greeting_and_md5_authentication(
    projector: tuple[str, dict[str, object]], bench: BenchThread
) -> None:
    name, transport = projector
    password = bench.state(name)["password"]
    peer = PjlinkPeer(transport)
    try:
        assert peer.greeting.startswith(b"PJLINK 1 ") and len(peer.greeting) == 17
        assert peer.ask(digest(peer.greeting, password) + b"%1POWR ?") == b"%1POWR=1"
        assert peer.ask(b"%1INPT ?") == b"%1INPT=31"  # authenticated for the connection
        assert peer.ask(b"%1NAME ?") == b"%1NAME=Dispatch wall projector"
        assert peer.ask(b"%1CLSS ?") == b"%1CLSS=1"
    finally:
        peer.close()
    wrong = PjlinkPeer(transport)
    try:
        assert wrong.ask(digest(wrong.greeting, "guess") + b"%1POWR ?") == b"PJLINK ERRA"
        wrong.sock.settimeout(2)
        assert wrong.sock.recv(10) == b""  # and the projector hangs up
    finally:
        wrong.close()


def open_peer(bench: BenchThread, name: str, transport: dict[str, object]) -> PjlinkPeer:
    bench.set_state(name, password=None)
    peer = PjlinkPeer(transport)
    assert peer.greeting == b"PJLINK 0"
    return peer


def test_power_cycle_and_error_codes(
    projector: tuple[str, dict[str, object]], bench: BenchThread
) -> None:
    name, transport = projector
    bench.set_state(name, power="off", warm_up=0.3, cool_down=0.3)
    peer = open_peer(bench, name, transport)
    try:
        assert peer.ask(b"%1INPT ?") == b"%1INPT=ERR3"  # standby
        assert peer.ask(b"%1POWR 1") == b"%1POWR=OK"
        assert peer.ask(b"%1POWR ?") == b"%1POWR=3"  # warming
        assert peer.ask(b"%1POWR 0") == b"%1POWR=ERR3"  # cannot cool down while warming
        assert peer.ask(b"%1INPT 32") == b"%1INPT=ERR3"
        time.sleep(0.5)
        assert peer.ask(b"%1POWR ?") == b"%1POWR=1"
        assert peer.ask(b"%1INPT 32") == b"%1INPT=OK"
        assert peer.ask(b"%1INPT 99") == b"%1INPT=ERR2"
        assert peer.ask(b"%1POWR 7") == b"%1POWR=ERR2"
        assert peer.ask(b"%1ZZZZ ?") == b"%1ZZZZ=ERR1"
        assert peer.ask(b"%1ERST ?") == b"%1ERST=000000"
        assert peer.ask(b"%1LAMP ?") == b"%1LAMP=1234 1"
        assert peer.ask(b"%1INST ?") == b"%1INST=11 12 31 32 51"
        assert peer.ask(b"%1POWR 0") == b"%1POWR=OK"
        assert peer.ask(b"%1POWR ?") == b"%1POWR=2"  # cooling
    finally:
        peer.close()


def test_faults_and_control_over_http(
    projector: tuple[str, dict[str, object]], bench: BenchThread
) -> None:
    name, transport = projector
    simulator(bench, "pjlink")
    control = bench.bench.control_url
    peer = open_peer(bench, name, transport)
    try:
        assert httpx.post(
            f"{control}/sims/{name}/faults", json={"kind": "error", "code": "ERR4"}
        ).is_success
        assert peer.ask(b"%1POWR ?") == b"%1POWR=ERR4"
        assert httpx.delete(f"{control}/sims/{name}/faults/error").is_success
        patched = httpx.patch(f"{control}/sims/{name}/state", json={"errors": "102000"})
        assert patched.is_success
        assert peer.ask(b"%1ERST ?") == b"%1ERST=102000"
        bad = httpx.patch(f"{control}/sims/{name}/state", json={"errors": "9"})
        assert bad.status_code == 422 and "errors must be 6 digits" in bad.json()["detail"]
        bench.inject(name, "garble", rate=1.0)
        peer.sock.sendall(b"%1POWR ?\r")
        time.sleep(0.2)
        assert peer.sock.recv(100) != b"%1POWR=1\r"
        bench.clear(name, "garble")
        bench.inject(name, "disconnect")
        peer.sock.settimeout(2)
        assert peer.sock.recv(100) == b""
    finally:
        peer.close()
