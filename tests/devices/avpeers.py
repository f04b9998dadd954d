"""Lab simulators as device-test peers: started on loopback (or a pty) and stopped after."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from devices.base import Device
from devices.registry import driver_for
from lab.benchfile import Device as BenchDevice
from lab.faults import FaultKind, FaultSpec
from lab.registry import simulator_for
from lab.simulator import Simulator
from tests.devices.peers import device_config


@asynccontextmanager
async def simulator(type_name: str, kind: str = "tcp", **state: Any) -> AsyncIterator[Simulator]:
    """The lab simulator of ``type_name`` on ``kind`` (tcp, pty, udp), with initial ``state``."""
    spec = BenchDevice.model_validate(
        {"resource": {"kind": kind}, "driver": {"type": type_name}, "state": state}
    )
    with tempfile.TemporaryDirectory(prefix="cchub-test-") as workdir:
        sim = simulator_for(type_name)(type_name, spec, workdir=Path(workdir), seed=7)
        await sim.start()
        try:
            yield sim
        finally:
            await sim.stop()


def driver(sim: Simulator, **overrides: Any) -> Device[Any]:
    """The hub's driver for ``sim``, configured like the site file the bench writes."""
    config = device_config(sim.type_name, sim.site_transport(), **overrides)
    device: Device[Any] = driver_for(sim.type_name)(config)
    return device


def fault(sim: Simulator, kind: str, **params: Any) -> None:
    sim.inject(FaultSpec(kind=FaultKind(kind), **params))
