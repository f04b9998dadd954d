"""How fast the hub's SNMP agent answers net-snmp's walks, beside net-snmp's own snmpd.

A hub with 20, then 500 active alarms (and 200 conferences as provider rows) is walked
with ``snmpwalk`` (GETNEXT, one varbind per request) and ``snmpbulkwalk`` (GETBULK, 25
repetitions); net-snmp's ``snmpd`` (C) is walked the same way over its own MIB-II tree.
Prints varbinds/s for each and the ratio hub/snmpd. Every request reads the live hub; the
alarm rows and their sorted index are kept until an alarm changes (at most 1 s), so a
GETNEXT walk of 500 alarms costs about what one of 20 does. Provider tables (conferences)
are read per request: O(rows) per GETNEXT; GETBULK amortises that over 25 repetitions.

    .venv/bin/python bench/snmp_agent.py
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.config import SiteConfig
from hub.runtime import Hub
from hub.snmp.rows import ConferenceRow, Table
from lab.snmpd import NetSnmpAgent

SIZES = (20, 500)  # active alarms
CONFERENCES = 200
ARC = "1.3.6.1.4.1.32473"


async def walk(tool: str, address: str, oid: str, *extra: str) -> tuple[int, float]:
    env = {**os.environ, "MIBS": "", "MIBDIRS": ""}
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        tool, "-v2c", "-c", "public", "-On", "-t", "10", *extra, address, oid,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{tool} failed: {err.decode()}")
    lines = [line for line in out.decode().splitlines() if " = " in line]
    lines = [line for line in lines if "No more variables" not in line]
    return len(lines), seconds


async def measure(address: str, oid: str) -> dict[str, tuple[int, float]]:
    return {
        "snmpwalk (GETNEXT)": await walk("snmpwalk", address, oid),
        "snmpbulkwalk (GETBULK x25)": await walk("snmpbulkwalk", address, oid, "-Cr25"),
    }


async def hub_walks(alarms: int) -> dict[str, tuple[int, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        site = SiteConfig.model_validate(
            {
                "hub": {"name": "bench", "data_dir": tmp, "api": {"port": 0}},
                "snmp": {"port": 0, "community": "public"},
                "rules": [{"id": "hot", "metric": "room.temperature", "above": 35}],
            }
        )
        async with Hub(site) as hub:
            now = time.time()
            for i in range(alarms):
                hub.alarms.core.submit("room.temperature", f"room-{i}", 40 + i % 5, now, "")
            rows = [
                ConferenceRow(i, f"conference {i}", "active", 4, now)
                for i in range(1, CONFERENCES + 1)
            ]
            hub.snmp_tables.provide(Table.CONFERENCES, lambda: rows)
            assert hub.snmp is not None
            host, port = hub.snmp.address
            return await measure(f"{host}:{port}", ARC)


async def main() -> None:
    ours = {size: await hub_walks(size) for size in SIZES}
    async with NetSnmpAgent() as snmpd:
        theirs = await measure(f"127.0.0.1:{snmpd.port}", "1.3.6.1.2.1")
    print(f"hub agent: walk of {ARC} with N active alarms and {CONFERENCES} conference rows")
    print("reference: net-snmp snmpd 5.9, walk of its own MIB-II (1.3.6.1.2.1)")
    print(f"{'':28} {'N':>4} {'hub varbinds/s':>16} {'snmpd varbinds/s':>18} {'ratio':>6}")
    for size, results in ours.items():
        for name, (n1, s1) in results.items():
            n2, s2 = theirs[name]
            mine, ref = n1 / s1, n2 / s2
            print(
                f"{name:28} {size:4d} {mine:8.0f} ({n1:5d}) {ref:10.0f} ({n2:5d}) {mine / ref:6.3f}"
            )


if __name__ == "__main__":
    asyncio.run(main())
