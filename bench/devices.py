"""Benchmark: commands through one Extron SIS matrix (and what the hub adds), and 100 matrices
polled at once by one hub (its CPU, memory and poll success).

Run:  .venv/bin/python bench/devices.py                  (both parts, beside the reference)
      .venv/bin/python bench/devices.py --part commands  (one device: raw socket / driver / API)
      .venv/bin/python bench/devices.py --part fleet --devices 100 --sim-processes 4 --seconds 20
      .venv/bin/python bench/devices.py --save           (this run becomes the reference)
The simulators (``lab/sims/extron_sis.py``) run in their own processes (this script with
``--serve-sims``) and the hub as ``python -m hub run`` in its own, so no two share a loop.
Figures are printed beside ``bench/devices_reference.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devices.config import DeviceConfig  # noqa: E402
from devices.drivers.extron_sis import ExtronSis  # noqa: E402
from lab.bench import Bench  # noqa: E402
from lab.benchfile import BenchSpec  # noqa: E402
from lab.faults import FaultInjector  # noqa: E402

REFERENCE = ROOT / "bench" / "devices_reference.json"
TOKEN = "bench-token-0123456789"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


# --- the simulator processes -----------------------------------------------------------


class CountingFaults(FaultInjector):
    """The Extron simulator asks its fault injector once per command it answers: count there."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.commands = 0

    def error_code(self, default: str) -> str | None:
        self.commands += 1
        return super().error_code(default)


async def serve_sims(count: int, outputs: int, prefix: str) -> None:
    """Child process: ``count`` Extron simulators; prints their transports as one JSON line,
    then answers ``counts`` on stdin with the commands each has answered; EOF stops it."""
    device = {
        "resource": {"kind": "tcp", "host": "127.0.0.1", "port": 0},
        "driver": {"type": "extron-sis"},
        "state": {"inputs": 16, "outputs": outputs, "banner": True},
    }
    spec = BenchSpec.model_validate(
        {
            "bench": "bench-devices",
            "devices": {f"{prefix}{i:03d}": device for i in range(count)},
            "strategy": {"start_timeout": 60},
        }
    )
    async with Bench(spec, control=False) as bench:
        counters = {}
        for name, sim in bench.sims.items():
            counters[name] = sim.faults = CountingFaults(name)
        transports = {name: bench.site_transport(name) for name in bench.sims}
        print(json.dumps({"transports": transports}), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if line.strip() == b"counts":
                counts = {name: c.commands for name, c in counters.items()}
                print(json.dumps({"counts": counts}), flush=True)


class SimProcess:
    """One ``--serve-sims`` child, driven over its stdin/stdout."""

    def __init__(self, count: int, outputs: int, prefix: str) -> None:
        command = [
            sys.executable,
            __file__,
            "--serve-sims",
            str(count),
            "--outputs",
            str(outputs),
            "--prefix",
            prefix,
        ]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        self.transports: dict[str, dict[str, Any]] = self._answer("transports")

    def _answer(self, key: str) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simulator process {self.proc.pid} exited ({self.proc.wait()})")
        return json.loads(line)[key]

    def counts(self) -> dict[str, int]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("counts\n")
        self.proc.stdin.flush()
        counts: dict[str, int] = self._answer("counts")
        return counts

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- the hub process -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubProcess:
    """``python -m hub run`` on a site file written here; stopped with SIGTERM."""

    def __init__(self, workdir: Path, devices: list[dict[str, Any]], **sections: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        site = {
            "hub": {"data_dir": str(workdir), "log_level": "warning", "api": {"port": self.port}},
            "users": [{"name": "bench", "role": "engineer", "token": TOKEN}],
            "devices": devices,
            **sections,
        }
        path = workdir / "site.yaml"
        path.write_text(yaml.safe_dump(site, sort_keys=False))
        self.command = [sys.executable, "-m", "hub", "run", "--config", str(path)]
        print("  $", " ".join(self.command))
        self.proc = subprocess.Popen(self.command, cwd=ROOT)

    def wait_ready(self, devices: int, within: float) -> None:
        deadline = time.monotonic() + within
        headers = {"Authorization": f"Bearer {TOKEN}"}
        online = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited with status {self.proc.returncode}")
            try:
                listed = httpx.get(self.url + "/api/v1/devices", headers=headers).json()
                online = sum(1 for d in listed if d["online"])
                if online == devices:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"only {online}/{devices} devices came online within {within:.0f} s")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


# --- part (a): one device --------------------------------------------------------------


def latency(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


async def closed_loop(count: int, one: Callable[[int], Awaitable[None]]) -> dict[str, float]:
    """``count`` requests one after the other: rate and latency."""
    samples = []
    started = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        await one(i)
        samples.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    return {"per_s": count / elapsed, **latency(samples)}


def tie(i: int) -> tuple[int, int]:
    """(input, output) of the i-th route: every command really changes a tie."""
    return i % 16 + 1, i % 8 + 1


async def raw_socket(transport: dict[str, Any], count: int) -> dict[str, float]:
    """A bare client: the same SIS bytes the driver sends, one reply line awaited each."""
    reader, writer = await asyncio.open_connection(transport["host"], transport["port"])
    await reader.readline()  # the copyright banner

    async def one(i: int) -> None:
        source, output = tie(i)
        writer.write(f"{source}*{output}!".encode())
        reply = await reader.readline()
        if not reply.startswith(b"Out"):
            raise RuntimeError(f"unexpected reply {reply!r}")

    try:
        return await closed_loop(count, one)
    finally:
        writer.close()


def driver_config(name: str, transport: dict[str, Any], poll_interval: float) -> dict[str, Any]:
    return {
        "id": name,
        "type": "extron-sis",
        "transport": transport,
        "poll_interval": poll_interval,
        "timeout": 2.0,
        "options": {"outputs": 8, "inputs": 16, "retries": 1, "queue_size": 64},
    }


async def through_driver(transport: dict[str, Any], count: int, callers: int) -> dict[str, Any]:
    """``Device.command`` in this process: one caller (latency) and ``callers`` queued."""
    # no polls during the run: they would sit in the queue between the commands
    config = DeviceConfig.model_validate(driver_config("m", transport, 3600))
    device = ExtronSis(config)
    online = asyncio.Event()
    device.add_listener(lambda snapshot: online.set() if snapshot.online else None)
    async with device:
        async with asyncio.timeout(10):
            await online.wait()

        async def one(i: int) -> None:
            source, output = tie(i)
            await device.command({"command": "route", "input": source, "output": output})

        single = await closed_loop(count, one)
        started = time.perf_counter()

        async def caller(k: int) -> None:
            for i in range(k, count, callers):
                await one(i)

        await asyncio.gather(*(caller(k) for k in range(callers)))
        queued = count / (time.perf_counter() - started)
    return {**single, "queued_per_s": queued}


async def through_api(url: str, count: int, scenes: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:

        async def one(i: int) -> None:
            source, output = tie(i)
            reply = await client.post(
                "/api/v1/devices/m/commands",
                json={"command": "route", "input": source, "output": output},
            )
            reply.raise_for_status()

        async def scene(i: int) -> None:
            reply = await client.post(f"/api/v1/scenes/{'a' if i % 2 else 'b'}/apply")
            reply.raise_for_status()

        commands = await closed_loop(count, one)
        applied = await closed_loop(scenes, scene)
    return {"commands": commands, "scenes": applied}


def part_commands(args: argparse.Namespace) -> dict[str, float]:
    print(f"(a) one Extron SIS simulator in its own process, {args.commands} routes per client")
    sims = SimProcess(1, 8, "m")
    transport = next(iter(sims.transports.values()))
    figures: dict[str, float] = {}
    try:
        raw = run_async(raw_socket(transport, args.commands))
        driver = run_async(through_driver(transport, args.commands, args.callers))
        with tempfile.TemporaryDirectory() as tmp:
            scenes = [
                {
                    "id": name,
                    "steps": [
                        {"device": "m", "command": "route", "input": source, "output": 1},
                        {"device": "m", "command": "route", "input": source, "output": 2},
                    ],
                }
                for name, source in (("a", 3), ("b", 4))
            ]
            hub = HubProcess(Path(tmp), [driver_config("m", transport, 3600)], scenes=scenes)
            try:
                hub.wait_ready(1, 30)
                api = run_async(through_api(hub.url, args.commands, args.scenes))
            finally:
                hub.stop()
    finally:
        sims.close()
    for name, result in (("raw_socket", raw), ("device_command", driver)):
        for key, value in result.items():
            figures[f"{name}_{key}"] = value
    for key, value in api["commands"].items():
        figures[f"api_command_{key}"] = value
    for key, value in api["scenes"].items():
        figures[f"api_scene_2_steps_{key}"] = value
    figures["hub_added_p50_ms_device_command"] = driver["p50_ms"] - raw["p50_ms"]
    figures["hub_added_p50_ms_api"] = api["commands"]["p50_ms"] - raw["p50_ms"]
    return figures


# --- part (b): many devices ------------------------------------------------------------


def part_fleet(args: argparse.Namespace) -> dict[str, float]:
    per_process = -(-args.devices // args.sim_processes)
    print(
        f"(b) {args.devices} Extron SIS simulators ({args.outputs} outputs) in "
        f"{args.sim_processes} processes; one hub polls each every {args.poll_interval:g} s"
    )
    sims: list[SimProcess] = []
    figures: dict[str, float] = {}
    try:
        left = args.devices
        for k in range(args.sim_processes):
            count = min(per_process, left)
            if count > 0:
                sims.append(SimProcess(count, args.outputs, f"p{k}-"))
            left -= count
        devices = [
            {**driver_config(name, transport, args.poll_interval), "timeout": 2.0}
            for sim in sims
            for name, transport in sim.transports.items()
        ]
        for device in devices:
            device["options"] = {**device["options"], "outputs": args.outputs}
        with tempfile.TemporaryDirectory() as tmp:
            hub = HubProcess(Path(tmp), devices)
            try:
                hub.wait_ready(len(devices), 60)
                time.sleep(args.warmup)
                figures = measure_fleet(hub, sims, len(devices), args)
            finally:
                hub.stop()
    finally:
        for sim in sims:
            sim.close()
    return figures


def measure_fleet(
    hub: HubProcess, sims: list[SimProcess], devices: int, args: argparse.Namespace
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    first_id = httpx.get(hub.url + "/api/v1/health").json()["last_event_id"]
    counts0 = sum(sum(s.counts().values()) for s in sims)
    cpu0 = cpu_seconds(hub.proc.pid)
    sim_cpu0 = sum(cpu_seconds(s.proc.pid) for s in sims)
    t0 = time.monotonic()
    time.sleep(args.seconds)
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds(hub.proc.pid) - cpu0
    sim_cpu = sum(cpu_seconds(s.proc.pid) for s in sims) - sim_cpu0
    counts = sum(sum(s.counts().values()) for s in sims) - counts0
    rss, peak = memory_mb(hub.proc.pid)
    failures = 0
    after = first_id
    while True:
        page = httpx.get(
            hub.url + "/api/v1/events",
            params={"after": after, "kinds": "device.", "limit": 5000},
            headers=headers,
        ).json()
        failures += sum(1 for e in page["events"] if not e["data"]["online"] or e["data"]["error"])
        after = page["last_id"]
        if not page["more"]:
            break
    listed = httpx.get(hub.url + "/api/v1/devices", headers=headers).json()
    polls = counts / args.outputs  # one poll asks every output once
    return {
        "fleet_hub_cpu_pct": 100 * cpu / elapsed,
        "fleet_hub_rss_mb": rss,
        "fleet_hub_peak_rss_mb": peak,
        "fleet_polls_per_s": polls / elapsed,
        "fleet_polls_per_device_per_s": polls / elapsed / devices,
        "fleet_poll_failures": failures,
        "fleet_poll_success_pct": 100 * polls / (polls + failures) if polls else 0.0,
        "fleet_online_at_end": sum(1 for d in listed if d["online"]),
        "fleet_sim_processes_cpu_pct": 100 * sim_cpu / elapsed,
    }


# --- main ------------------------------------------------------------------------------


def run_async(coro: Awaitable[Any]) -> Any:
    import uvloop

    async def main() -> Any:
        return await coro

    return uvloop.run(main())


def print_figures(figures: dict[str, float], args: argparse.Namespace) -> None:
    reference: dict[str, Any] = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    ref = reference.get("figures", {})
    print(f"{'figure':<40} {'this run':>12} {'reference':>12} {'ratio':>7}")
    for key, value in figures.items():
        old = ref.get(key)
        ratio = f"{value / old:7.2f}" if old else "      -"
        old_text = f"{old:12.2f}" if old is not None else f"{'-':>12}"
        print(f"{key:<40} {value:12.2f} {old_text} {ratio}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"(python {platform.python_version()}, {os.cpu_count()} cpus, load average {load}; "
        f"reference from {reference.get('when', 'never')})"
    )
    print("re-run:  .venv/bin/python bench/devices.py " + " ".join(rerun_args(args)))


def rerun_args(args: argparse.Namespace) -> list[str]:
    return [
        f"--part {args.part}",
        f"--commands {args.commands}",
        f"--callers {args.callers}",
        f"--scenes {args.scenes}",
        f"--devices {args.devices}",
        f"--sim-processes {args.sim_processes}",
        f"--outputs {args.outputs}",
        f"--poll-interval {args.poll_interval:g}",
        f"--seconds {args.seconds:g}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=["all", "commands", "fleet"], default="all")
    parser.add_argument("--commands", type=int, default=2000, help="routes per client in (a)")
    parser.add_argument("--callers", type=int, default=8, help="concurrent callers in (a)")
    parser.add_argument("--scenes", type=int, default=200, help="scene applications in (a)")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--sim-processes", type=int, default=4)
    parser.add_argument("--outputs", type=int, default=8, help="outputs each poll asks about")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="fleet measuring window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--save", action="store_true", help="store this run as the reference")
    parser.add_argument("--serve-sims", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="m", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_sims:
        asyncio.run(serve_sims(args.serve_sims, args.outputs, args.prefix))
        return 0
    figures: dict[str, float] = {}
    if args.part in ("all", "commands"):
        figures.update(part_commands(args))
    if args.part in ("all", "fleet"):
        figures.update(part_fleet(args))
    print_figures(figures, args)
    if args.save:
        saved = {k: v for k, v in vars(args).items() if k not in ("serve_sims", "prefix")}
        REFERENCE.write_text(
            json.dumps(
                {"when": time.strftime("%Y-%m-%d"), "args": saved, "figures": figures}, indent=2
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
