"""Video wall simulators for the device tests, started in the test's loop the way the bench does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lab.benchfile import Device as BenchDevice
from lab.faults import FaultSpec
from lab.registry import simulator_for
from lab.simulator import Simulator


@contextlib.asynccontextmanager
async def running(
    type_name: str,
    workdir: Path,
    *,
    resource: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> AsyncIterator[Simulator]:
    """A simulator of ``type_name`` on loopback (port 0), stopped on exit."""
    device = BenchDevice.model_validate(
        {
            "resource": resource or {"kind": "tcp"},
            "driver": {"type": type_name, "options": options or {}},
            "state": state or {},
        }
    )
    sim = simulator_for(type_name)(type_name, device, workdir=workdir, seed=1)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def fault(kind: str, **params: Any) -> FaultSpec:
    return FaultSpec.model_validate({"kind": kind, **params})
