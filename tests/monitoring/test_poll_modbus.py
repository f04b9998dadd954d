"""Modbus register maps over TCP and RTU (a pty pair) against the lab's Modbus sensor, which
the real ``mbpoll`` CLI reads too (it speaks real Modbus); exception replies, garbled frames
and silence are counted and never stall the loop."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from lab.sims.modbus_sensor import ModbusSensor, SensorPoint, SensorState, crc16
from monitoring.coordinator import TARGET_DOWN, TARGET_UP
from monitoring.modbus import ModbusCoordinator, decode_words, encode_words, plan_reads
from monitoring.samples import OccurrenceState
from monitoring.targets import ModbusTarget
from tests.monitoring.producers import Recorder, run, wired

pytestmark = pytest.mark.slow

POINTS = [
    SensorPoint(name="level", address=0, type="uint16", scale=0.01, value=1.25),
    SensorPoint(name="pressure", address=1, type="float32", word_order="little", value=3.5),
    SensorPoint(name="flow", address=3, type="int32", word_order="big", scale=0.1, value=-1234.5),
    SensorPoint(name="total", address=20, type="uint32", word_order="little", value=3_000_000_000),
    SensorPoint(
        name="temp", function=4, address=9, type="int16", scale=0.1, offset=-40, value=-4.5
    ),
    SensorPoint(name="leak", function=4, address=10, type="uint16", value=0),
]
# the vendor manual's numbering: register 1 is wire address 0
REGISTERS: list[dict[str, Any]] = [
    {"metric": "water.level", "address": 1, "scale": 0.01, "unit": "m"},
    {"metric": "tank.pressure", "address": 2, "type": "float32", "word_order": "little",
     "unit": "bar"},
    {"metric": "pump.flow", "address": 4, "type": "int32", "scale": 0.1, "unit": "m3/h"},
    {"metric": "pump.total", "address": 21, "type": "uint32", "word_order": "little", "unit": "m3"},
    {"metric": "room.temperature", "function": 4, "address": 10, "type": "int16",
     "scale": 0.1, "offset": -40, "unit": "°C"},
    {"metric": "water.leak", "function": 4, "address": 11},
]  # fmt: skip
EXPECTED = {
    "water.level": 1.25,
    "tank.pressure": 3.5,
    "pump.flow": -1234.5,
    "pump.total": 3_000_000_000.0,
    "room.temperature": -4.5,
    "water.leak": 0.0,
}


@pytest_asyncio.fixture
async def sensor() -> AsyncIterator[ModbusSensor]:
    state = SensorState(points=[p.model_copy() for p in POINTS])
    async with ModbusSensor(state, tcp=True, rtu=True) as sim:
        yield sim


def target(transport: dict[str, Any], **fields: Any) -> ModbusTarget:
    return ModbusTarget.model_validate(
        {
            "kind": "modbus",
            "id": "pump-room",
            "transport": transport,
            "addressing": 1,
            "timeout": 0.5,
            "retries": 0,
            "registers": REGISTERS,
            **fields,
        }
    )


def tcp(sim: ModbusSensor) -> dict[str, Any]:
    return {"kind": "tcp", "host": "127.0.0.1", "port": sim.port}


def values(feed: Recorder) -> dict[str, float | None]:
    return {s.metric: s.value for s in feed.samples if s.metric != TARGET_UP}


def test_register_types_and_word_orders() -> None:
    assert decode_words([0xFFFF], "int16") == -1.0
    assert decode_words([0xFFFF], "uint16") == 65535.0
    assert decode_words([0x0001, 0x0002], "uint32", "big") == 65538.0
    assert decode_words([0x0002, 0x0001], "uint32", "little") == 65538.0
    assert decode_words([0xFFFF, 0xFFFE], "int32", "big") == -2.0
    assert decode_words([0x4060, 0x0000], "float32", "big") == 3.5
    assert decode_words([0x0000, 0x4060], "float32", "little") == 3.5
    for kind, value in (
        ("int16", -300),
        ("uint32", 4_000_000_000),
        ("int32", -7),
        ("float32", 0.25),
    ):
        for order in ("big", "little"):
            assert decode_words(encode_words(value, kind, order), kind, order) == value
    with pytest.raises(ValueError, match="takes 2 registers"):
        decode_words([1], "float32")
    with pytest.raises(ValueError, match="does not fit int16"):
        encode_words(40000, "int16")
    # the RTU check sum from the Modbus over serial line guide's example (read 03, slave 1)
    assert crc16(bytes.fromhex("010300000001")) == 0x0A84


def test_reads_are_planned_as_few_blocks() -> None:
    plan = plan_reads(target({"kind": "tcp", "host": "127.0.0.1", "port": 502}))
    assert [(b.function, b.address, b.count) for b in plan] == [(3, 0, 5), (3, 20, 2), (4, 9, 2)]
    wide = plan_reads(target({"kind": "tcp", "host": "127.0.0.1", "port": 502}, max_gap=20))
    assert [(b.function, b.address, b.count) for b in wide] == [(3, 0, 22), (4, 9, 2)]


def test_register_maps_are_checked() -> None:
    with pytest.raises(ValueError, match="below 1"):
        target(
            {"kind": "tcp", "host": "127.0.0.1", "port": 502},
            registers=[{"metric": "x", "address": 0}],
        )


async def test_mbpoll_reads_the_simulator_over_tcp_and_rtu(sensor: ModbusSensor) -> None:
    """The real mbpoll CLI: holding registers 1-3 over TCP, the float over RTU on the pty."""
    assert shutil.which("mbpoll"), "mbpoll is missing: install Debian's mbpoll (`make deps`)"
    out = await run(
        "mbpoll", "-m", "tcp", "-p", str(sensor.port), "-a", "1", "-r", "1", "-c", "1", "-1",
        "-t", "4", "127.0.0.1",
    )  # fmt: skip
    assert "[1]: \t125" in out  # level 1.25 m in centimetres
    out = await run(
        "mbpoll", "-m", "rtu", "-b", "9600", "-P", "none", "-a", "1", "-r", "2", "-c", "1",
        "-1", "-t", "4:float", sensor.rtu_path,
    )  # fmt: skip
    assert "[2]: \t3.5" in out
    out = await run(
        "mbpoll", "-m", "tcp", "-p", str(sensor.port), "-a", "1", "-r", "10", "-c", "1", "-1",
        "-t", "3", "127.0.0.1",
    )  # fmt: skip
    assert "[10]: \t355" in out  # (-4.5 - -40) / 0.1


@pytest.mark.parametrize("link", ["tcp", "rtu"])
async def test_reads_the_register_map(sensor: ModbusSensor, link: str) -> None:
    transport = tcp(sensor) if link == "tcp" else {"kind": "serial", "port": sensor.rtu_path}
    feed = Recorder()
    coordinator = ModbusCoordinator(target(transport), feed)
    try:
        assert await coordinator.poll()
    finally:
        await coordinator.stop()
    got = values(feed)
    assert got == pytest.approx(EXPECTED)
    assert feed.latest("room.temperature").unit == "°C"
    assert coordinator.stats.errors == {}


async def test_exception_replies_and_garbled_frames_are_counted(sensor: ModbusSensor) -> None:
    feed = Recorder()
    coordinator = ModbusCoordinator(target({"kind": "serial", "port": sensor.rtu_path}), feed)
    try:
        sensor.state.exception = 2  # illegal data address, to every read
        assert not await coordinator.poll()
        assert coordinator.stats.errors["exception_02"] == 3  # one per block
        assert "exception reply" in coordinator.stats.last_error
        sensor.state.exception = None
        sensor.state.garble = True  # bad CRC on every reply
        assert not await coordinator.poll()
        assert coordinator.stats.errors["bad_frame"] == 1
        assert "did not form a frame" in coordinator.stats.last_error
        sensor.state.garble = False
        sensor.state.silent = True
        assert not await coordinator.poll()
        assert coordinator.stats.errors["timeout"] == 1
        sensor.state.silent = False
        assert await coordinator.poll()
        assert values(feed) == pytest.approx(EXPECTED)
    finally:
        await coordinator.stop()
    states = [o.state for o in feed.occurrences if o.kind == TARGET_DOWN]
    assert states == [OccurrenceState.RAISE, OccurrenceState.CLEAR]  # one outage, logged once


async def test_one_refused_block_leaves_the_others(sensor: ModbusSensor) -> None:
    """A device that does not have some registers: those readings have no value, the rest do."""
    sensor.state.holes = "exception"
    feed = Recorder()
    registers = [*REGISTERS, {"metric": "missing", "function": 4, "address": 200}]
    coordinator = ModbusCoordinator(target(tcp(sensor), registers=registers), feed)
    try:
        assert await coordinator.poll()
    finally:
        await coordinator.stop()
    got = values(feed)
    assert got["missing"] is None and got["water.level"] == 1.25
    assert coordinator.stats.errors["exception_02"] == 1


async def test_garbage_and_wrong_values_reach_the_core_with_reasons(sensor: ModbusSensor) -> None:
    """A float register holding NaN is refused by the intake (not_finite), counted; a leak
    raises one alarm within one poll."""
    rig, intake = wired([{"id": "leak", "metric": "water.leak", "above": 1, "level": "red"}])
    sensor.set_value("pressure", float("nan"))
    coordinator = ModbusCoordinator(target(tcp(sensor)), intake.channel("poll"), clock=rig.clock)
    try:
        assert await coordinator.poll()
        assert intake.rejected[("poll", "not_finite")] == 1
        assert coordinator.stats.errors["not_finite"] == 1
        sensor.set_value("leak", 1)
        rig.clock.advance(5)
        assert await coordinator.poll()
    finally:
        await coordinator.stop()
    assert rig.core.get("leak@pump-room").state.value == "active-unack"
