"""Test-side peers for the lab tests: raw CAT over a serial/pty path, SIS over TCP, net-snmp."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import termios
import time
import tty
from typing import Any

import pytest

from lab.harness import BenchThread

BAUD = {9600: termios.B9600, 19200: termios.B19200, 38400: termios.B38400, 57600: termios.B57600}


def device(bench: BenchThread, type_name: str) -> str:
    """The bench's device of ``type_name``; skip if the bench has none or it is unreachable."""
    name = bench.device_of_type(type_name)
    if name is None:
        pytest.skip(f"the bench has no {type_name} device")
    if not bench.simulated(name):
        problem = unreachable(bench.site_transport(name))
        if problem:
            pytest.skip(f"real device {name} is unreachable: {problem}")
    return name


def unreachable(transport: dict[str, Any]) -> str | None:
    """Why a real device cannot be reached (``None`` if it can)."""
    kind = transport["kind"]
    if kind == "serial":
        return None if os.path.exists(transport["port"]) else f"no {transport['port']}"
    if kind == "tcp":
        try:
            socket.create_connection((transport["host"], transport["port"]), timeout=2).close()
        except OSError as err:
            return str(err)
        return None
    if kind == "snmp":
        out = snmpget(transport, "1.3.6.1.2.1.1.1.0")
        return None if "=" in out else out.strip()
    return None


def simulator(bench: BenchThread, type_name: str) -> str:
    """Like ``device`` but skip on real hardware: the test injects faults or changes state."""
    name = device(bench, type_name)
    if not bench.simulated(name):
        pytest.skip(f"{name} is real hardware; this test needs its simulator")
    return name


class SerialPeer:
    """The hub's side of a serial line (pty slave or real port), raw bytes."""

    def __init__(self, transport: dict[str, Any]) -> None:
        try:
            self.fd = os.open(transport["port"], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as err:
            pytest.skip(f"cannot open {transport['port']}: {err.strerror}")
        tty.setraw(self.fd)
        attrs = termios.tcgetattr(self.fd)
        speed = BAUD.get(int(transport.get("baudrate", 9600)), termios.B9600)
        attrs[4] = attrs[5] = speed
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        self.drain()

    def close(self) -> None:
        os.close(self.fd)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read_for(self, seconds: float) -> bytes:
        """Everything that arrives within ``seconds``."""
        out = b""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                out += os.read(self.fd, 4096)
        return out

    def read_until(self, end: bytes, timeout: float = 1.0) -> bytes:
        out = b""
        deadline = time.monotonic() + timeout
        while not out.endswith(end) and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                out += os.read(self.fd, 1)
        return out

    def ask(self, command: bytes, timeout: float = 1.0) -> bytes:
        self.send(command)
        return self.read_until(b";", timeout)

    def drain(self) -> None:
        self.read_for(0.05)


class SisPeer:
    """A TCP client of an Extron SIS port."""

    def __init__(self, transport: dict[str, Any], banner: bool = True) -> None:
        self.sock = socket.create_connection((transport["host"], transport["port"]), timeout=2)
        self.buffer = b""
        if banner:
            self.banner = self.line()

    def close(self) -> None:
        self.sock.close()

    def line(self, timeout: float = 2.0) -> bytes:
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionResetError("connection closed by the matrix")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def ask(self, command: bytes, timeout: float = 2.0) -> bytes:
        self.sock.sendall(command)
        return self.line(timeout)


def snmpget(transport: dict[str, Any], *oids: str, timeout: float = 1.0) -> str:
    """net-snmp's snmpget against the agent; returns stdout+stderr (-On numeric OIDs)."""
    args = ["snmpget", "-v", transport.get("version", "2c"), "-c"]
    args += [str(transport.get("community", "public")), "-On", "-t", str(timeout), "-r", "0"]
    args += [f"{transport['host']}:{transport['port']}", *oids]
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 10)
    return done.stdout + done.stderr
