"""NUT polling against the real upsd + dummy-ups (the lab's ``nut`` simulator): a mains
failure raises one alarm within one poll, the load behind the UPS is suppressed, and the
alarm clears with hysteresis on the battery charge; upsd errors fail the poll with upsd's
own code."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import yaml

from hub.yamlsource import load_yaml
from lab.bench import Bench
from lab.benchfile import validate_bench
from lab.faults import FaultKind, FaultSpec
from lab.sims.nut import NutUnavailable, nut_programs
from monitoring.coordinator import TARGET_DOWN
from monitoring.nut_poll import NutCoordinator
from monitoring.samples import Occurrence, OccurrenceState
from monitoring.targets import NutTarget
from tests.monitoring.producers import Recorder, wired

pytestmark = pytest.mark.slow
SHARED_LOOP = pytest.mark.asyncio(loop_scope="module")
UPS = "rack-b1"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upsd() -> AsyncIterator[Bench]:
    document = {
        "bench": "nut-poll",
        "devices": {
            "ups-2": {
                "resource": {"kind": "tcp"},
                "driver": {"type": "nut", "options": {"ups": UPS}},
            }
        },
        "strategy": {"on_crash": "stop"},
    }
    try:
        nut_programs()
    except NutUnavailable as err:
        pytest.fail(str(err))
    async with Bench(validate_bench(load_yaml(yaml.safe_dump(document))), control=False) as lab:
        yield lab


@pytest_asyncio.fixture(loop_scope="module")
async def nut_server(upsd: Bench) -> AsyncIterator[Bench]:
    yield upsd
    await upsd.reset()


def target(bench: Bench, **fields: object) -> NutTarget:
    where = bench.site_transport("ups-2")
    return NutTarget.model_validate(
        {"kind": "nut", "id": "ups-2", "host": where["host"], "port": where["port"],
         "timeout": 2.0, **fields}
    )  # fmt: skip


@SHARED_LOOP
async def test_mains_failure_raises_one_alarm_within_one_poll(nut_server: Bench) -> None:
    rig, intake = wired(
        [
            {"id": "on-battery", "metric": "ups.on_battery", "above": 1, "level": "orange",
             "impairs": True},
            {"id": "charge-low", "metric": "ups.charge_percent", "below": 30, "clear": 50,
             "unit": "%", "level": "red"},
            {"id": "unreachable", "event": "target.down", "level": "yellow", "unreachable": True},
        ],
        dependencies=[{"parent": "ups-2", "children": ["pstn-gw"], "via": "power"}],
    )  # fmt: skip
    coordinator = NutCoordinator(target(nut_server), intake.channel("poll"), clock=rig.clock)
    try:
        assert await coordinator.poll()
        assert rig.core.alarms() == []
        charge = intake.series.find("ups.charge_percent", "ups-2")[0]
        assert (charge.unit, dict(charge.key.labels)) == ("%", {"ups": UPS})
        # the gateway behind the UPS stops answering: its alarm is annunciated
        rig.core.occur(Occurrence("target.down", "pstn-gw", rig.clock.now))
        gateway = "unreachable@pstn-gw"
        assert rig.state(gateway).value == "active-unack"

        await nut_server.set_state("ups-2", {"status": "OB DISCHRG", "battery_charge": 25})
        rig.clock.advance(5)
        assert await coordinator.poll()
        on_battery = f"on-battery@ups-2,ups={UPS}"
        low = f"charge-low@ups-2,ups={UPS}"
        assert rig.state(on_battery).value == "active-unack"
        assert rig.core.get(on_battery).count == 1
        assert rig.state(low).value == "active-unack"
        assert rig.state(gateway).value == "suppressed"  # it is the power, not the gateway

        # mains back, charge 40 %: above the threshold, not yet past the clear (hysteresis)
        await nut_server.set_state("ups-2", {"status": "OL CHRG", "battery_charge": 40})
        rig.clock.advance(5)
        assert await coordinator.poll()
        assert rig.state(on_battery).value == "rtn-unack"
        assert rig.state(low).value == "active-unack"
        await nut_server.set_state("ups-2", {"battery_charge": 55})
        rig.clock.advance(5)
        assert await coordinator.poll()
        assert rig.state(low).value == "rtn-unack"
    finally:
        await coordinator.stop()


@SHARED_LOOP
async def test_upsd_errors_and_garbage_fail_the_poll_with_a_reason(nut_server: Bench) -> None:
    feed = Recorder()
    coordinator = NutCoordinator(target(nut_server, ups="no-such-ups"), feed)
    try:
        assert not await coordinator.poll()
        assert "UNKNOWN-UPS" in coordinator.stats.last_error
        assert coordinator.stats.errors["device"] == 1
    finally:
        await coordinator.stop()
    nut_server.inject("ups-2", FaultSpec(kind=FaultKind.GARBLE))
    coordinator = NutCoordinator(target(nut_server, timeout=1.0), feed)
    try:
        assert not await coordinator.poll()
        assert coordinator.stats.up is False
    finally:
        await coordinator.stop()
        nut_server.clear("ups-2")
    raised = [o for o in feed.occurrences if o.kind == TARGET_DOWN]
    assert [o.state for o in raised] == [OccurrenceState.RAISE, OccurrenceState.RAISE]
