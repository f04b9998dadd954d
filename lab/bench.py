"""A running bench: brings its simulators up in the strategy's order, supervises and stops them.

``async with Bench(spec) as bench:`` starts everything; a simulator that fails or crashes is
reported (``bench.crashes``) and the rest keep running unless the strategy says ``on_crash: stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from lab.benchfile import BenchSpec, Device
from lab.control import ControlServer
from lab.faults import FaultKind, FaultSpec
from lab.registry import simulator_for
from lab.scenario import load_scenario, run_scenario
from lab.simulator import SimStatus, Simulator
from lab.sitefile import describe_transport

logger = logging.getLogger(__name__)


class BenchError(RuntimeError):
    """The bench could not come up (``on_crash: stop``) or a name is unknown."""


class Bench:
    def __init__(self, spec: BenchSpec, *, seed: int | None = None, control: bool = True) -> None:
        self.spec = spec
        self.sims: dict[str, Simulator] = {}
        self.crashes: list[dict[str, str]] = []
        self.control_url: str | None = None
        self._seed = seed
        self._want_control = control
        self._control: ControlServer | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._scenario: asyncio.Task[None] | None = None
        self._failed = asyncio.Event()

    async def __aenter__(self) -> Bench:
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
    def real(self) -> dict[str, Device]:
        """Devices of the bench that are real hardware (no simulator)."""
        return {n: d for n, d in self.spec.devices.items() if not d.simulated}

    async def start(self) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix=f"cchub-bench-{self.spec.bench}-")
        try:
            for name in self.spec.bring_up_order():
                device = self.spec.devices[name]
                if device.simulated:
                    await self._start_one(name, device)
            if self._want_control:
                control = self.spec.strategy.control
                self._control = ControlServer(self)
                self.control_url = await self._control.start(control.host, control.port)
            path = self.spec.scenario_path()
            if path is not None:
                scenario = await asyncio.to_thread(load_scenario, path)
                self._scenario = asyncio.create_task(run_scenario(self, scenario))
        except BaseException:
            await self.stop()
            raise

    async def _start_one(self, name: str, device: Device) -> None:
        assert self._workdir is not None
        cls = simulator_for(device.driver.type)
        workdir = Path(self._workdir.name) / name
        workdir.mkdir()
        seed = None if self._seed is None else self._seed + len(self.sims)
        sim = cls(name, device, workdir=workdir, seed=seed, on_crash=self._crashed)
        self.sims[name] = sim
        try:
            await asyncio.wait_for(sim.start(), self.spec.strategy.start_timeout)
        except Exception as err:
            await sim.stop()
            sim.status = SimStatus.CRASHED
            sim.crash_reason = f"failed to start: {type(err).__name__}: {err}"
            self._crashed(sim, sim.crash_reason)
            if self.spec.strategy.on_crash == "stop":
                raise BenchError(f"{name}: {sim.crash_reason}") from err

    def _crashed(self, sim: Simulator, reason: str) -> None:
        logger.error("[bench=%s] simulator %s crashed: %s", self.spec.bench, sim.name, reason)
        self.crashes.append({"name": sim.name, "type": sim.type_name, "reason": reason})
        if self.spec.strategy.on_crash == "stop":
            self._failed.set()

    async def wait_failed(self) -> None:
        """Return when a crash should stop the bench (``on_crash: stop``)."""
        await self._failed.wait()

    async def stop(self) -> None:
        if self._scenario is not None:
            self._scenario.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._scenario
            self._scenario = None
        if self._control is not None:
            await self._control.stop()
            self._control = None
        for name in reversed(list(self.sims)):
            try:
                await self.sims[name].stop()
            except Exception:  # stop the others whatever happens to one
                logger.exception("[bench=%s] stopping %s failed", self.spec.bench, name)
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    # -- control (Python API; the HTTP endpoint calls these) ------------------------------

    def sim(self, name: str) -> Simulator:
        try:
            return self.sims[name]
        except KeyError:
            known = ", ".join(self.sims) or "none"
            raise BenchError(f"no simulator {name!r} on this bench (simulators: {known})") from None

    async def set_state(self, name: str, values: dict[str, Any]) -> dict[str, Any]:
        return await self.sim(name).update(values)

    def inject(self, name: str, spec: FaultSpec) -> None:
        self.sim(name).inject(spec)

    def clear(self, name: str, kind: FaultKind | None = None) -> None:
        self.sim(name).clear(kind)

    async def reset(self) -> None:
        """Every simulator back to its initial state, no faults."""
        for sim in self.sims.values():
            if sim.status is SimStatus.RUNNING:
                sim.reset()
                await sim.update({})

    def site_transport(self, name: str) -> dict[str, Any]:
        """Where the hub reaches device ``name``: the simulator, or the real resource."""
        if name in self.sims:
            return self.sims[name].site_transport()
        resource: dict[str, Any] = self.spec.devices[name].resource.model_dump()
        return resource

    def summary(self) -> list[str]:
        """One line per device: name, type, status and where the hub reaches it."""
        lines = []
        for name, device in self.spec.devices.items():
            sim = self.sims.get(name)
            if sim is None:
                status, where = "real", describe_transport(self.site_transport(name))
            elif sim.status is SimStatus.RUNNING:
                status, where = "running", describe_transport(sim.site_transport())
            else:
                status, where = sim.status.value, sim.crash_reason or ""
            lines.append(f"{name:<14} {device.driver.type:<12} {status:<8} {where}")
        return lines

    def pids(self) -> list[int]:
        return [pid for sim in self.sims.values() for pid in sim.pids()]

    def describe(self) -> dict[str, Any]:
        return {
            "bench": self.spec.bench,
            "control_url": self.control_url,
            "simulators": [sim.describe() for sim in self.sims.values()],
            "real": {n: self.site_transport(n) for n in self.real},
            "crashes": self.crashes,
        }
