"""net-snmp's real ``snmpd`` on loopback for tests and benchmarks: a generated config in a
temporary directory (v2c community, an SNMPv3 authPriv user, static ``override`` objects),
a free UDP port, stopped (and its directory removed) on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from lab.processes import find_program, free_port, stop_process

START_TIMEOUT = 15.0


class SnmpdUnavailable(RuntimeError):
    """net-snmp's snmpd is not installed (Debian package ``snmpd``)."""


def snmpd_program() -> str:
    return find_program("snmpd", "install Debian's snmpd (`make deps`)", error=SnmpdUnavailable)


@dataclass(frozen=True)
class UsmUser:
    name: str = "monitor"
    auth_protocol: str = "SHA-256"  # net-snmp spelling: MD5, SHA, SHA-224 ... SHA-512
    auth_key: str = "auth-pass-123"
    priv_protocol: str = "AES"  # DES, AES (128), AES-192, AES-256
    priv_key: str = "priv-pass-456"


@dataclass
class NetSnmpAgent:
    """``async with NetSnmpAgent(overrides={...}) as agent:`` — ``agent.port`` answers.

    ``overrides`` maps numeric OIDs to ``(type, value)`` with net-snmp's override types
    (``integer``, ``uinteger``, ``counter``, ``octet_str``, ``object_id``...). ``extra``
    lines are appended to the config (``pass`` scripts for slow objects, for example).
    """

    community: str = "public"
    users: Sequence[UsmUser] = (UsmUser(),)
    overrides: Mapping[str, tuple[str, str | int]] = field(default_factory=dict)
    extra: Sequence[str] = ()
    host: str = "127.0.0.1"
    port: int = 0
    _proc: asyncio.subprocess.Process | None = None
    _dir: tempfile.TemporaryDirectory[str] | None = None

    async def __aenter__(self) -> NetSnmpAgent:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def workdir(self) -> Path:
        assert self._dir is not None
        return Path(self._dir.name)

    def config(self) -> str:
        lines = [
            f"rocommunity {self.community} {self.host}",
            "dontLogTCPWrappersConnects yes",
        ]
        for user in self.users:
            lines.append(
                f'createUser {user.name} {user.auth_protocol} "{user.auth_key}"'
                f' {user.priv_protocol} "{user.priv_key}"'
            )
            lines.append(f"rouser {user.name} priv")
        for oid, (kind, value) in self.overrides.items():
            text = f'"{value}"' if kind == "octet_str" else str(value)
            lines.append(f"override .{oid.lstrip('.')} {kind} {text}")
        lines.extend(self.extra)
        return "\n".join(lines) + "\n"

    async def start(self) -> None:
        program = snmpd_program()
        self._dir = tempfile.TemporaryDirectory(prefix="cchub-snmpd-")
        conf = self.workdir / "snmpd.conf"
        conf.write_text(self.config(), encoding="utf-8")
        env = {
            **os.environ,
            "SNMP_PERSISTENT_DIR": str(self.workdir / "persist"),
            "MIBS": "",  # numeric OIDs only: do not read (and complain about) MIB files
            "MIBDIRS": str(self.workdir),
        }
        last = ""
        for _ in range(3):  # the free port can be taken between the probe and the bind
            self.port = free_port(self.host, socket.SOCK_DGRAM)
            log = (self.workdir / "snmpd.log").open("wb")
            self._proc = await asyncio.create_subprocess_exec(
                program,
                "-f",
                "-Lf",
                str(self.workdir / "snmpd.log"),
                "-C",
                "-c",
                str(conf),
                "-p",
                str(self.workdir / "snmpd.pid"),
                f"udp:{self.host}:{self.port}",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
            )
            log.close()
            if await self._ready():
                return
            last = (self.workdir / "snmpd.log").read_text(errors="replace")[-2000:]
            await self._kill()
        await self.stop()
        raise RuntimeError(f"snmpd did not start: {last}")

    async def _ready(self) -> bool:
        """True once snmpd answers a GET of sysUpTime (raw UDP, no client needed)."""
        community = self.community.encode()
        # GetRequest of sysUpTime.0, hand-built: the agent only has to answer something
        pdu = bytes.fromhex("a019020101020100020100300e300c06082b060102010103000500")
        message = _ber_sequence(b"\x02\x01\x01\x04" + bytes([len(community)]) + community + pdu)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            while loop.time() < deadline:
                if self._proc is None or self._proc.returncode is not None:
                    return False
                sock.sendto(message, (self.host, self.port))
                with contextlib.suppress(TimeoutError, OSError):
                    async with asyncio.timeout(0.3):
                        await loop.sock_recv(sock, 4096)
                        return True
            return False

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        await stop_process(proc)

    async def stop(self) -> None:
        await self._kill()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def pids(self) -> list[int]:
        return [self._proc.pid] if self._proc is not None else []


def _ber_sequence(body: bytes) -> bytes:
    if len(body) < 128:
        return b"\x30" + bytes([len(body)]) + body
    length = len(body).to_bytes(2, "big")
    return b"\x30\x82" + length + body
