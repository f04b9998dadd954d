"""What the lab's real peers (snmpd, snmpsim, mosquitto, upsd) share: finding a Debian
program, picking a free loopback port, and stopping a child process for good."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket


def find_program(name: str, install: str, *, error: type[RuntimeError] = RuntimeError) -> str:
    """The path of ``name`` (``/usr/sbin``, ``/usr/bin``, then ``PATH``); ``error`` with
    ``install`` (how to get it) when it is missing."""
    for folder in ("/usr/sbin", "/usr/bin"):
        path = os.path.join(folder, name)
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found is None:
        raise error(f"{name} is missing: {install}")
    return found


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """A port free right now on ``host`` (another process may still take it before us)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def stop_process(proc: asyncio.subprocess.Process | None, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; a process already gone is fine."""
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
