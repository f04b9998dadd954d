"""Each driver against its lab simulator (the session's bench), through the DeviceManager."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from devices.manager import DeviceManager
from lab.harness import BenchThread
from tests.devices.peers import device_config, eventually
from tests.lab.wire import device, simulator

pytestmark = pytest.mark.slow


@pytest.fixture
async def managed(bench: BenchThread) -> AsyncIterator[tuple[DeviceManager, dict[str, str]]]:
    names = {t: device(bench, t) for t in ("kenwood-cat", "extron-sis", "ups-mib")}
    configs = [
        device_config(t, bench.site_transport(name), id=name, timeout=1.0, poll_interval=0.3)
        for t, name in names.items()
    ]
    manager = DeviceManager(configs)
    await manager.start()
    try:
        for name in names.values():
            await eventually(lambda n=name: manager.snapshots()[n].online, within=10)  # type: ignore[misc]
        yield manager, names
    finally:
        await manager.stop()


async def set_state(bench: BenchThread, name: str, **values: Any) -> None:
    await asyncio.to_thread(bench.set_state, name, **values)


async def test_radio_follows_the_simulated_ts590(
    managed: tuple[DeviceManager, dict[str, str]], bench: BenchThread
) -> None:
    manager, names = managed
    radio = names["kenwood-cat"]
    state = manager.snapshots()[radio].state
    assert state["frequency_hz"] == bench.state(radio)["vfo_a"]
    result = await manager.command(radio, {"command": "set_frequency", "hz": 7_123_000})
    assert result == {"frequency_hz": 7_123_000}
    assert (await asyncio.to_thread(bench.state, radio))["vfo_a"] == 7_123_000
    assert await manager.command(radio, {"command": "ptt", "on": True}) == {"transmitting": True}
    assert await manager.command(radio, {"command": "ptt", "on": False}) == {"transmitting": False}


async def test_matrix_routes_and_sees_front_panel_ties(
    managed: tuple[DeviceManager, dict[str, str]], bench: BenchThread
) -> None:
    manager, names = managed
    matrix = names["extron-sis"]
    assert manager.snapshots()[matrix].state["ties"][2] == 2
    result = await manager.command(matrix, {"command": "route", "input": 5, "output": 3})
    assert result == {"input": 5, "output": 3, "type": "all"}
    name = simulator(bench, "extron-sis")
    await set_state(bench, name, video_ties={1: 7, 2: 2, 3: 5})
    await eventually(lambda: manager.snapshots()[matrix].state["ties"][1] == 7)


async def test_ups_reports_a_mains_failure(
    managed: tuple[DeviceManager, dict[str, str]], bench: BenchThread
) -> None:
    manager, names = managed
    ups = names["ups-mib"]
    assert manager.snapshots()[ups].state["on_battery"] is False
    name = simulator(bench, "ups-mib")
    await set_state(bench, name, output_source="battery", battery_status="low")
    await eventually(lambda: manager.snapshots()[ups].state["on_battery"] is True, within=10)
    assert manager.snapshots()[ups].state["battery_low"] is True
