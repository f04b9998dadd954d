"""Benchmark: event-bus throughput (with and without the SQLite store) and API latency.

Run:  .venv/bin/python bench/bus_api.py            (prints figures beside bench/reference.json)
      .venv/bin/python bench/bus_api.py --save     (makes this run the new reference)
The API load is bounded: wrk (Debian package) for a fixed time per endpoint, against a hub
started as its own process on 127.0.0.1; the commands are printed so anyone can re-run them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.bus import EventBus  # noqa: E402
from hub.events import DutyNoteAdded  # noqa: E402
from hub.store import SqliteStore  # noqa: E402

REFERENCE = ROOT / "bench" / "reference.json"
TOKEN = "bench-token-0123456789"


async def bus_only(events: int, subscribers: int) -> float:
    bus = EventBus()
    subs = [bus.subscribe(f"s{i}", maxsize=events + 1) for i in range(subscribers)]

    async def drain(sub: Any) -> None:
        for _ in range(events):
            await sub.get()

    tasks = [asyncio.create_task(drain(s)) for s in subs]
    started = time.perf_counter()
    for i in range(events):
        bus.publish(DutyNoteAdded(author="bench", text=f"event {i}"))
        if i % 1000 == 0:
            await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    return events / (time.perf_counter() - started)


async def bus_with_store(events: int, synchronous: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db", synchronous=synchronous)
        await store.open()
        bus = EventBus(sink=store)
        started = time.perf_counter()
        for i in range(events):
            bus.publish(DutyNoteAdded(author="bench", text=f"event {i}"))
            if i % 1000 == 0:
                await asyncio.sleep(0)
        await store.flush()
        rate = events / (time.perf_counter() - started)
        await store.close()
    return rate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


WRK_POST = """
wrk.method = "POST"
wrk.body   = '{"text": "bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


def _wrk(url: str, seconds: int, connections: int, script: Path | None) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    print("  $", " ".join(command))
    text = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    out: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] in (["50%"], ["99%"]):
            out[f"p{parts[0][:-1]}_ms"] = _ms(parts[1])
        elif parts[:1] == ["Requests/sec:"]:
            out["rps"] = float(parts[1])
        elif "Non-2xx" in line:
            raise RuntimeError(f"wrk saw failed requests: {line.strip()}")
    return out


def _ms(value: str) -> float:
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * scale
    raise ValueError(value)


def api_latency(seconds: int, connections: int) -> dict[str, float]:
    """Closed-loop load from wrk (Debian package ``wrk``) for a fixed time: bounded."""
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark needs wrk: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        site = {
            "hub": {"data_dir": tmp, "log_level": "warning", "api": {"port": port}},
            "users": [{"name": "bench", "role": "dispatcher", "token": TOKEN}],
        }
        site_path = Path(tmp) / "site.yaml"
        site_path.write_text(yaml.safe_dump(site))
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_POST % TOKEN)
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "run", "--config", str(site_path)], cwd=ROOT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    if httpx.get(url + "/api/v1/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            out: dict[str, float] = {}
            for name, path, lua in (
                ("health", "/api/v1/health", None),
                ("duty_log_post", "/api/v1/duty-log", script),
            ):
                for key, value in _wrk(url + path, seconds, connections, lua).items():
                    out[f"{name}_{key}"] = value
            return out
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seconds", type=int, default=5, help="wrk run per endpoint")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--save", action="store_true", help="store this run as the reference")
    args = parser.parse_args()

    figures: dict[str, float] = {}
    figures["bus_events_per_s_4_subscribers"] = asyncio.run(bus_only(args.events, 4))
    figures["bus_store_events_per_s_sync_full"] = asyncio.run(bus_with_store(args.events, "FULL"))
    figures["bus_store_events_per_s_sync_normal"] = asyncio.run(
        bus_with_store(args.events, "NORMAL")
    )
    figures.update(api_latency(args.seconds, args.connections))

    reference: dict[str, Any] = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    ref = reference.get("figures", {})
    print(f"{'figure':<38} {'this run':>12} {'reference':>12} {'ratio':>7}")
    for key, value in figures.items():
        old = ref.get(key)
        ratio = f"{value / old:7.2f}" if old else "      -"
        old_text = f"{old:12.1f}" if old else f"{'-':>12}"
        print(f"{key:<38} {value:12.1f} {old_text} {ratio}")
    print(
        f"(events={args.events}, wrk {args.seconds} s per endpoint, "
        f"{args.connections} connections, python {platform.python_version()}, "
        f"{os.cpu_count()} cpus; reference from {reference.get('when', 'never')})"
    )
    if args.save:
        REFERENCE.write_text(
            json.dumps(
                {"when": time.strftime("%Y-%m-%d"), "args": vars(args), "figures": figures},
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
