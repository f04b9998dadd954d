"""The simulator interface: lifecycle, typed state, fault control and crash containment.

Every simulator (``lab/sims/*``) subclasses ``Simulator`` and registers under its ``type:``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from devices.tasks import TaskOwner
from lab.benchfile import Device
from lab.faults import FaultInjector, FaultKind, FaultSpec

logger = logging.getLogger(__name__)

FAULT_TICK = 0.05  # seconds between checks for fault expiry and flap phase changes


class SimState(BaseModel):
    """Base of each simulator's state model: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _SimLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every record with ``[sim=<name>]``."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[sim={self.extra['sim'] if self.extra else '?'}] {msg}", kwargs


class SimStatus(enum.Enum):
    STOPPED = "stopped"
    RUNNING = "running"
    CRASHED = "crashed"


class SimulatorCrashed(RuntimeError):
    """Raised inside a simulator by the ``crash`` fault."""


class Simulator(abc.ABC):
    """A device simulator on a real transport; subclasses implement the protocol."""

    type_name: ClassVar[str] = ""
    resource_kinds: ClassVar[tuple[str, ...]] = ()
    state_model: ClassVar[type[SimState]]

    def __init__(
        self,
        name: str,
        device: Device,
        *,
        workdir: Path,
        seed: int | None = None,
        on_crash: Callable[[Simulator, str], None] | None = None,
    ) -> None:
        self.name = name
        self.device = device
        self.workdir = workdir
        self.faults = FaultInjector(name, seed)
        self.status = SimStatus.STOPPED
        self.crash_reason: str | None = None
        self.log = _SimLog(logger, {"sim": name})
        self._initial = self.state_model.model_validate(device.state)
        self.state = self._initial.model_copy(deep=True)
        self._on_crash = on_crash
        self._tasks = TaskOwner(self.log, on_crash=self.crashed)
        self._link_down = False
        self._closing: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self._open()
        self.status = SimStatus.RUNNING
        self.spawn(self._fault_clock(), "fault clock")
        self.log.info("%s simulator up: %s", self.type_name, self.site_transport())

    async def stop(self) -> None:
        await self._tasks.close()
        if self._closing is not None:
            await asyncio.gather(self._closing, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._close()
        if self.status is SimStatus.RUNNING:
            self.status = SimStatus.STOPPED

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run ``coro`` owned by this simulator; an exception in it crashes only this one."""
        return self._tasks.spawn(coro, f"{self.name}: {what}")

    def crashed(self, err: BaseException) -> None:
        """Mark this simulator crashed, close it, and tell the bench; the bench goes on."""
        if self.status is SimStatus.CRASHED:
            return
        self.status = SimStatus.CRASHED
        self.crash_reason = f"{type(err).__name__}: {err}"
        self.log.error("simulator crashed: %s", self.crash_reason, exc_info=err)
        self._tasks.cancel_all()
        self._closing = asyncio.get_running_loop().create_task(self._close())
        if self._on_crash is not None:
            self._on_crash(self, self.crash_reason)

    def check_crash(self) -> None:
        """Raise ``SimulatorCrashed`` if the ``crash`` fault is armed (one-shot)."""
        if self.faults.crash_pending():
            self.faults.clear(FaultKind.CRASH)
            raise SimulatorCrashed("crash fault injected")

    # -- faults ---------------------------------------------------------------------------

    def inject(self, spec: FaultSpec) -> None:
        self.faults.inject(spec, time.monotonic())
        if spec.kind is FaultKind.DISCONNECT:
            self._on_disconnect()

    def clear(self, kind: FaultKind | None = None) -> None:
        self.faults.clear(kind)

    async def _fault_clock(self) -> None:
        while True:
            now = time.monotonic()
            self.faults.expire(now)
            down = self.faults.link_down(now)
            if down != self._link_down:
                self._link_down = down
                self.log.info("link %s", "down" if down else "up")
                await self._on_link(down)
            await asyncio.sleep(FAULT_TICK)

    @property
    def link_down(self) -> bool:
        return self._link_down

    async def _on_link(self, down: bool) -> None:  # noqa: B027 - optional hook
        """The link went down (``refuse``/``flap``) or came back; default: nothing to do."""

    def _on_disconnect(self) -> None:  # noqa: B027 - optional hook
        """``disconnect`` was injected: drop live connections (connection-oriented sims)."""

    # -- state ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return self.state.model_dump(mode="json")

    def set_state(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Change state as the front panel would; mappings (ties...) merge into the current ones.

        Raise ``ValueError`` naming the bad key or value.
        """
        current = self.state.model_dump()
        merged = dict(values)
        for key, value in values.items():
            if isinstance(current.get(key), dict) and isinstance(value, dict):
                merged[key] = {**current[key], **value}
        try:
            new = self.state_model.model_validate({**current, **merged})
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "state"
            raise ValueError(f"{where}: {first['msg']}") from None
        self._replace_state(new)
        return self.snapshot()

    def _replace_state(self, new: SimState) -> None:
        old = self.state
        self.state = new
        changed = {k for k in type(new).model_fields if getattr(old, k) != getattr(new, k)}
        if changed:
            self._state_changed(changed, old)

    async def update(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``set_state`` and wait until the device shows it on the wire."""
        snapshot = self.set_state(values)
        await self._flush()
        return snapshot

    async def _flush(self) -> None:  # noqa: B027 - optional hook
        """Wait for state changes to reach the wire (the UPS rewrites its recording)."""

    def reset(self) -> None:
        """Back to the bench file's initial state with no faults."""
        self.faults.clear()
        self._replace_state(self._initial.model_copy(deep=True))

    def _state_changed(self, changed: set[str], old: SimState) -> None:  # noqa: B027 - hook
        """Hook for unsolicited reports (Extron tie reports, CAT auto-info)."""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type_name,
            "status": self.status.value,
            "crash_reason": self.crash_reason,
            "transport": self.site_transport() if self.status is SimStatus.RUNNING else None,
            "faults": [f.model_dump(mode="json", exclude_none=True) for f in self.faults.active()],
            "state": self.snapshot(),
        }

    def pids(self) -> list[int]:
        """Processes this simulator started (for the state file); in-process sims: none."""
        return []

    @abc.abstractmethod
    async def _open(self) -> None: ...

    @abc.abstractmethod
    async def _close(self) -> None: ...

    @abc.abstractmethod
    def site_transport(self) -> dict[str, Any]:
        """The ``transport:`` the hub's site file uses to reach this simulator."""


class Outbox:
    """Replies on one stream link, sent in order after the injected delay, through drop/garble."""

    def __init__(self, sim: Simulator, write: Callable[[bytes], None]) -> None:
        self._sim = sim
        self._write = write
        self._queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    def send(self, data: bytes) -> None:
        due = time.monotonic() + self._sim.faults.reply_delay()
        self._queue.put_nowait((due, data))

    async def run(self) -> None:
        while True:
            due, data = await self._queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            data = self._sim.faults.mangle(data)
            if data:
                self._write(data)
