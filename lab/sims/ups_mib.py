"""UPS-MIB SNMP agent simulator: snmpsim serves the recording, an in-process UDP proxy adds faults.

The hub polls the proxy's port; the proxy forwards to snmpsim on a private port, and on the
way back delays, drops, garbles or sets ``error-status`` as the active faults say. With an
SNMPv3 resource snmpsim also serves a USM user (``error`` cannot patch encrypted v3 replies).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from lab import snmpsim_env
from lab.processes import free_port, stop_process
from lab.registry import register
from lab.sims.ups_recording import UpsState, render
from lab.simulator import SimState, SimStatus, Simulator
from lab.snmpwire import ErrorStatus, encode_get, with_error_status

MAX_CLIENTS = 64
USM_FIELDS = ("user", "auth_protocol", "auth_key", "priv_protocol", "priv_key")
# the site file's privacy protocols as snmpsim names them (BLMT: net-snmp's key localisation)
SNMPSIM_PRIV = {
    "DES": "DES",
    "AES": "AES",
    "AES128": "AES128",
    "AES192": "AES192BLMT",
    "AES256": "AES256BLMT",
    "AES192C": "AES192",
    "AES256C": "AES256",
}
READY_OID = "1.3.6.1.2.1.1.5.0"


class _Face(asyncio.DatagramProtocol):
    """The agent's public UDP port, as the hub sees it."""

    def __init__(self, sim: UpsMibSimulator) -> None:
        self.sim = sim

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            self.sim.request(data, addr)
        except Exception as err:  # loop boundary: this agent crashes, the bench goes on
            self.sim.crashed(err)


class _Upstream(asyncio.DatagramProtocol):
    """One client's conversation with snmpsim on the private port."""

    def __init__(self, sim: UpsMibSimulator, client: tuple[str | Any, int]) -> None:
        self.sim = sim
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.sim.response(data, self.client)


@register("ups-mib")
class UpsMibSimulator(Simulator):
    """An RFC 1628 UPS agent on UDP; values follow the simulator state."""

    resource_kinds = ("snmp",)
    state_model = UpsState
    state: UpsState

    _face: asyncio.DatagramTransport | None = None
    _proc: asyncio.subprocess.Process | None = None
    _run_dir: Path | None = None
    port = 0

    async def _open(self) -> None:
        resource = self.device.resource
        self.host = getattr(resource, "host", "127.0.0.1")
        self.port = getattr(resource, "port", 0)
        self.community = getattr(resource, "community", "public")
        self.version = getattr(resource, "version", "2c")
        self.usm = {k: getattr(resource, k, None) for k in USM_FIELDS}
        self._upstreams: dict[tuple[str | Any, int], asyncio.DatagramTransport] = {}
        self._started = time.monotonic()
        self._mtime = 0
        self._stopping = False
        self._pending: asyncio.Task[None] | None = None
        engine = await asyncio.to_thread(snmpsim_env.ensure)
        await asyncio.to_thread(self._prepare_dirs)
        await asyncio.to_thread(self._write_recording)
        self._engine_port = free_port("127.0.0.1", socket.SOCK_DGRAM)
        await self._start_engine(engine)
        await self._listen()
        self.spawn(self._watch_engine(), "snmpsim watch")

    def _prepare_dirs(self) -> None:
        base = snmpsim_env.home()
        base.mkdir(parents=True, exist_ok=True)
        self._run_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=base))
        (self._run_dir / "data").mkdir()
        (self._run_dir / "cache").mkdir()
        self._run_dir.chmod(0o755)
        (self._run_dir / "data").chmod(0o755)
        (self._run_dir / "cache").chmod(0o777)  # snmpsim (as nobody) writes its index here

    def _data_file(self) -> Path:
        assert self._run_dir is not None
        return self._run_dir / "data" / f"{self.community}.snmprec"

    def _write_recording(self) -> None:
        """Replace the recording atomically; a strictly newer mtime makes snmpsim reload it."""
        ticks = int((time.monotonic() - self._started) * 100) + 8_640_000
        target = self._data_file()
        tmp = target.with_suffix(".tmp")
        tmp.write_text(render(self.state, ticks), encoding="utf-8")
        tmp.chmod(0o644)
        # snmpsim compares whole-second mtimes; keep each rewrite a second ahead of the last
        self._mtime = max(int(time.time()) + 1, self._mtime + 1)
        os.utime(tmp, (self._mtime, self._mtime))
        os.replace(tmp, target)

    async def _start_engine(self, engine: Path) -> None:
        assert self._run_dir is not None
        args = [
            str(engine),
            f"--data-dir={self._run_dir / 'data'}",
            f"--cache-dir={self._run_dir / 'cache'}",
            f"--agent-udpv4-endpoint=127.0.0.1:{self._engine_port}",
            "--log-level=error",
            *self._usm_args(),
        ]
        if os.getuid() == 0:  # snmpsim refuses to run as root
            args += ["--process-user=nobody", "--process-group=nogroup"]
        log = await asyncio.to_thread(open, self._run_dir / "snmpsim.log", "wb")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *args, stdout=log, stderr=log, cwd=self._run_dir, start_new_session=True
            )
        finally:
            log.close()
        timeout = 30.0
        deadline = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        probe = encode_get(self.community, READY_OID, 1, "1" if self.version == "1" else "2c")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", self._engine_port))
            while time.monotonic() < deadline:
                if self._proc.returncode is not None:
                    raise RuntimeError(f"snmpsim exited at start: {self._engine_log()}")
                with contextlib.suppress(OSError):
                    await loop.sock_sendall(sock, probe)
                with contextlib.suppress(TimeoutError, OSError):
                    await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.2)
                    return
        raise RuntimeError(f"snmpsim did not answer within {timeout:.0f} s: {self._engine_log()}")

    def _usm_args(self) -> list[str]:
        """snmpsim's SNMPv3 user (v1/v2c stay served too: the readiness probe uses v2c)."""
        usm = self.usm
        if self.version != "3":
            return []
        args = [f"--v3-user={usm['user']}"]
        if usm["auth_key"]:
            auth = usm["auth_protocol"] or "SHA"
            args += [f"--v3-auth-key={usm['auth_key']}", f"--v3-auth-proto={auth.replace('-', '')}"]
        if usm["priv_key"]:
            priv = SNMPSIM_PRIV[usm["priv_protocol"] or "AES128"]
            args += [f"--v3-priv-key={usm['priv_key']}", f"--v3-priv-proto={priv}"]
        return args

    def _engine_log(self) -> str:
        if self._run_dir is None:
            return ""
        try:
            text = (self._run_dir / "snmpsim.log").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-3:])

    async def _watch_engine(self) -> None:
        assert self._proc is not None
        code = await self._proc.wait()
        if not self._stopping:
            raise RuntimeError(f"snmpsim exited with code {code}: {self._engine_log()}")

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._face, _ = await loop.create_datagram_endpoint(
            lambda: _Face(self), local_addr=(self.host, self.port)
        )
        self.port = self._face.get_extra_info("sockname")[1]

    async def _close(self) -> None:
        self._stopping = True
        if self._face is not None:
            self._face.close()
            self._face = None
        for upstream in self._upstreams.values():
            upstream.close()
        self._upstreams.clear()
        await stop_process(self._proc)
        if self._run_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self._run_dir, True)
            self._run_dir = None

    def site_transport(self) -> dict[str, Any]:
        where = {"kind": "snmp", "host": self.host, "port": self.port, "version": self.version}
        if self.version != "3":
            return {**where, "community": self.community}
        # snmpsim picks the recording by SNMPv3 context name: the recording's name
        usm = {k: v for k, v in self.usm.items() if v is not None}
        return {**where, **usm, "context": self.community}

    def pids(self) -> list[int]:
        return [self._proc.pid] if self._proc is not None and self._proc.returncode is None else []

    # -- the proxy ------------------------------------------------------------------------

    def request(self, data: bytes, client: tuple[str | Any, int]) -> None:
        if self.faults.silent() or self.status is not SimStatus.RUNNING:
            return  # the cable is pulled
        self.check_crash()
        upstream = self._upstreams.get(client)
        if upstream is None or upstream.is_closing():
            self.spawn(self._connect_upstream(client, data), "snmp upstream")
            return
        upstream.sendto(data)

    async def _connect_upstream(self, client: tuple[str | Any, int], first: bytes) -> None:
        if len(self._upstreams) >= MAX_CLIENTS:
            oldest = next(iter(self._upstreams))
            self._upstreams.pop(oldest).close()
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Upstream(self, client), remote_addr=("127.0.0.1", self._engine_port)
        )
        self._upstreams[client] = transport
        transport.sendto(first)

    def response(self, data: bytes, client: tuple[str | Any, int]) -> None:
        code = self.faults.error_code("genErr")
        if code is not None:
            status = {s.name.lower(): s for s in ErrorStatus}.get(code.lower(), ErrorStatus.genErr)
            try:
                data = with_error_status(data, status)
            except ValueError as err:
                self.log.debug("cannot set error-status: %s", err)
        delay = self.faults.reply_delay()
        loop = asyncio.get_running_loop()
        if delay > 0:
            loop.call_later(delay, self._send, data, client)
        else:
            self._send(data, client)

    def _send(self, data: bytes, client: tuple[str | Any, int]) -> None:
        data = self.faults.mangle(data, per_datagram=True)
        if data and self._face is not None and not self._face.is_closing():
            self._face.sendto(data, client)

    async def _on_link(self, down: bool) -> None:
        if down:
            if self._face is not None:
                self._face.close()  # the port is closed: ICMP port unreachable
                self._face = None
        elif self.status is SimStatus.RUNNING:
            await self._listen()

    # -- state ----------------------------------------------------------------------------

    def _state_changed(self, changed: set[str], old: SimState) -> None:
        if self.status is SimStatus.RUNNING:
            previous = self._pending
            self._pending = self.spawn(self._rewrite(previous), "recording rewrite")

    async def _rewrite(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await previous
        await asyncio.to_thread(self._write_recording)

    async def _flush(self) -> None:
        if self._pending is not None:
            await asyncio.shield(self._pending)
