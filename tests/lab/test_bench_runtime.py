"""Bench runtime: crash containment, the HTTP control endpoint, scenario files, site files."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from hub.config import load_site
from hub.yamlsource import load_yaml
from lab.bench import Bench
from lab.benchfile import validate_bench
from lab.faults import FaultKind, FaultSpec
from lab.scenario import ScenarioError, load_scenario
from lab.sitefile import site_document, write_site

SMALL = """\
bench: small
devices:
  radio:
    resource: {kind: pty}
    driver: {type: kenwood-cat, name: HF radio, poll_interval: 2}
  matrix:
    resource: {kind: tcp}
    driver: {type: extron-sis}
    state: {banner: false}
"""
UPS = """\
  ups:
    resource: {kind: snmp, community: lab}
    driver: {type: ups-mib}
"""


async def ask_matrix(bench: Bench, command: bytes) -> bytes:
    transport = bench.site_transport("matrix")
    reader, writer = await asyncio.open_connection(transport["host"], transport["port"])
    writer.write(command)
    line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 2)
    writer.close()
    return line


async def test_a_crashing_simulator_is_reported_and_the_rest_run_on() -> None:
    async with Bench(validate_bench(load_yaml(SMALL))) as bench:
        bench.inject("radio", FaultSpec(kind=FaultKind.CRASH))
        fd = os.open(bench.site_transport("radio")["port"], os.O_RDWR | os.O_NOCTTY)
        os.write(fd, b"FA;")
        os.close(fd)
        for _ in range(50):
            if bench.crashes:
                break
            await asyncio.sleep(0.02)
        assert bench.crashes == [
            {
                "name": "radio",
                "type": "kenwood-cat",
                "reason": "SimulatorCrashed: crash fault injected",
            }
        ]
        assert bench.describe()["simulators"][0]["status"] == "crashed"
        assert await ask_matrix(bench, b"Q") == b"1.23\r\n"


async def test_snmpsim_dying_is_reported_and_the_bench_stays_up() -> None:
    async with Bench(validate_bench(load_yaml(SMALL + UPS))) as bench:
        (pid,) = bench.pids()
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if bench.crashes:
                break
            await asyncio.sleep(0.05)
        assert bench.crashes[0]["name"] == "ups"
        assert bench.crashes[0]["reason"].startswith("RuntimeError: snmpsim exited with code -9")
        assert await ask_matrix(bench, b"N") == b"60-1494-01\r\n"
    assert bench.pids() == []


async def test_http_control_endpoint() -> None:
    async with Bench(validate_bench(load_yaml(SMALL))) as bench:
        assert bench.control_url is not None
        async with httpx.AsyncClient(base_url=bench.control_url) as http:
            listing = (await http.get("/sims")).json()
            assert [s["name"] for s in listing["simulators"]] == ["radio", "matrix"]
            reply = await http.patch("/sims/matrix/state", json={"video_ties": {"3": 5}})
            assert reply.status_code == 200 and reply.json()["video_ties"]["3"] == 5
            assert await ask_matrix(bench, b"3&") == b"05\r\n"
            bad = await http.patch("/sims/radio/state", json={"vfo_a": 1})
            assert bad.status_code == 422 and "vfo_a" in bad.json()["detail"]
            fault = await http.post("/sims/matrix/faults", json={"kind": "error", "code": "E24"})
            assert fault.json()["faults"] == [
                {
                    "kind": "error",
                    "seconds": 0.5,
                    "rate": 1.0,
                    "code": "E24",
                    "up": 1.0,
                    "down": 1.0,
                }
            ]
            assert await ask_matrix(bench, b"Q") == b"E24\r\n"
            bad = await http.post("/sims/matrix/faults", json={"kind": "meteor"})
            assert bad.status_code == 422 and bad.json()["detail"].startswith("kind:")
            assert (await http.delete("/sims/matrix/faults/error")).json()["faults"] == []
            assert (await http.get("/sims/nope")).status_code == 404


async def test_scenario_file_scripts_faults_over_time(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "scenario: t\nsteps:\n"
        "  - {at: 0, device: matrix, set: {video_ties: {1: 4}}}\n"
        "  - {at: 0.2, device: matrix, fault: {kind: error, code: E17}, for: 0.4}\n"
    )
    spec = validate_bench(load_yaml(SMALL + f"strategy: {{scenario: {scenario}}}\n"))
    async with Bench(spec) as bench:
        await asyncio.sleep(0.35)
        assert await ask_matrix(bench, b"1&") == b"E17\r\n"
        await asyncio.sleep(0.5)
        assert await ask_matrix(bench, b"1&") == b"04\r\n"


def test_bad_scenario_file_names_the_step(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("scenario: t\nsteps:\n  - {at: 1, device: m, fault: {kind: meteor}}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(scenario)
    assert caught.value.problems[0].startswith("steps[0].fault.kind: expected one of 'disconnect'")
    assert caught.value.problems[0].endswith("line 3")


def test_shipped_scenarios_load() -> None:
    root = Path(__file__).resolve().parents[2] / "lab" / "scenarios"
    for path in root.glob("*.yaml"):
        assert load_scenario(path).steps


async def test_site_file_points_the_hub_at_the_simulators(tmp_path: Path) -> None:
    async with Bench(validate_bench(load_yaml(SMALL))) as bench:
        path = write_site(tmp_path / "site.yaml", site_document(bench, hub={"name": "t"}))
        site = await asyncio.to_thread(load_site, path)
    radio, matrix = site.devices
    assert radio.type == "kenwood-cat" and radio.name == "HF radio" and radio.poll_interval == 2
    assert radio.transport.kind == "serial" and radio.transport.port.startswith("/dev/pts/")
    assert matrix.transport.kind == "tcp" and matrix.transport.port > 0
