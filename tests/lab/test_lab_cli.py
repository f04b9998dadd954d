"""``cchub lab up``/``down`` and ``cchub demo`` end to end as subprocesses, bounded, cleaned up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub.config import load_site
from tests.lab.wire import SisPeer, snmpget

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "lab" / "benches" / "default.yaml"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_line(proc: subprocess.Popen[str], marker: str, timeout: float = 90) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"exited ({proc.poll()}) before {marker!r}: {lines}")
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} within {timeout} s: {lines}")


@pytest.fixture
def run(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def lab(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lab", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(BENCH.parents[2])},
    )


def test_lab_up_writes_a_working_site_and_lab_down_stops_everything(
    tmp_path: Path, run: list[subprocess.Popen[str]]
) -> None:
    up = lab("up", "--bench", str(BENCH), "--write-site", "site.yaml", cwd=tmp_path)
    run.append(up)
    wait_for_line(up, "stop with Ctrl-C")
    state = json.loads((tmp_path / "var/lab/state.json").read_text())
    assert state["pid"] == up.pid and len(state["children"]) == 1
    site = load_site(tmp_path / "site.yaml")
    by_type = {d.type: d.transport.model_dump() for d in site.devices}
    assert {"kenwood-cat", "extron-sis", "ups-mib"} <= set(by_type)  # the first three, at least
    assert Path(by_type["kenwood-cat"]["port"]).exists()
    assert SisPeer(by_type["extron-sis"]).ask(b"Q") == b"1.23"
    snmp = {**by_type["ups-mib"], "community": "public"}
    assert "INTEGER: 100" in snmpget(snmp, "1.3.6.1.2.1.33.1.2.4.0")

    down = subprocess.run(
        [sys.executable, "-m", "lab", "down"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 0 and "stopped" in down.stdout
    assert up.wait(20) == 0
    assert not alive(state["children"][0]["pid"])
    assert not (tmp_path / "var/lab/state.json").exists()


def test_ctrl_c_stops_lab_up_and_its_children(
    tmp_path: Path, run: list[subprocess.Popen[str]]
) -> None:
    up = lab("up", "--bench", str(BENCH), cwd=tmp_path)
    run.append(up)
    wait_for_line(up, "stop with Ctrl-C")
    child = json.loads((tmp_path / "var/lab/state.json").read_text())["children"][0]["pid"]
    up.send_signal(signal.SIGINT)
    assert up.wait(20) == 0
    assert not alive(child)
    assert (
        "no bench is up"
        in subprocess.run(
            [sys.executable, "-m", "lab", "status"], cwd=tmp_path, capture_output=True, text=True
        ).stdout
    )


def test_bad_bench_file_fails_before_starting_anything(tmp_path: Path) -> None:
    bad = tmp_path / "b.yaml"
    bad.write_text("bench: b\ndevices:\n  x:\n    resource: {kind: tcp}\n    driver: {type: y}\n")
    done = subprocess.run(
        [sys.executable, "-m", "lab", "up", "--bench", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "devices.x.driver.type: unknown device type 'y' (legal types: " in done.stderr


def test_demo_runs_bench_and_hub_then_stops_on_ctrl_c(
    tmp_path: Path, run: list[subprocess.Popen[str]]
) -> None:
    ports = ["--api-port", "0", "--sip-port", "0", "--snmp-port", "0"]
    demo = subprocess.Popen(
        [sys.executable, "-m", "hub", "demo", *ports, "--dir", "demo"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(BENCH.parents[2])},
    )
    run.append(demo)
    lines = wait_for_line(demo, "Ctrl-C stops")
    api = next(line.split()[1] for line in lines if line.strip().startswith("API"))
    roles = {"dispatcher", "engineer", "ops", "platform", "admin"}
    words = [line.split() for line in lines]
    tokens = {w[0]: w[1] for w in words if len(w) == 2 and w[0] in roles}
    assert set(tokens) == roles
    assert httpx.get(api, timeout=5).status_code == 200
    site_text = (tmp_path / "demo/site.yaml").read_text()
    assert "${CCHUB_DEMO_TOKEN_ADMIN}" in site_text and tokens["admin"] not in site_text
    env = (tmp_path / "demo/demo.env").read_text()
    assert f"CCHUB_DEMO_TOKEN_ADMIN={tokens['admin']}" in env
    assert oct((tmp_path / "demo/demo.env").stat().st_mode & 0o777) == "0o600"
    demo.send_signal(signal.SIGINT)
    assert demo.wait(30) == 0
