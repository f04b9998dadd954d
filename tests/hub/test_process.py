"""The hub as a process: clean shutdown on SIGTERM/SIGINT, and no acknowledged event lost
to ``kill -9``."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.hub.sitefile import auth, site_dict

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubProcess:
    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        data = site_dict(tmp_path / "var")
        data["hub"]["api"]["port"] = self.port
        self.site = tmp_path / "site.yaml"
        self.site.write_text(yaml.safe_dump(data))
        self.log = tmp_path / "hub.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub", "run", "--config", str(self.site)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError("hub did not come up:\n" + self.log.read_text())

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path)
    yield process
    if process.proc is not None and process.proc.poll() is None:
        process.proc.kill()
        process.proc.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_clean_shutdown_within_five_seconds(hub_process: HubProcess, signum: int) -> None:
    hub_process.start()
    started = time.monotonic()
    hub_process.signal(signum)
    assert hub_process.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    log = hub_process.log.read_text()
    assert f"hub stopping: {signal.Signals(signum).name}" in log
    assert "hub stopped" in log
    assert "Traceback" not in log


async def test_kill_9_loses_no_acknowledged_event(hub_process: HubProcess) -> None:
    hub_process.start()
    acknowledged: list[int] = []
    stop = asyncio.Event()
    enough = asyncio.Event()

    async def writer(client: httpx.AsyncClient, n: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                response = await client.post(
                    "/api/v1/duty-log", json={"text": f"w{n}-{i}"}, headers=auth("dispatcher")
                )
            except httpx.HTTPError:
                return  # the hub died mid-request: that one was never acknowledged
            if response.status_code == 201:
                acknowledged.append(response.json()["id"])
                if len(acknowledged) >= 300:
                    enough.set()
            i += 1

    async with httpx.AsyncClient(base_url=hub_process.url, timeout=5) as client:
        writers = [asyncio.create_task(writer(client, n)) for n in range(8)]
        await asyncio.wait_for(enough.wait(), 60)
        os.kill(hub_process.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
        await asyncio.gather(*writers)
    assert hub_process.wait(timeout=5) == -signal.SIGKILL
    before_restart = sorted(acknowledged)

    hub_process.start()
    async with httpx.AsyncClient(base_url=hub_process.url, timeout=5) as client:
        stored: set[int] = set()
        after = 0
        while True:
            page = (
                await client.get(
                    "/api/v1/events",
                    params={"after": after, "limit": 5000, "kinds": "duty."},
                    headers=auth("ops"),
                )
            ).json()
            stored.update(e["id"] for e in page["events"])
            after = page["last_id"]
            if not page["more"]:
                break
        assert set(before_restart) <= stored
        new = await client.post("/api/v1/duty-log", json={"text": "x"}, headers=auth("ops"))
        assert new.status_code == 403  # ops may not write the duty log
        new = await client.post(
            "/api/v1/duty-log", json={"text": "after restart"}, headers=auth("dispatcher")
        )
        assert new.json()["id"] > max(stored)
    hub_process.signal(signal.SIGTERM)
    assert hub_process.wait(timeout=10) == 0
