"""Lab Extron SIS simulators for scene tests, and the site-file entries that reach them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from lab.bench import Bench
from lab.benchfile import BenchSpec
from tests.devices.peers import FAST

OUTPUTS = 4
INITIAL = {out: out for out in range(1, OUTPUTS + 1)}  # output n <- input n


def bench_spec(*names: str) -> BenchSpec:
    device = {
        "resource": {"kind": "tcp", "host": "127.0.0.1", "port": 0},
        "driver": {"type": "extron-sis"},
        "state": {"inputs": 8, "outputs": OUTPUTS, "video_ties": INITIAL, "audio_ties": INITIAL},
    }
    return BenchSpec.model_validate(
        {"bench": "scenes", "devices": {name: device for name in names}}
    )


@asynccontextmanager
async def matrices(*names: str) -> AsyncIterator[Bench]:
    """Extron SIS simulators (8 inputs x 4 outputs, output n <- input n) on free ports."""
    async with Bench(bench_spec(*names), seed=1, control=False) as bench:
        yield bench


def device_entry(
    bench: Bench, name: str, *, type_name: str = "extron-sis", poll_interval: float = 0.3
) -> dict[str, Any]:
    return {
        "id": name,
        "type": type_name,
        "transport": bench.site_transport(name),
        "poll_interval": poll_interval,
        "timeout": 0.5,
        "options": {**FAST, "outputs": OUTPUTS, "inputs": 8},
    }


def ties(bench: Bench, name: str) -> dict[int, int]:
    """The simulator's own video tie table (what the switcher really does)."""
    return dict(bench.sim(name).state.video_ties)


def route(device: str, source: int, output: int, **extra: Any) -> dict[str, Any]:
    return {"device": device, "command": "route", "input": source, "output": output, **extra}
