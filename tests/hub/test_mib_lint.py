"""mibs/CCHUB-MIB.txt passes libsmi's linter (Debian smitools) and names the OIDs the agent
serves."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hub.snmp.mib import ARC, object_identifiers
from tests.hub.snmptools import MIB_DIR, base_mib_dir

MIB = MIB_DIR / "CCHUB-MIB.txt"


def smi(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMIPATH": f"{MIB_DIR}:{base_mib_dir()}"}
    return subprocess.run(
        [tool, *args, str(MIB)], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_smilint_level_3_reports_nothing() -> None:
    result = smi("smilint", "-s", "-l", "3")
    assert result.returncode == 0
    assert result.stdout + result.stderr == ""


def test_smilint_sees_the_base_modules(tmp_path: Path) -> None:
    """The check above means something: the linter resolves the imports (a MIB whose
    SNMPv2-SMI cannot be found would be reported), and it does report real errors."""
    broken = MIB.read_text().replace("Gauge32, TimeTicks", "Gauge32, TimeTickz")
    path = tmp_path / "CCHUB-MIB.txt"
    path.write_text(broken)
    env = {**os.environ, "SMIPATH": base_mib_dir()}
    result = subprocess.run(
        ["smilint", "-s", "-l", "3", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert "TimeTickz" in result.stdout + result.stderr


def test_mib_oids_match_the_agent() -> None:
    result = smi("smidump", "-f", "identifiers")
    assert result.returncode == 0, result.stderr
    in_file: dict[str, tuple[int, ...]] = {}
    kinds: dict[str, str] = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "CCHUB-MIB":
            in_file[parts[1]] = tuple(int(p) for p in parts[3].split("."))
            kinds[parts[1]] = parts[2]
    served = object_identifiers()
    assert in_file["cchubMIB"] == ARC
    readable = {n for n, k in kinds.items() if k in ("scalar", "column", "notification")}
    indexes = {n for n in readable if n.endswith("Index")}  # not-accessible
    assert served == {n: in_file[n] for n in readable - indexes}
