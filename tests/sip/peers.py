"""Real SIP peers for the signalling tests: SIPp, baresip and Kamailio on 127.0.0.1.

Every peer is an async context manager on an ephemeral port, bounded in time, writing its
traces into a temporary directory, and is stopped (then killed) on exit::

    async with Sipp.uas("uas_answer", calls=1) as gateway:
        async with Sipp.uac("uac_call", gateway.address, calls=1) as phone:
            assert (await phone.wait()).ok
        assert (await gateway.wait()).successful == 1

Scenario names without ``.xml`` are files in ``tests/sip/scenarios/`` (or SIPp built-ins
such as ``uac``/``uas``); ``Sipp.command`` is the exact command line, for bug reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
BARESIP = shutil.which("baresip") or "/usr/bin/baresip"
KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
BARESIP_MODULES = Path("/usr/lib/baresip/modules")
KAMAILIO_MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
HOST = "127.0.0.1"
BUILTIN_SCENARIOS = frozenset(
    {"uac", "uas", "regexp", "3pcc-A", "3pcc-B", "3pcc-C-A", "3pcc-C-B", "branchc", "branchs"}
)
# Keywords the XML scenarios here use; every run defines them so any scenario loads.
DEFAULT_KEYS = {
    "caller": "sipp",
    "expires": "3600",
}
REJECT_LINE = "SIP/2.0 486 Busy Here"  # the final status in uas_reject.xml
STOP_GRACE = 3.0

Address = tuple[str, int]


class PeerError(RuntimeError):
    """A peer did not start, or did not answer its control channel in time."""


# -- ports -----------------------------------------------------------------------------------


def free_port(span: int = 1) -> int:
    """A port where ``port .. port+span-1`` are free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((HOST, 0))
            port: int = probe.getsockname()[1]
        if port + span > 65535:
            continue
        if all(_free(port + i, kind) for i in range(span) for kind in ("udp", "tcp")):
            return port
    raise PeerError("no free port pair found on 127.0.0.1")


def _free(port: int, kind: str) -> bool:
    family = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, family) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def bound_ports(kind: Literal["udp", "tcp"]) -> set[int]:
    """Ports bound on IPv4 (UDP) or listening (TCP), read from /proc/net: no probing race."""
    ports = set()
    with open(f"/proc/net/{kind}", encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, state = fields[1], fields[3]
            if kind == "tcp" and state != "0A":  # LISTEN
                continue
            ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


async def wait_bound(
    port: int,
    kinds: Sequence[Literal["udp", "tcp"]],
    process: asyncio.subprocess.Process,
    within: float,
    what: str,
    log: Path | None = None,
) -> None:
    """Wait until the peer has bound ``port``; fail with the tail of its log if it exits."""
    deadline = time.monotonic() + within
    while not all(port in bound_ports(kind) for kind in kinds):
        tail = "" if log is None else "\n  " + "\n  ".join(_read(log).splitlines()[-15:])
        if process.returncode is not None:
            raise PeerError(
                f"{what} exited with code {process.returncode} before binding {port}{tail}"
            )
        if time.monotonic() > deadline:
            raise PeerError(f"{what} did not bind port {port} within {within:.0f} s{tail}")
        await asyncio.sleep(0.02)


async def _terminate(process: asyncio.subprocess.Process, first: signal.Signals) -> None:
    """Ask ``first``, then SIGTERM, then SIGKILL, each after a grace period."""
    for sig in (first, signal.SIGTERM, signal.SIGKILL):
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), STOP_GRACE)


def _open_log(path: Path) -> int:
    """A file descriptor for a child's output (the child writes it; we close our copy)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


# -- SIPp ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SippResult:
    """What one SIPp run did: call counts from its final statistics, and its logs."""

    command: tuple[str, ...]
    exit_code: int
    successful: int
    failed: int
    created: int
    retransmissions: int
    stats: Mapping[str, str]
    errors: str
    messages: str
    log: str
    screen: str

    @property
    def elapsed(self) -> float:
        """Seconds SIPp ran, from its own clock (StartTime to the last CurrentTime)."""
        try:
            start = float(self.stats["StartTime"].split("\t")[-1])
            end = float(self.stats["CurrentTime"].split("\t")[-1])
        except (KeyError, ValueError):
            return 0.0
        return end - start

    @property
    def response_time_ms(self) -> float | None:
        """Mean of SIPp's first response-time measure (``rtd="true"``), in milliseconds."""
        text = self.stats.get("ResponseTime1(C)", "")
        parts = text.split(":")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            return None
        hours, minutes, seconds, micros = (int(p) for p in parts)
        return ((hours * 60 + minutes) * 60 + seconds) * 1000 + micros / 1000

    @property
    def ok(self) -> bool:
        """Exit code 0 (every call succeeded) and at least one call."""
        return self.exit_code == 0 and self.failed == 0 and self.successful > 0

    def __str__(self) -> str:
        tail = self.errors.strip().splitlines()[-5:]
        return (
            f"sipp exit {self.exit_code}: {self.successful} ok, {self.failed} failed, "
            f"{self.created} created; errors: {' | '.join(tail) or 'none'}\n"
            f"  command: {' '.join(self.command)}"
        )


def parse_stat_csv(text: str) -> dict[str, str]:
    """The last row of a SIPp ``-trace_stat`` file, keyed by its header."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    header = lines[0].rstrip(";").split(";")
    row = lines[-1].rstrip(";").split(";")
    return dict(zip(header, row, strict=False))


def _count(stats: Mapping[str, str], key: str) -> int:
    try:
        return int(stats.get(key, "0") or 0)
    except ValueError:
        return 0


@dataclass
class Sipp:
    """One SIPp process (UAS when ``remote`` is None, else UAC towards ``remote``)."""

    scenario: str | Path
    remote: Address | None = None
    calls: int | None = 1
    rate: float | None = None
    rate_period_ms: int | None = None
    limit: int | None = None
    duration_ms: int | None = None
    timeout: float = 10.0
    transport: Literal["udp", "tcp"] = "udp"
    rtp_echo: bool = False
    service: str | None = None
    auth: tuple[str, str] | None = None
    auth_uri: str | None = None
    users: Mapping[str, str] | None = None
    keys: Mapping[str, str] = field(default_factory=dict)
    auto_answer: bool = False
    reject: tuple[int, str] | None = None
    trace_messages: bool = True
    extra: Sequence[str] = ()
    port: int = 0
    media_port: int = 0
    workdir: Path | None = None
    control_port: int = field(default=0, init=False)
    process: asyncio.subprocess.Process | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)
    _result: SippResult | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.control_port = free_port()  # SIPp's own UDP control socket (default 8888)
        if self.rtp_echo and not self.media_port:
            self.media_port = free_port(span=4)  # audio and video echo, RTP and RTCP

    @classmethod
    def uas(cls, scenario: str | Path = "uas_answer", **options: Any) -> Sipp:
        return cls(scenario, None, **options)

    @classmethod
    def uac(cls, scenario: str | Path, remote: Address, **options: Any) -> Sipp:
        return cls(scenario, remote, **options)

    @property
    def address(self) -> Address:
        return (HOST, self.port)

    def uri(self, user: str = "service") -> str:
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{user}@{HOST}:{self.port}{suffix}"

    def all_keys(self) -> dict[str, str]:
        domain = self.remote[0] if self.remote is not None else HOST
        return {**DEFAULT_KEYS, "domain": domain, **self.keys}

    def digest_uri(self) -> str | None:
        """The ``uri`` SIPp puts in its digest answer (``-auth_uri``): SIPp's default is
        ``remote_ip:remote_port``, but RFC 3261 wants the Request-URI, so for the digest
        scenarios here it is set to theirs."""
        if self.auth_uri is not None:
            return self.auth_uri
        if self.remote is None or (self.auth is None and self.users is None):
            return None
        name = Path(str(self.scenario)).stem
        if name == "uac_register_auth":
            return self.all_keys()["domain"]
        if name == "uac_call_auth":
            return f"{self.service or 'service'}@{self.remote[0]}:{self.remote[1]}"
        return None

    def scenario_file(self) -> Path | None:
        """The XML file of the scenario; None for a SIPp built-in (``uac``, ``uas``...)."""
        name = str(self.scenario)
        if isinstance(self.scenario, Path) or name.endswith(".xml"):
            return Path(self.scenario)
        if name in BUILTIN_SCENARIOS:
            return None
        path = SCENARIOS / f"{name}.xml"
        if not path.exists():
            known = sorted(p.stem for p in SCENARIOS.glob("*.xml"))
            raise PeerError(f"unknown scenario {name!r} (here: {', '.join(known)})")
        return path

    @property
    def command(self) -> list[str]:
        """The exact SIPp command line (files relative to ``workdir``)."""
        path = self.scenario_file()
        if self.reject is not None:
            args = ["-sf", "scenario.xml"]  # a copy with the status line replaced, see start()
        elif path is None:
            args = ["-sn", str(self.scenario)]
        else:
            args = ["-sf", str(path)]
        cmd = [SIPP, *args]
        if self.remote is not None:
            cmd.append(f"{self.remote[0]}:{self.remote[1]}")
        cmd += ["-i", HOST, "-p", str(self.port), "-t", "u1" if self.transport == "udp" else "t1"]
        cmd += ["-nostdin", "-cp", str(self.control_port)]
        cmd += ["-timeout", str(math.ceil(self.timeout))]
        cmd += ["-timeout_error", "-trace_err", "-error_file", "errors.log"]
        cmd += [
            "-trace_stat",
            "-stf",
            "stats.csv",
            "-fd",
            "1",
            "-trace_logs",
            "-log_file",
            "log.txt",
        ]
        cmd += ["-trace_screen", "-screen_file", "screen.txt"]
        if self.trace_messages:
            cmd += ["-trace_msg", "-message_file", "messages.log"]
        if self.calls is not None:
            cmd += ["-m", str(self.calls)]
        if self.rate is not None:
            cmd += ["-r", f"{self.rate:g}"]
        if self.rate_period_ms is not None:
            cmd += ["-rp", str(self.rate_period_ms)]
        if self.limit is not None:
            cmd += ["-l", str(self.limit)]
        if self.duration_ms is not None:
            cmd += ["-d", str(self.duration_ms)]
        if self.service is not None:
            cmd += ["-s", self.service]
        if self.auth is not None:
            cmd += ["-au", self.auth[0], "-ap", self.auth[1]]
        auth_uri = self.digest_uri()
        if auth_uri is not None:
            cmd += ["-auth_uri", auth_uri]
        if self.users is not None:
            cmd += ["-inf", "users.csv"]
        if self.auto_answer:
            cmd.append("-aa")
        if self.rtp_echo:
            cmd += ["-rtp_echo"]
        if self.media_port:
            cmd += ["-mi", HOST, "-mp", str(self.media_port)]
        for key, value in self.all_keys().items():
            cmd += ["-key", key, value]
        cmd += list(self.extra)
        return cmd

    async def start(self) -> Self:
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sipp-")
            self.workdir = Path(self._tmp.name)
        cmd = self.command
        if self.reject is not None:
            self._write_reject()
        if self.users is not None:
            rows = [
                f"{user};{password};[authentication username={user} password={password}]"
                for user, password in self.users.items()
            ]
            (self.workdir / "users.csv").write_text("SEQUENTIAL\n" + "\n".join(rows) + "\n")
        log = _open_log(self.workdir / "stderr.txt")
        self.process = await asyncio.create_subprocess_exec(
            *cmd,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        os.close(log)
        kinds: list[Literal["udp", "tcp"]] = ["udp"] if self.transport == "udp" else ["tcp"]
        if self.remote is None or self.transport == "udp":
            await wait_bound(
                self.port,
                kinds,
                self.process,
                5.0,
                f"sipp ({self.scenario})",
                self.workdir / "stderr.txt",
            )
        return self

    def _write_reject(self) -> None:
        assert self.workdir is not None and self.reject is not None
        status, reason = self.reject
        if not 300 <= status <= 699 or any(ch in reason for ch in "\r\n<>&"):
            raise PeerError(f"bad rejection {status} {reason!r}")
        scenario = self.scenario_file()
        if scenario is None:
            raise PeerError("reject= needs an XML scenario such as uas_reject")
        text = scenario.read_text(encoding="ascii")
        if REJECT_LINE not in text:
            raise PeerError(f"{scenario.name} has no {REJECT_LINE!r} line to replace")
        (self.workdir / "scenario.xml").write_text(
            text.replace(REJECT_LINE, f"SIP/2.0 {status} {reason}")
        )

    async def wait(self, within: float | None = None) -> SippResult:
        """Wait for SIPp to finish on its own (``-m`` calls done, or its ``-timeout``)."""
        if self._result is not None:
            return self._result
        assert self.process is not None, "start() first"
        try:
            await asyncio.wait_for(self.process.wait(), within or self.timeout + 5.0)
        except TimeoutError:
            await _terminate(self.process, signal.SIGUSR1)
        return self._collect()

    async def stop(self) -> SippResult:
        """Stop SIPp now (no new calls, then terminate) and return what it did."""
        if self._result is not None:
            return self._result
        assert self.process is not None, "start() first"
        await _terminate(self.process, signal.SIGUSR1)
        return self._collect()

    def _collect(self) -> SippResult:
        assert self.process is not None and self.workdir is not None
        stats = parse_stat_csv(_read(self.workdir / "stats.csv"))
        errors = _read(self.workdir / "errors.log") + _read(self.workdir / "stderr.txt")
        code = self.process.returncode
        self._result = SippResult(
            command=tuple(self.command),
            exit_code=-1 if code is None else code,
            successful=_count(stats, "SuccessfulCall(C)"),
            failed=_count(stats, "FailedCall(C)"),
            created=_count(stats, "TotalCallCreated"),
            retransmissions=_count(stats, "Retransmissions(C)"),
            stats=stats,
            errors=errors,
            messages=_read(self.workdir / "messages.log"),
            log=_read(self.workdir / "log.txt"),
            screen=_read(self.workdir / "screen.txt"),
        )
        return self._result

    async def __aenter__(self) -> Self:
        try:
            return await self.start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


# -- baresip ---------------------------------------------------------------------------------


def netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


def split_netstrings(buffer: bytearray) -> list[bytes]:
    """Take every complete netstring off the front of ``buffer``."""
    out: list[bytes] = []
    while True:
        colon = buffer.find(b":")
        if colon < 0:
            return out
        if not buffer[:colon].isdigit():
            raise PeerError(f"baresip ctrl_tcp: bad netstring length {bytes(buffer[:colon])!r}")
        size = int(buffer[:colon])
        end = colon + 1 + size
        if len(buffer) < end + 1:
            return out
        if buffer[end : end + 1] != b",":
            raise PeerError("baresip ctrl_tcp: netstring without its ','")
        out.append(bytes(buffer[colon + 1 : end]))
        del buffer[: end + 1]


@dataclass
class Baresip:
    """baresip as a SIP phone with no sound device, driven over its ``ctrl_tcp`` module.

    Audio goes through ``aubridge``: what the phone plays comes back as what it sends (an
    echoing phone), so no sound card and no end of file. With ``registrar`` it registers
    ``user`` (digest ``password``) there; ``auto_answer`` answers incoming calls at once.
    """

    user: str = "alice"
    password: str | None = None
    registrar: Address | None = None
    domain: str | None = None
    auto_answer: bool = True
    transport: Literal["udp", "tcp"] = "udp"
    register_interval: int = 60
    start_timeout: float = 10.0
    port: int = 0
    ctrl_port: int = 0
    events: list[dict[str, Any]] = field(default_factory=list, init=False)
    process: asyncio.subprocess.Process | None = field(default=None, init=False)
    workdir: Path | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)
    _reader: asyncio.StreamReader | None = field(default=None, init=False)
    _writer: asyncio.StreamWriter | None = field(default=None, init=False)
    _pump: asyncio.Task[None] | None = field(default=None, init=False)
    _responses: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict, init=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _tokens: int = field(default=0, init=False)
    _broken: PeerError | None = field(default=None, init=False)

    @property
    def address(self) -> Address:
        return (HOST, self.port)

    @property
    def aor(self) -> str:
        """The account's address of record."""
        if self.registrar is not None:
            return f"sip:{self.user}@{self.domain or self.registrar[0]}"
        return f"sip:{self.user}@{HOST}"

    def uri(self) -> str:
        """Where to call this phone directly."""
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{self.user}@{HOST}:{self.port}{suffix}"

    def config_text(self) -> str:
        assert self.workdir is not None
        lines = [
            "poll_method epoll",
            f"sip_listen {HOST}:{self.port}",
            f"net_interface {HOST}",
            "call_local_timeout 120",
            "call_max_calls 4",
            "audio_player aubridge,echo",
            "audio_source aubridge,echo",
            "audio_alert aubridge,alert",
            "audio_srate 8000",
            "audio_channels 1",
            "rtp_timeout 0",
            f"module_path {BARESIP_MODULES}",
            "module g711.so",
            "module aubridge.so",
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen {HOST}:{self.ctrl_port}",
        ]
        return "\n".join(lines) + "\n"

    def account_text(self) -> str:
        params = [f"answermode={'auto' if self.auto_answer else 'manual'}"]
        if self.registrar is not None:
            host, port = self.registrar
            uri = f"<{self.aor};transport={self.transport}>"
            params.append(f'outbound="sip:{host}:{port};transport={self.transport}"')
            params.append(f"regint={self.register_interval}")
            if self.password is not None:
                params.append(f"auth_pass={self.password}")
        else:
            uri = f"<sip:{self.user}@{HOST}:{self.port};transport={self.transport}>"
            params.append("regint=0")
        return uri + ";" + ";".join(params) + "\n"

    async def start(self) -> Self:
        self._tmp = tempfile.TemporaryDirectory(prefix="baresip-")
        self.workdir = Path(self._tmp.name)
        self.port = self.port or free_port(span=2)  # baresip binds SIP/TLS on port + 1
        while not self.ctrl_port or self.ctrl_port in (self.port, self.port + 1):
            self.ctrl_port = free_port()
        (self.workdir / "config").write_text(self.config_text())
        (self.workdir / "accounts").write_text(self.account_text())
        (self.workdir / "contacts").write_text("")
        log = _open_log(self.workdir / "baresip.log")
        self.process = await asyncio.create_subprocess_exec(
            BARESIP,
            "-f",
            str(self.workdir),
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        os.close(log)
        log_path = self.workdir / "baresip.log"
        await wait_bound(
            self.ctrl_port, ["tcp"], self.process, self.start_timeout, "baresip", log_path
        )
        await wait_bound(self.port, ["udp"], self.process, self.start_timeout, "baresip", log_path)
        self._reader, self._writer = await asyncio.open_connection(HOST, self.ctrl_port)
        self._pump = asyncio.create_task(self._read_control(self._reader))
        return self

    @property
    def log(self) -> str:
        return "" if self.workdir is None else _read(self.workdir / "baresip.log")

    async def _read_control(self, reader: asyncio.StreamReader) -> None:
        buffer = bytearray()
        try:
            while data := await reader.read(65536):
                buffer += data
                for payload in split_netstrings(buffer):
                    message = json.loads(payload)
                    if message.get("response"):
                        future = self._responses.pop(str(message.get("token")), None)
                        if future is not None and not future.done():
                            future.set_result(message)
                    elif message.get("event"):
                        self.events.append(message)
                        self._changed.set()
            raise PeerError("baresip closed its control connection")
        except (PeerError, ValueError, ConnectionError) as err:
            # waiters fail with the cause instead of timing out
            self._broken = err if isinstance(err, PeerError) else PeerError(f"ctrl_tcp: {err}")
            for future in self._responses.values():
                if not future.done():
                    future.set_exception(self._broken)
            self._responses.clear()
            self._changed.set()

    async def command(self, name: str, params: str | None = None, within: float = 5.0) -> str:
        """Run a baresip command (``dial``, ``hangup``, ``accept``, ``reginfo``...)."""
        assert self._writer is not None, "start() first"
        if self._broken is not None:
            raise self._broken
        self._tokens += 1
        token = str(self._tokens)
        request: dict[str, str] = {"command": name, "token": token}
        if params is not None:
            request["params"] = params
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._responses[token] = future
        self._writer.write(netstring(json.dumps(request).encode()))
        await self._writer.drain()
        try:
            reply = await asyncio.wait_for(future, within)
        except TimeoutError:
            raise PeerError(f"baresip did not answer {name!r} within {within:.0f} s") from None
        if not reply.get("ok", False):
            raise PeerError(f"baresip refused {name} {params or ''}: {reply.get('data')}")
        return str(reply.get("data", ""))

    async def dial(self, uri: str) -> str:
        return await self.command("dial", uri)

    async def hangup(self) -> str:
        return await self.command("hangup")

    async def accept(self) -> str:
        return await self.command("accept")

    async def reginfo(self) -> str:
        return await self.command("reginfo")

    async def registered(self, within: float = 5.0) -> str:
        """Wait until ``reginfo`` shows the account registered (``OK``); return that line.

        Registration starts before the control connection exists, so its REGISTER_OK
        event may never reach us; ``reginfo`` is the state itself.
        """
        deadline = time.monotonic() + within
        while True:
            info = _ANSI.sub("", await self.reginfo())
            line = next((ln for ln in info.splitlines() if self.user in ln), "")
            if " OK " in line:
                return line.strip()
            if time.monotonic() > deadline:
                raise PeerError(
                    f"baresip {self.aor} not registered within {within:.0f} s: {info!r}"
                )
            await asyncio.sleep(0.1)

    async def event(self, kind: str, within: float = 5.0, after: int = 0) -> dict[str, Any]:
        """The first event of type ``kind`` (``CALL_ESTABLISHED``...) at index >= ``after``."""
        deadline = time.monotonic() + within
        while True:
            for message in self.events[after:]:
                if message.get("type") == kind:
                    return message
            if self._broken is not None:
                raise self._broken
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [m.get("type") for m in self.events]
                raise PeerError(f"baresip: no {kind} event within {within:.0f} s (saw {seen})")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def stop(self) -> None:
        if self._writer is not None and self.process is not None:
            if self.process.returncode is None:
                with contextlib.suppress(PeerError, ConnectionError):
                    await self.command("quit", within=2.0)
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
            self._writer = None
        if self.process is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), STOP_GRACE)
            await _terminate(self.process, signal.SIGTERM)
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, PeerError, ValueError):
                await self._pump
            self._pump = None

    async def __aenter__(self) -> Self:
        try:
            return await self.start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


# -- Kamailio --------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SAFE = re.compile(r"[A-Za-z0-9_.\-]+\Z")

KAMAILIO_ROUTE = r"""
request_route {
    if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
    if (!sanity_check("17895", "7")) { exit; }
    if (is_method("OPTIONS") && uri==myself && $rU==$null) {
        sl_send_reply("200", "Keepalive");
        exit;
    }
    if (has_totag()) {
        if (loose_route()) { t_relay(); exit; }
        if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
        sl_send_reply("404", "Not here");
        exit;
    }
    if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
    if (!is_method("ACK")) {
        if (t_precheck_trans()) { t_check_trans(); exit; }
        t_check_trans();
    }
#!ifdef WITH_AUTH
    if (is_method("REGISTER") || from_uri==myself) {
        if (!pv_auth_check("$fd", "$sht(users=>$fU)", "0", "1")) {
            auth_challenge("$fd", "0");
            exit;
        }
        consume_credentials();
    }
#!endif
    if (is_method("REGISTER")) {
        if (!save("location")) { sl_reply_error(); }
        exit;
    }
    if (is_method("INVITE")) { record_route(); }
    if (uri==myself) {
        if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
    }
    if (!t_relay()) { sl_reply_error(); }
    exit;
}
"""


@dataclass
class Kamailio:
    """Kamailio as a registrar and record-routing proxy with digest auth (MD5).

    ``users`` maps user names to passwords in ``domain``; REGISTER and requests from the
    domain are challenged (``auth=False`` turns that off). Registered users are found
    with ``lookup("location")``; other request URIs are relayed as they are.
    """

    users: Mapping[str, str] = field(default_factory=dict)
    domain: str = "kamailio.test"
    auth: bool = True
    start_timeout: float = 10.0
    port: int = 0
    process: asyncio.subprocess.Process | None = field(default=None, init=False)
    workdir: Path | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    @property
    def address(self) -> Address:
        return (HOST, self.port)

    def config_text(self) -> str:
        for text in (self.domain, *self.users, *self.users.values()):
            if not _SAFE.match(text):
                raise PeerError(f"kamailio runner: {text!r} must be letters, digits, '_.-'")
        modules = ["kex", "corex", "tm", "tmx", "sl", "rr", "pv", "maxfwd", "usrloc"]
        modules += ["registrar", "textops", "siputils", "xlog", "sanity", "auth", "htable"]
        seeds = "".join(f'    $sht(users=>{u}) = "{p}";\n' for u, p in self.users.items())
        return (
            "#!KAMAILIO\n"
            + ("#!define WITH_AUTH\n" if self.auth else "")
            + "debug=2\nlog_stderror=yes\nchildren=2\ntcp_children=1\nauto_aliases=no\n"
            f"listen=udp:{HOST}:{self.port}\nlisten=tcp:{HOST}:{self.port}\n"
            f'alias="{self.domain}"\n'
            f'mpath="{KAMAILIO_MODULES}/"\n'
            + "".join(f'loadmodule "{m}.so"\n' for m in modules)
            + 'modparam("usrloc", "db_mode", 0)\n'
            'modparam("htable", "htable", "users=>size=6;")\n'
            'modparam("rr", "append_fromtag", 1)\n'
            "event_route[htable:mod-init] {\n" + seeds + "}\n" + KAMAILIO_ROUTE
        )

    async def start(self) -> Self:
        self._tmp = tempfile.TemporaryDirectory(prefix="kamailio-")
        self.workdir = Path(self._tmp.name)
        self.port = self.port or free_port()
        config = self.workdir / "kamailio.cfg"
        config.write_text(self.config_text())
        log = _open_log(self.workdir / "kamailio.log")
        self.process = await asyncio.create_subprocess_exec(
            KAMAILIO,
            "-DD",
            "-E",
            "-f",
            str(config),
            "-Y",
            str(self.workdir),
            "-w",
            str(self.workdir),
            "-m",
            "32",
            "-M",
            str(8 + len(self.users) // 50),  # the seeded passwords parse into pkg memory
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        os.close(log)
        await wait_bound(
            self.port,
            ["udp", "tcp"],
            self.process,
            self.start_timeout,
            "kamailio",
            self.workdir / "kamailio.log",
        )
        return self

    @property
    def log(self) -> str:
        return "" if self.workdir is None else _read(self.workdir / "kamailio.log")

    async def stop(self) -> None:
        if self.process is not None:
            await _terminate(self.process, signal.SIGTERM)

    async def __aenter__(self) -> Self:
        try:
            return await self.start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
