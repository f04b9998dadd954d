"""net-snmp's real tools against the hub's agent: the CLI (snmpwalk, snmpget...) and a
``snmptrapd`` trap receiver on a free loopback port with its own config and log."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.processes import free_port
from tests.devices.peers import eventually

ROOT = Path(__file__).resolve().parents[2]
MIB_DIR = ROOT / "mibs"
ARC = "1.3.6.1.4.1.32473"


def base_mib_dir() -> str:
    """SNMPv2-SMI/TC/CONF as text: Debian's libsmi leaves them out (licence), Erlang's SNMP
    application ships them (Debian package erlang-snmp, in the Makefile)."""
    found = sorted(glob.glob("/usr/lib/erlang/lib/snmp-*/mibs"))
    if not found:
        raise RuntimeError("no SNMPv2-SMI text: install Debian's erlang-snmp (make deps)")
    return found[-1]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.out.splitlines() if line.strip()]


async def run(*argv: str, within: float = 30.0) -> Result:
    """Run a net-snmp command; no MIBs are loaded unless the caller asks (``-m``)."""
    env = {**os.environ, "MIBS": "", "MIBDIRS": "", "SNMPCONFPATH": "/nonexistent"}
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        async with asyncio.timeout(within):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Result(proc.returncode or 0, out.decode(), err.decode())


def v2c(community: str = "public") -> list[str]:
    return ["-v2c", "-c", community]


def v3(
    user: str, auth: str, priv: str, *, auth_proto: str = "SHA", priv_proto: str = "AES"
) -> list[str]:
    return ["-v3", "-l", "authPriv", "-u", user, "-a", auth_proto, "-A", auth, "-x", priv_proto,
            "-X", priv]  # fmt: skip


def with_mib() -> list[str]:
    """Load CCHUB-MIB (names instead of numbers in the output)."""
    return ["-M", f"{MIB_DIR}:{base_mib_dir()}", "-m", "CCHUB-MIB"]


def numeric(lines: Sequence[str]) -> dict[str, str]:
    """``.1.3.6... = TYPE: value`` lines as {oid: "TYPE: value"} (without the
    endOfMibView line net-snmp prints where the agent's MIB view ends)."""
    out = {}
    for line in lines:
        oid, sep, value = line.partition(" = ")
        if sep and not value.startswith("No more variables left"):
            out[oid.strip().lstrip(".")] = value.strip()
    return out


@dataclass
class Trap:
    security: str  # "SNMP v2c, community public" / "SNMP v3, user ops, context "
    varbinds: dict[str, str]


class TrapReceiver:
    """Debian's snmptrapd, logging every notification as one line to a file."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.log = workdir / "traps.log"
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, conf: str) -> None:
        snmptrapd = shutil.which("snmptrapd") or "/usr/sbin/snmptrapd"
        (self.workdir / "persist").mkdir(exist_ok=True)
        (self.workdir / "snmptrapd.conf").write_text(conf)
        for _ in range(5):  # a free port can be taken between the probe and the bind
            self.port = free_port(kind=socket.SOCK_DGRAM)
            self.log.write_text("")
            proc = await asyncio.create_subprocess_exec(
                snmptrapd, "-f", "-C", "-c", str(self.workdir / "snmptrapd.conf"),
                "-Lf", str(self.log), "-On", "-m", "", "-M", "",
                "-F", "TRAP %P|%v\n", f"udp:127.0.0.1:{self.port}",
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={**os.environ, "SNMP_PERSISTENT_DIR": str(self.workdir / "persist")},
            )  # fmt: skip
            self._proc = proc
            try:
                await eventually(lambda: "NET-SNMP version" in self.log.read_text(), 10)
            except AssertionError:
                await self.stop()
                continue
            if proc.returncode is None:
                return
        raise RuntimeError(f"snmptrapd did not start: {self.log.read_text()}")

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            async with asyncio.timeout(5):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def traps(self) -> list[Trap]:
        out = []
        for line in self.log.read_text().splitlines():
            if not line.startswith("TRAP "):
                continue
            security, _, binds = line[5:].partition("|")
            varbinds = numeric(binds.split("\t"))
            out.append(Trap(security, varbinds))
        return out

    async def wait_for(self, count: int, within: float = 10.0) -> list[Trap]:
        await eventually(lambda: len(self.traps()) >= count, within)
        return self.traps()


@contextlib.asynccontextmanager
async def trap_receiver(workdir: Path, conf: str) -> AsyncIterator[TrapReceiver]:
    receiver = TrapReceiver(workdir)
    await receiver.start(conf)
    try:
        yield receiver
    finally:
        await receiver.stop()


def snmptrapd_conf(*, community: str, engine_id: bytes, user: str, auth: str, priv: str) -> str:
    """Accept v2c traps with ``community`` and v3 authPriv traps from ``engine_id``'s user."""
    return (
        f"authCommunity log {community}\n"
        f"createUser -e 0x{engine_id.hex()} {user} SHA {auth} AES {priv}\n"
        f"authUser log {user} priv\n"
    )


TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
_OID_VALUE = re.compile(r"OID: \.?([\d.]+)")


def trap_oid(trap: Trap) -> str:
    match = _OID_VALUE.match(trap.varbinds.get(TRAP_OID, ""))
    return match.group(1) if match else ""
