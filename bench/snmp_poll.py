"""Benchmark: SNMP polling throughput (varbinds/s on one core) against net-snmp's real snmpd
on loopback, side by side with net-snmp's own tools doing the same work.

Run:  .venv/bin/python bench/snmp_poll.py          (figures beside bench/snmp_poll_reference.json)
      .venv/bin/python bench/snmp_poll.py --save   (makes this run the new reference)

The agent serves a table of ``--rows`` rows (static ``override`` objects) plus IF-MIB.
1. walk, v2c: cchub's ``SnmpSession.walk`` (GETBULK, ``--repetitions`` per request) vs
   ``snmpbulkwalk -v2c -Cr<repetitions>`` of the same column, ``--rounds`` times each.
2. walk, v3 authPriv (SHA-256/AES): the same with USM.
3. get: one GET of 40 scalars repeated ``--rounds`` times vs ``snmpget`` of the same 40 OIDs
   (each snmpget is a new process: its figure includes start-up, which is what an NMS
   polling by script pays; cchub keeps its engine).
"varbinds/s (one core)" divides varbinds by CPU seconds of the poller's process (ours: the
benchmark process; net-snmp's: its child processes), "wall" by elapsed time (the agent,
snmpd, runs on the other core in both cases).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shlex
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devices.config import SnmpTransport  # noqa: E402
from lab.snmpd import NetSnmpAgent, UsmUser  # noqa: E402
from monitoring.snmp_client import SnmpSession  # noqa: E402

REFERENCE = ROOT / "bench" / "snmp_poll_reference.json"
TABLE = "1.3.6.1.4.1.99999.2.1"
USER = UsmUser()
V3_CLI = [
    "-v3", "-l", "authPriv", "-u", USER.name, "-a", USER.auth_protocol, "-A", USER.auth_key,
    "-x", USER.priv_protocol, "-X", USER.priv_key,
]  # fmt: skip
ENV = {**os.environ, "MIBS": "", "MIBDIRS": "/nonexistent"}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def run_cli(argv: list[str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=ENV
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)}: {out.decode()[-300:]}")
    return out.decode()


async def measure_ours(work: Any, rounds: int) -> dict[str, float]:
    """``work()`` returns the varbinds it read (the table's, not the GETBULK overshoot)."""
    await work()  # warm up: engine, USM discovery
    varbinds = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        varbinds += await work()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"varbinds": varbinds, "cpu_s": cpu, "wall_s": wall}


async def measure_cli(argv: list[str], rounds: int, count: Any) -> dict[str, float]:
    await run_cli(argv)  # warm up (page cache)
    varbinds = 0
    cpu, wall = children_cpu(), time.perf_counter()
    for _ in range(rounds):
        varbinds += count(await run_cli(argv))
    cpu, wall = children_cpu() - cpu, time.perf_counter() - wall
    return {"varbinds": varbinds, "cpu_s": cpu, "wall_s": wall}


def rates(figures: dict[str, float]) -> dict[str, float]:
    return {
        **figures,
        "varbinds_per_s_one_core": figures["varbinds"] / max(figures["cpu_s"], 1e-9),
        "varbinds_per_s_wall": figures["varbinds"] / max(figures["wall_s"], 1e-9),
    }


def lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("."))


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {f"{TABLE}.{i}": ("integer", i) for i in range(1, args.rows + 1)}
    results: dict[str, Any] = {}
    commands: dict[str, str] = {}
    async with NetSnmpAgent(overrides=overrides) as agent:
        where = f"127.0.0.1:{agent.port}"
        v2c = SnmpTransport(kind="snmp", host="127.0.0.1", port=agent.port, version="2c")
        v3 = SnmpTransport.model_validate(
            {"kind": "snmp", "host": "127.0.0.1", "port": agent.port, "version": "3",
             "user": USER.name, "auth_protocol": "SHA-256", "auth_key": USER.auth_key,
             "priv_protocol": "AES", "priv_key": USER.priv_key}
        )  # fmt: skip
        scalars = [f"{TABLE}.{i}" for i in range(1, 41)]
        cases = [
            ("walk_v2c", v2c, ["-v2c", "-c", "public"], "walk"),
            ("walk_v3", v3, V3_CLI, "walk"),
            ("get_v2c", v2c, ["-v2c", "-c", "public"], "get"),
        ]
        for name, transport, cli, kind in cases:
            session = SnmpSession(transport, timeout=5.0, retries=1)
            try:
                if kind == "walk":

                    async def work(s: SnmpSession = session) -> int:
                        rows = await s.walk([TABLE], max_repetitions=args.repetitions)
                        assert len(rows[TABLE]) == args.rows, len(rows[TABLE])
                        return len(rows[TABLE])

                    argv = [
                        "snmpbulkwalk",
                        *cli,
                        f"-Cr{args.repetitions}",
                        "-On",
                        "-Oq",
                        where,
                        TABLE,
                    ]
                else:

                    async def work(s: SnmpSession = session) -> int:
                        got = await s.get(scalars)
                        assert all(v is not None for v in got.values())
                        return len(got)

                    argv = ["snmpget", *cli, "-On", "-Oq", where, *scalars]
                ours = rates(await measure_ours(work, args.rounds))
            finally:
                await session.close()
            theirs = rates(await measure_cli(argv, args.rounds, lines))
            if theirs["varbinds"] != ours["varbinds"]:
                raise RuntimeError(
                    f"{name}: net-snmp read {theirs['varbinds']}, we {ours['varbinds']}"
                )
            results[name] = {
                "cchub": ours,
                "net_snmp": theirs,
                "ratio_one_core": ours["varbinds_per_s_one_core"]
                / theirs["varbinds_per_s_one_core"],
                "ratio_wall": ours["varbinds_per_s_wall"] / theirs["varbinds_per_s_wall"],
            }
            if kind == "get":
                shown = [*argv[: -len(scalars)], scalars[0], "...", scalars[-1]]
                commands[name] = f"{shlex.join(shown)}  ({len(scalars)} OIDs, one process each)"
            else:
                commands[name] = shlex.join(argv)
    return {"results": results, "commands": commands}


def show(run: dict[str, Any], reference: dict[str, Any] | None) -> None:
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores")
    for name, r in run["results"].items():
        ours, theirs = r["cchub"], r["net_snmp"]
        print(f"\n{name}: {int(ours['varbinds'])} varbinds in all, by each side")
        print(f"  net-snmp: {run['commands'][name]}")
        print(
            f"  cchub    {ours['varbinds_per_s_one_core']:>10,.0f} varbinds/s (one core)"
            f"  {ours['varbinds_per_s_wall']:>10,.0f} wall"
        )
        print(
            f"  net-snmp {theirs['varbinds_per_s_one_core']:>10,.0f} varbinds/s (one core)"
            f"  {theirs['varbinds_per_s_wall']:>10,.0f} wall"
        )
        print(
            f"  ratio cchub/net-snmp: {r['ratio_one_core']:.2f} (one core),"
            f" {r['ratio_wall']:.2f} (wall)"
        )
        if reference and name in reference.get("results", {}):
            ref = reference["results"][name]["cchub"]["varbinds_per_s_one_core"]
            print(f"  reference cchub: {ref:,.0f} varbinds/s (one core)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repetitions", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    run = asyncio.run(bench(args))
    reference = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else None
    show(run, reference)
    if args.save:
        record = {"when": time.strftime("%Y-%m-%d"), "args": vars(args), **run}
        REFERENCE.write_text(json.dumps(record, indent=2) + "\n")
        print(f"\nsaved {REFERENCE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
