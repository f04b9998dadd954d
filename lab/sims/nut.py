"""NUT server simulator: the real ``upsd`` and ``dummy-ups`` (Debian nut-server) behind a proxy.

The run directory holds generated ``ups.conf``/``upsd.conf``/``upsd.users`` and the
``<ups>.dev`` file that dummy-ups re-reads when its mtime changes (``dummy-once`` mode), so
state changes reach upsd within a driver poll. The hub talks to the proxy, which forwards to
upsd on a private port and applies the bench's faults (delay, drop, garble, ``ERR <code>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from lab.processes import free_port, stop_process
from lab.registry import register
from lab.simulator import Outbox, SimState, SimStatus, Simulator
from protocols import nut
from protocols.framing import FramingError

NUT_DIRS = ("/lib/nut", "/usr/lib/nut", "/usr/libexec/nut")
STALE_AFTER = 3  # upsd's MAXAGE: seconds without word from the driver before DATA-STALE
DRIVER_POLL = 1  # dummy-ups pollinterval: how often it checks the .dev file
START_TIMEOUT = 20.0
SETTLE_TIMEOUT = 15.0
_TEXT = r"^[^\"\\\r\n]*$"  # dummy-ups' file parser cannot carry quotes or backslashes


class NutUnavailable(RuntimeError):
    """upsd or dummy-ups is not installed; the message says how to get them."""


def nut_programs() -> tuple[Path, Path]:
    """Paths of ``upsd`` and ``dummy-ups`` (``CCHUB_NUT_DIR`` overrides the search)."""
    override = os.environ.get("CCHUB_NUT_DIR")
    dirs = (override,) if override else NUT_DIRS
    for folder in dirs:
        upsd, driver = Path(folder) / "upsd", Path(folder) / "dummy-ups"
        if os.access(upsd, os.X_OK) and os.access(driver, os.X_OK):
            return upsd, driver
    raise NutUnavailable(
        f"NUT's upsd and dummy-ups are not installed (looked in {', '.join(dirs)}): install"
        " Debian's nut-server and nut-client (`make deps` does) or set CCHUB_NUT_DIR"
    )


class NutState(SimState):
    """What the UPS reports through dummy-ups, and which NUT processes run."""

    status: str = Field("OL CHRG", description="ups.status flags, e.g. 'OB DISCHRG'")
    battery_charge: float = Field(100, ge=0, le=100, description="%")
    battery_runtime: int = Field(3120, ge=0, description="s")
    battery_voltage: float = Field(54.6, ge=0, description="V")
    input_voltage: float = Field(230.0, ge=0, description="V")
    input_frequency: float = Field(50.0, ge=0, description="Hz")
    output_voltage: float = Field(230.0, ge=0, description="V")
    load: int = Field(34, ge=0, le=200, description="% of rated")
    alarm: str = Field("", pattern=_TEXT, description="ups.alarm; ALARM joins the status")
    manufacturer: str = Field("APC", min_length=1, pattern=_TEXT)
    model: str = Field("Smart-UPS 3000 RM", min_length=1, pattern=_TEXT)
    serial: str = Field("AS1834123456", min_length=1, pattern=_TEXT)
    extra: dict[str, str] = Field(
        {}, description="more NUT variables, name -> value ('' removes one, as in dummy-ups)"
    )
    driver: Literal["running", "stopped", "frozen"] = Field(
        "running", description="dummy-ups: stopped -> DRIVER-NOT-CONNECTED, frozen -> DATA-STALE"
    )
    upsd: Literal["running", "stopped", "frozen"] = Field(
        "running", description="stopped: port closed; frozen: connects but never answers"
    )

    @field_validator("status")
    @classmethod
    def _flags(cls, value: str) -> str:
        _, unknown = nut.parse_status(value)
        if unknown or not value.split():
            legal = ", ".join(f.value for f in nut.StatusFlag)
            raise ValueError(f"status {value!r}: flags must be among {legal}")
        return " ".join(value.split())

    @field_validator("extra")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not name or any(not (c.isalnum() or c in "._-") for c in name):
                raise ValueError(f"extra: {name!r} is not a NUT variable name")
            if any(c in text for c in '"\\\r\n'):
                raise ValueError(f"extra.{name}: quotes, backslashes and newlines cannot be served")
        return value


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def served_vars(state: NutState) -> dict[str, str]:
    """The NUT variables dummy-ups serves for ``state`` (what upsd's LIST VAR must show)."""
    status = state.status
    if state.alarm and nut.StatusFlag.ALARM.value not in status.split():
        status += " ALARM"
    values = {
        "ups.status": status,
        "ups.mfr": state.manufacturer,
        "ups.model": state.model,
        "ups.serial": state.serial,
        "ups.load": str(state.load),
        "battery.charge": _number(state.battery_charge),
        "battery.runtime": str(state.battery_runtime),
        "battery.voltage": _number(state.battery_voltage),
        "input.voltage": _number(state.input_voltage),
        "input.frequency": _number(state.input_frequency),
        "output.voltage": _number(state.output_voltage),
        **{name: value for name, value in state.extra.items() if value},
    }
    if state.alarm:
        values["ups.alarm"] = state.alarm
    return values


def render_dev(values: dict[str, str], removed: set[str]) -> str:
    """A dummy-ups definition file; an empty value deletes a variable the driver still has."""
    lines = [f'{name}: "{value}"' for name, value in values.items()]
    lines += [f'{name}: ""' for name in sorted(removed - set(values))]
    return "\n".join(lines) + "\n"


class _Proxy:
    """One hub connection, forwarded to upsd; replies pass the fault outbox."""

    def __init__(self, sim: NutSimulator, writer: asyncio.StreamWriter) -> None:
        self.sim = sim
        self.writer = writer
        self.outbox = Outbox(sim, self._write)
        self.upstream: asyncio.StreamWriter | None = None

    def _write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def close(self) -> None:
        self.writer.close()
        if self.upstream is not None:
            self.upstream.close()


@register("nut")
class NutSimulator(Simulator):
    """A NUT server (upsd + dummy-ups) on TCP; ``driver.options.ups`` names the UPS."""

    resource_kinds = ("tcp",)
    state_model = NutState
    state: NutState

    _server: asyncio.Server | None = None
    _upsd: asyncio.subprocess.Process | None = None
    _driver: asyncio.subprocess.Process | None = None
    port = 0

    async def _open(self) -> None:
        options = self.device.driver.options
        self.ups = str(options.get("ups") or "ups")
        self.username = options.get("username")
        self.password = options.get("password")
        self.host = getattr(self.device.resource, "host", "127.0.0.1")
        self.port = getattr(self.device.resource, "port", 0)
        self._programs = nut_programs()
        self._proxies: dict[asyncio.Task[Any], _Proxy] = {}
        self._written: set[str] = set()
        self._removed: set[str] = set()
        self._mtime = 0
        self._pending: asyncio.Task[None] | None = None
        self._stopping = False
        self._upsd_port = 0
        self._run = self.workdir / "nut"
        await asyncio.to_thread(self._prepare_run_dir)
        await asyncio.to_thread(self._write_dev)
        await self._reconcile()
        await self._settle(START_TIMEOUT)
        if self.state.upsd != "stopped":
            await self._listen()

    # -- files ----------------------------------------------------------------------------

    def _prepare_run_dir(self) -> None:
        state = self._run / "state"
        state.mkdir(parents=True, exist_ok=True)
        self._run.chmod(0o755)
        state.chmod(0o770)
        desc = (self.device.driver.name or f"cchub lab UPS {self.name}").replace('"', "'")
        (self._run / "ups.conf").write_text(
            f"[{self.ups}]\n"
            "  driver = dummy-ups\n"
            f"  port = {self._dev_file()}\n"
            "  mode = dummy-once\n"
            f"  pollinterval = {DRIVER_POLL}\n"
            f'  desc = "{desc}"\n'
        )
        users = self._run / "upsd.users"
        text = ""
        if self.username and self.password:
            text = f'[{self.username}]\n  password = "{self.password}"\n  upsmon secondary\n'
        users.write_text(text)
        users.chmod(0o600)

    def _dev_file(self) -> Path:
        return self._run / f"{self.ups}.dev"

    def _write_upsd_conf(self) -> None:
        (self._run / "upsd.conf").write_text(
            f"LISTEN 127.0.0.1 {self._upsd_port}\nMAXAGE {STALE_AFTER}\n"
        )

    def _write_dev(self) -> None:
        """Replace the .dev file atomically with a newer mtime (dummy-ups compares seconds)."""
        values = served_vars(self.state)
        target = self._dev_file()
        tmp = target.with_suffix(".tmp")
        tmp.write_text(render_dev(values, self._written))
        self._mtime = max(int(time.time()) + 1, self._mtime + 1)
        os.utime(tmp, (self._mtime, self._mtime))
        os.replace(tmp, target)
        self._removed = self._written - set(values)
        self._written = set(values)

    def _log_tail(self, name: str) -> str:
        try:
            text = (self._run / name).read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-3:])

    # -- processes ------------------------------------------------------------------------

    async def _spawn(self, program: Path, *args: str, log: str) -> asyncio.subprocess.Process:
        env = {
            **os.environ,
            "NUT_CONFPATH": str(self._run),
            "NUT_STATEPATH": str(self._run / "state"),
        }
        user = ("-u", "root") if os.getuid() == 0 else ()  # else NUT switches to user 'nut'
        out = await asyncio.to_thread(open, self._run / log, "ab")
        try:
            return await asyncio.create_subprocess_exec(
                str(program), *args, "-F", *user,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                env=env, cwd=self._run, start_new_session=True,
            )  # fmt: skip
        finally:
            out.close()

    async def _terminate(self, proc: asyncio.subprocess.Process | None) -> None:
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)  # a frozen driver cannot act on SIGTERM
        await stop_process(proc)

    async def _start_upsd(self) -> None:
        upsd, _ = self._programs
        for _attempt in range(3):
            if not self._upsd_port:
                self._upsd_port = free_port()
            await asyncio.to_thread(self._write_upsd_conf)
            self._upsd = await self._spawn(upsd, log="upsd.log")
            if await self._listening(self._upsd):
                return
            await self._terminate(self._upsd)
            self._upsd, self._upsd_port = None, 0  # the port was taken meanwhile: another
        raise RuntimeError(f"upsd did not start: {self._log_tail('upsd.log')}")

    async def _listening(self, proc: asyncio.subprocess.Process) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.returncode is None:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self._upsd_port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return True
        return False

    async def _reconcile(self, driver: str | None = None) -> None:
        """Start, stop, freeze or thaw upsd and dummy-ups as the state says."""
        _, dummy_ups = self._programs
        want = driver or self.state.driver
        proc = self._driver
        alive = proc is not None and proc.returncode is None
        if want == "stopped" or not alive:
            if alive:
                await self._terminate(proc)
            self._driver = None
            if want != "stopped":
                self._driver = await self._spawn(dummy_ups, "-a", self.ups, log="dummy-ups.log")
                self.spawn(self._watch(self._driver, "dummy-ups"), "dummy-ups watch")
        if self._driver is not None and self._driver.returncode is None:
            sig = signal.SIGSTOP if want == "frozen" else signal.SIGCONT
            self._driver.send_signal(sig)
        upsd_alive = self._upsd is not None and self._upsd.returncode is None
        if self.state.upsd == "stopped" and upsd_alive:
            await self._stop_listening()
            await self._terminate(self._upsd)
            self._upsd = None
        elif self.state.upsd != "stopped" and not upsd_alive:
            await self._start_upsd()
            assert self._upsd is not None
            self.spawn(self._watch(self._upsd, "upsd"), "upsd watch")
            if self.status is SimStatus.RUNNING and not self.link_down:
                await self._listen()
        if self._upsd is not None and self._upsd.returncode is None:
            sig = signal.SIGSTOP if self.state.upsd == "frozen" else signal.SIGCONT
            self._upsd.send_signal(sig)

    async def _watch(self, proc: asyncio.subprocess.Process, what: str) -> None:
        code = await proc.wait()
        wanted = self.state.upsd if what == "upsd" else self.state.driver
        if not self._stopping and wanted != "stopped" and code not in (0, -signal.SIGTERM):
            log = "upsd.log" if what == "upsd" else "dummy-ups.log"
            raise RuntimeError(f"{what} exited with code {code}: {self._log_tail(log)}")

    async def _settle(self, within: float, driver: str | None = None) -> None:
        """Wait until upsd serves what the state says (or the error it implies)."""
        if self.state.upsd != "running":
            return  # nothing to ask: the port is closed, or upsd hangs
        expected = served_vars(self.state)
        want_error = {"stopped": "DRIVER-NOT-CONNECTED", "frozen": "DATA-STALE"}.get(
            driver or self.state.driver
        )
        deadline = time.monotonic() + within
        seen = "nothing"
        while time.monotonic() < deadline:
            try:
                async with await nut.NutClient.connect(
                    "127.0.0.1", self._upsd_port, limit=2.0
                ) as client:
                    served = await client.list_var(self.ups)
                current = all(served.get(k) == v for k, v in expected.items())
                if want_error is None and current and not self._removed & set(served):
                    return
                seen = f"ups.status {served.get('ups.status')!r}"
            except nut.NutError as err:
                if err.code == want_error:
                    return
                seen = err.code
            except (OSError, TimeoutError, nut.NutProtocolError) as err:
                seen = str(err) or type(err).__name__
            await asyncio.sleep(0.1)
        want = want_error or "the new values"
        raise RuntimeError(f"upsd did not serve {want} within {within:g} s (last: {seen})")

    # -- the proxy ------------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._drop_clients()

    def _drop_clients(self) -> None:
        # closing both ends ends the client's task (cancelling it upsets asyncio 3.11's
        # start_server callback, which calls exception() on the finished task)
        for proxy in list(self._proxies.values()):
            proxy.close()
        self._proxies.clear()

    def _on_disconnect(self) -> None:
        self._drop_clients()

    async def _on_link(self, down: bool) -> None:
        if down:
            await self._stop_listening()
        elif self.status is SimStatus.RUNNING and self.state.upsd != "stopped":
            await self._listen()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self.link_down or task is None or self.status is not SimStatus.RUNNING:
            writer.close()
            return
        # not adopted: stop() would cancel it (see _drop_clients); _close() ends it instead
        proxy = _Proxy(self, writer)
        self._proxies[task] = proxy
        peer = writer.get_extra_info("peername")
        sender = self.spawn(proxy.outbox.run(), "nut writer")
        pump: asyncio.Task[None] | None = None
        try:
            up_reader, proxy.upstream = await asyncio.open_connection("127.0.0.1", self._upsd_port)
            pump = self.spawn(self._pump(up_reader, proxy), "nut upstream")
            self.log.info("client connected: %s", peer)
            framer = nut.nut_framer()
            while data := await reader.read(4096):
                try:
                    lines = framer.feed(data)
                except FramingError as err:
                    self.log.debug("request framing: %s", err)
                    lines = err.frames
                for line in lines:
                    self.check_crash()
                    code = self.faults.error_code(nut.NutErrorCode.DATA_STALE)
                    if code is not None:
                        proxy.outbox.send(bytes(nut.Err(code)))
                    else:
                        proxy.upstream.write(line)
                await proxy.upstream.drain()
        except (ConnectionError, OSError) as err:
            self.log.info("client %s: %s", peer, err)
        except Exception as err:  # loop boundary: this NUT server crashes, the bench goes on
            self.crashed(err)
        finally:
            self._proxies.pop(task, None)
            sender.cancel()
            if pump is not None:
                pump.cancel()
            proxy.close()
            self.log.info("client gone: %s", peer)

    async def _pump(self, reader: asyncio.StreamReader, proxy: _Proxy) -> None:
        """upsd -> hub; when upsd hangs up, so does the proxy (after the queued replies)."""
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(4096):
                proxy.outbox.send(data)
        await asyncio.sleep(self.faults.reply_delay() + 0.05)
        proxy.writer.close()

    # -- lifecycle and state --------------------------------------------------------------

    async def _close(self) -> None:
        self._stopping = True
        await self._stop_listening()
        await self._terminate(self._upsd)
        await self._terminate(self._driver)
        self._upsd = self._driver = None

    def site_transport(self) -> dict[str, Any]:
        return {"kind": "tcp", "host": self.host, "port": self.port}

    def pids(self) -> list[int]:
        procs = (self._upsd, self._driver)
        return [p.pid for p in procs if p is not None and p.returncode is None]

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described["ups"] = self.ups
        return described

    def _state_changed(self, changed: set[str], old: SimState) -> None:
        if self.status is SimStatus.RUNNING:
            previous = self._pending
            self._pending = self.spawn(self._apply(previous), "nut state")

    async def _apply(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await previous
        await asyncio.to_thread(self._write_dev)
        driver = self._driver
        if self.state.driver == "frozen" and (driver is None or driver.returncode is not None):
            # a driver frozen before it ever spoke is "not connected", not stale: start it,
            # let upsd hear from it, then freeze it
            await self._reconcile(driver="running")
            await self._settle(SETTLE_TIMEOUT, driver="running")
        await self._reconcile()
        await self._settle(SETTLE_TIMEOUT + STALE_AFTER)

    async def _flush(self) -> None:
        if self._pending is not None:
            await asyncio.shield(self._pending)


__all__ = ["NutSimulator", "NutState", "NutUnavailable", "nut_programs", "served_vars"]
