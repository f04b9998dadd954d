"""SNMP polling against net-snmp's real snmpd (v1, v2c, v3 authPriv) and the lab's UPS-MIB
agent (snmpsim): description tables, vendor OIDs, counters as rates, wrong credentials,
a silent agent and a slow one, all while other coordinators keep polling."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from lab.harness import BenchThread
from lab.snmpd import NetSnmpAgent
from monitoring.coordinator import TARGET_DOWN, TARGET_UP
from monitoring.mibs import sensor_value
from monitoring.samples import OccurrenceState
from monitoring.snmp_poll import SnmpCoordinator
from monitoring.targets import SnmpTarget
from tests.lab.wire import simulator
from tests.monitoring.producers import Recorder, run, wired

pytestmark = pytest.mark.slow
SHARED_LOOP = pytest.mark.asyncio(loop_scope="module")

VENDOR = "1.3.6.1.4.1.99999.1"
SENSOR = "1.3.6.1.2.1.99.1.1.1"
V3 = {
    "version": "3",
    "user": "monitor",
    "auth_protocol": "SHA-256",
    "auth_key": "auth-pass-123",
    "priv_protocol": "AES",
    "priv_key": "priv-pass-456",
}
OVERRIDES: dict[str, tuple[str, str | int]] = {
    f"{VENDOR}.1.0": ("integer", 427),  # tank pressure in 0.01 bar
    f"{VENDOR}.2.0": ("counter", 123456),  # a packet counter
    # ENTITY-SENSOR-MIB: a temperature in tenths of a degree, a voltage in millivolts
    f"{SENSOR}.1.1": ("integer", 8),
    f"{SENSOR}.2.1": ("integer", 9),
    f"{SENSOR}.3.1": ("integer", 1),
    f"{SENSOR}.4.1": ("integer", 235),
    f"{SENSOR}.5.1": ("integer", 1),
    f"{SENSOR}.1.2": ("integer", 4),
    f"{SENSOR}.2.2": ("integer", 8),
    f"{SENSOR}.3.2": ("integer", 0),
    f"{SENSOR}.4.2": ("integer", 48120),
    f"{SENSOR}.5.2": ("integer", 1),
    # a third sensor that is out of order: polled, but no value
    f"{SENSOR}.1.3": ("integer", 8),
    f"{SENSOR}.2.3": ("integer", 9),
    f"{SENSOR}.3.3": ("integer", 0),
    f"{SENSOR}.4.3": ("integer", 0),
    f"{SENSOR}.5.3": ("integer", 3),
}
NO_MIBS = {**os.environ, "MIBS": "", "MIBDIRS": "/nonexistent"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent() -> AsyncIterator[NetSnmpAgent]:
    async with NetSnmpAgent(overrides=OVERRIDES) as snmpd:
        yield snmpd


def target(port: int, **fields: Any) -> SnmpTarget:
    base: dict[str, Any] = {
        "kind": "snmp",
        "id": "core-switch",
        "host": "127.0.0.1",
        "port": port,
        "community": "public",
        "timeout": 1.0,
        "retries": 0,
        "mibs": ["if-mib", "entity-sensor"],
        "objects": [
            {"oid": f"{VENDOR}.1.0", "metric": "tank.pressure", "scale": 0.01, "unit": "bar"},
            {"oid": f"{VENDOR}.2.0", "metric": "vendor.packets", "counter": True},
        ],
    }
    base.update(fields)
    if base.get("version") == "3":
        base.pop("community")
    return SnmpTarget.model_validate(base)


async def walk_descr(port: int) -> dict[str, str]:
    """net-snmp's own snmpbulkwalk of ifDescr: what our labels must say."""
    out = await run(
        "snmpbulkwalk", "-v2c", "-c", "public", "-On", "-Oq", f"127.0.0.1:{port}",
        ".1.3.6.1.2.1.2.2.1.2", env=NO_MIBS,
    )  # fmt: skip
    rows = {}
    for line in out.splitlines():
        oid, _, value = line.partition(" ")
        rows[oid.rsplit(".", 1)[1]] = value.strip().strip('"')
    return rows


@SHARED_LOOP
@pytest.mark.parametrize("version", ["2c", "3", "1"])
async def test_reads_if_mib_entity_sensors_and_vendor_objects(
    agent: NetSnmpAgent, version: str
) -> None:
    feed = Recorder()
    fields = V3 if version == "3" else {"version": version}
    coordinator = SnmpCoordinator(target(agent.port, **fields), feed)
    try:
        assert await coordinator.poll()
        assert await coordinator.poll()
    finally:
        await coordinator.stop()
        await coordinator.session.close()
    assert coordinator.stats.polls_ok == 2 and coordinator.stats.polls_failed == 0
    # IF-MIB: one row per interface, labelled as net-snmp itself reports them
    descr = await walk_descr(agent.port)
    seen = {
        s.labels["ifIndex"]: s.labels["ifDescr"]
        for s in feed.samples
        if s.metric == "if.oper_status"
    }
    assert seen == descr and "lo" in descr.values()
    lo = next(i for i, d in descr.items() if d == "lo")
    assert feed.latest("if.oper_status", ifIndex=lo).value == 1.0  # loopback is up
    assert feed.latest("if.admin_status", ifIndex=lo).value == 1.0
    # counters are rates, from the second poll on
    rate = feed.latest("if.in_octets_rate", ifIndex=lo)
    assert rate.unit == "B/s" and rate.value is not None and rate.value >= 0
    assert feed.latest("vendor.packets_rate").value == 0.0  # a constant counter
    # ENTITY-SENSOR-MIB: value x 10^(3*(scale-9)) / 10^precision
    temperature = feed.latest("sensor.temperature", entPhysicalIndex="1")
    assert (temperature.value, temperature.unit) == (23.5, "°C")
    volts = feed.latest("sensor.voltage_dc", entPhysicalIndex="2")
    assert (volts.value, volts.unit) == (pytest.approx(48.12), "V")
    assert feed.latest("sensor.temperature", entPhysicalIndex="3").value is None
    # vendor OID from the site file, scaled
    pressure = feed.latest("tank.pressure")
    assert (pressure.value, pressure.unit) == (pytest.approx(4.27), "bar")
    assert {s.source for s in feed.samples} == {"core-switch"}
    assert feed.latest(TARGET_UP).value == 1.0
    # the agent lacks UPS-MIB and says so per object: not a failure
    assert "ups.on_battery" not in feed.metrics()


def test_sensor_scaling_follows_rfc_3433() -> None:
    assert sensor_value(235, 9, 1) == 23.5
    assert sensor_value(48120, 8, 0) == pytest.approx(48.12)  # milli
    assert sensor_value(5, 10, 0) == 5000.0  # kilo
    assert sensor_value(-125, 9, 2) == -1.25


@SHARED_LOOP
async def test_wrong_v3_key_fails_with_what_to_check_and_is_logged_once(
    agent: NetSnmpAgent, caplog: pytest.LogCaptureFixture
) -> None:
    feed = Recorder()
    wrong = {**V3, "auth_key": "not-the-right-key"}
    coordinator = SnmpCoordinator(target(agent.port, **wrong), feed)
    caplog.set_level(logging.DEBUG, logger="monitoring.snmp_poll")
    try:
        for _ in range(3):
            assert not await coordinator.poll()
    finally:
        await coordinator.session.close()
    assert coordinator.stats.errors["auth"] == 3
    assert "check auth_key and auth_protocol" in coordinator.stats.last_error
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "not answering (auth)" in warnings[0].getMessage()
    # one outage: one raised occurrence, and up=0 on every poll
    assert [o.state for o in feed.occurrences if o.kind == TARGET_DOWN] == [OccurrenceState.RAISE]
    assert [s.value for s in feed.samples if s.metric == TARGET_UP] == [0.0, 0.0, 0.0]


class Relay(asyncio.DatagramProtocol):
    """A UDP hop in front of snmpd that swallows requests while ``silent``."""

    def __init__(self, upstream: int) -> None:
        self.upstream = ("127.0.0.1", upstream)
        self.silent = True
        self.transport: asyncio.DatagramTransport | None = None
        self.clients: dict[int, tuple[str, int]] = {}
        self.port = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self.port = self.transport.get_extra_info("sockname")[1]
        self._out, _ = await loop.create_datagram_endpoint(
            lambda: _Back(self), local_addr=("127.0.0.1", 0)
        )

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.silent:
            self.client = addr
            self._out.sendto(data, self.upstream)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self._out.close()


class _Back(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.relay.transport is not None
        self.relay.transport.sendto(data, self.relay.client)


@SHARED_LOOP
async def test_a_silent_agent_times_out_while_others_keep_polling(
    agent: NetSnmpAgent,
) -> None:
    """An agent that swallows requests: its target fails at the timeout, backs off, and
    recovers (once) when the agent answers again; a healthy target's polls go on meanwhile."""
    relay = Relay(agent.port)
    await relay.start()
    dead_feed, live_feed = Recorder(), Recorder()
    dead = SnmpCoordinator(
        target(relay.port, id="dead-switch", timeout=0.5, interval=0.2), dead_feed
    )
    live = SnmpCoordinator(target(agent.port, id="live-switch", interval=0.1), live_feed)
    try:
        async with live:
            assert not await dead.poll()  # takes the whole timeout
            live_polls = live.stats.polls_ok
            assert not await dead.poll()
            assert live.stats.polls_ok > live_polls  # the loop did not stall meanwhile
        assert dead.stats.errors["timeout"] == 2
        assert dead.next_delay() >= 0.2 * 2 * 0.9  # backing off after two failures
        raised = [o for o in dead_feed.occurrences if o.kind == TARGET_DOWN]
        assert [o.state for o in raised] == [OccurrenceState.RAISE]
        assert "no SNMP answer" in raised[0].message
        relay.silent = False
        assert await dead.poll()
        states = [o.state for o in dead_feed.occurrences if o.kind == TARGET_DOWN]
        assert states == [OccurrenceState.RAISE, OccurrenceState.CLEAR]
        assert dead_feed.latest(TARGET_UP).value == 1.0
    finally:
        relay.close()
        await dead.stop()
        await dead.session.close()


@SHARED_LOOP
async def test_a_slow_object_costs_only_its_own_target(tmp_path: Path) -> None:
    """snmpd serving an object through a pass script that takes 2 s: the poll is abandoned
    at its deadline and counted; the agent's other objects are fine on the next poll."""
    script = tmp_path / "slow.sh"
    script.write_text(
        "#!/bin/sh\nsleep 2\necho .1.3.6.1.4.1.99998.1.0\necho integer\necho 7\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    slow_oid = "1.3.6.1.4.1.99998.1.0"
    async with NetSnmpAgent(extra=[f"pass .1.3.6.1.4.1.99998 {script}"]) as slow:
        feed = Recorder()
        coordinator = SnmpCoordinator(
            target(
                slow.port,
                timeout=0.4,
                mibs=[],
                objects=[{"oid": slow_oid, "metric": "vendor.slow"}],
            ),
            feed,
        )
        try:
            assert not await coordinator.poll()
            assert coordinator.stats.errors["timeout"] == 1
            assert coordinator.stats.last_duration < 2.0
        finally:
            await coordinator.session.close()


async def test_ups_mib_agent_on_battery_raises_one_alarm_within_one_poll(
    bench: BenchThread,
) -> None:
    """The lab's UPS-MIB agent (snmpsim) polled as a monitoring target feeds the same
    ``ups.on_battery`` metric as the UPS device: one alarm after one poll, cleared after
    one poll with the mains back."""
    name = simulator(bench, "ups-mib")
    where = bench.site_transport(name)
    rig, intake = wired(
        [{"id": "on-battery", "metric": "ups.on_battery", "above": 1, "level": "orange"}]
    )
    coordinator = SnmpCoordinator(
        SnmpTarget.model_validate(
            {
                "kind": "snmp",
                "id": "ups-1",
                "host": where["host"],
                "port": where["port"],
                "version": where.get("version", "2c"),
                "community": where.get("community", "public"),
                "timeout": 2.0,
                "mibs": ["ups-mib"],
            }
        ),
        intake.channel("poll"),
        clock=rig.clock,
    )
    try:
        assert await coordinator.poll()
        assert rig.core.alarms() == []
        await asyncio.to_thread(bench.set_state, name, output_source="battery")
        rig.clock.advance(10)
        assert await coordinator.poll()
        alarm = rig.core.get("on-battery@ups-1")
        assert (alarm.state.value, alarm.count) == ("active-unack", 1)
        charge = intake.series.find("ups.charge_percent", "ups-1")[0]
        assert charge.unit == "%" and charge.last is not None
        await asyncio.to_thread(bench.set_state, name, output_source="normal")
        rig.clock.advance(10)
        assert await coordinator.poll()
        assert rig.core.get("on-battery@ups-1").state.value == "rtn-unack"
    finally:
        await coordinator.session.close()
