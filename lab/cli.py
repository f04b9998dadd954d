"""``cchub lab ...``: bring a bench up (foreground, Ctrl-C stops it), down, status, check, types.

``lab up`` records its pid and its children's under ``var/lab/state.json`` for ``lab down``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from hub.errors import ConfigError
from lab.bench import Bench
from lab.benchfile import load_bench
from lab.registry import simulator_types
from lab.sitefile import site_document, write_site

DEFAULT_STATE_DIR = Path("var/lab")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cchub lab", description="hardware-in-the-loop bench")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the bench's simulators (foreground; Ctrl-C stops)")
    up.add_argument("--bench", required=True, type=Path, help="bench file (lab/benches/*.yaml)")
    up.add_argument("--write-site", type=Path, help="write a site file pointing at the bench")
    up.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    up.add_argument("--seed", type=int, help="seed for drop/garble faults (reproducible runs)")
    down = sub.add_parser("down", help="stop the bench started by `lab up`")
    down.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    down.add_argument("--timeout", type=float, default=15.0)
    status = sub.add_parser("status", help="show the running bench")
    status.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    check = sub.add_parser("check", help="validate bench files")
    check.add_argument("benches", nargs="+", type=Path)
    sub.add_parser("types", help="list the simulator types")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return _up(args)
    if args.command == "down":
        return _down(args.state_dir, args.timeout)
    if args.command == "status":
        return _status(args.state_dir)
    if args.command == "check":
        return _check(args.benches)
    print("\n".join(simulator_types()))
    return 0


def _check(paths: list[Path]) -> int:
    failed = 0
    for path in paths:
        try:
            spec = load_bench(path)
        except ConfigError as err:
            _print_problems(err)
            failed += 1
        else:
            print(f"{path}: ok ({len(spec.devices)} devices)")
    return 1 if failed else 0


def _print_problems(err: ConfigError) -> None:
    print(f"{err.source}: invalid", file=sys.stderr)
    for problem in err.problems:
        print(f"  {problem}", file=sys.stderr)


def _alive(pid: int, marker: str | None = None) -> bool:
    """``pid`` runs (and its command line holds ``marker``: a reused pid is not ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return marker is None or marker.encode() in cmdline


def _program(pid: int) -> str:
    """A child's command line (snmpsim, upsd, dummy-ups...): ``lab down`` checks it
    before killing, so that a pid reused by another program is left alone."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return f"pid-{pid}-gone"
    return cmdline.decode(errors="replace").strip()


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((state_dir / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state


def _up(args: argparse.Namespace) -> int:
    try:
        spec = load_bench(args.bench)
    except ConfigError as err:
        _print_problems(err)
        return 2
    previous = _read_state(args.state_dir)
    if previous is not None and _alive(previous["pid"]):
        print(
            f"a bench is already up (pid {previous['pid']}); run `cchub lab down` first",
            file=sys.stderr,
        )
        return 1
    return asyncio.run(_run_up(spec, args))


async def _run_up(spec: Any, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    state_file = args.state_dir / "state.json"
    try:
        async with Bench(spec, seed=args.seed) as bench:
            site = None
            if args.write_site is not None:
                document = site_document(bench, hub={"name": f"lab-{spec.bench}"})
                site = write_site(
                    args.write_site,
                    document,
                    header=f"Written by `cchub lab up --bench {args.bench}`; valid while it runs.",
                )
            args.state_dir.mkdir(parents=True, exist_ok=True)
            state = {
                "pid": os.getpid(),
                "bench": spec.bench,
                "bench_file": str(args.bench),
                "site": str(site) if site else None,
                "control_url": bench.control_url,
                "children": [{"pid": p, "marker": _program(p)} for p in bench.pids()],
                "started": time.time(),
            }
            state_file.write_text(json.dumps(state, indent=1))
            _banner(bench, site)
            failed = asyncio.ensure_future(bench.wait_failed())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({failed, stopped}, return_when=asyncio.FIRST_COMPLETED)
            failed.cancel()
            stopped.cancel()
            print("stopping the bench...", flush=True)
    finally:
        with contextlib.suppress(OSError):
            state_file.unlink()
    print("bench stopped", flush=True)
    return 0


def _banner(bench: Bench, site: Path | None) -> None:
    lines = [f"bench {bench.spec.bench} up:", *(f"  {line}" for line in bench.summary())]
    if site is not None:
        lines.append(f"site file: {site}")
    lines.append(f"control:   {bench.control_url}/sims")
    lines.append("stop with Ctrl-C or `cchub lab down`")
    print("\n".join(lines), flush=True)


def _down(state_dir: Path, timeout: float) -> int:
    state = _read_state(state_dir)
    if state is None:
        print("no bench is up")
        return 0
    pid = int(state["pid"])
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            print(f"bench process {pid} did not stop in {timeout:.0f} s; killing it")
            os.kill(pid, signal.SIGKILL)
    for child in state.get("children", []):
        if _alive(int(child["pid"]), child.get("marker")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child["pid"]), signal.SIGKILL)
    with contextlib.suppress(OSError):
        (state_dir / "state.json").unlink()
    print(f"bench {state.get('bench')} stopped")
    return 0


def _status(state_dir: Path) -> int:
    state = _read_state(state_dir)
    if state is None or not _alive(int(state["pid"])):
        print("no bench is up")
        return 1
    print(json.dumps(state, indent=1))
    return 0
