"""The NUT simulator (real upsd + dummy-ups behind the fault proxy), read with NUT's own upsc."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import yaml

from hub.errors import ConfigError
from hub.yamlsource import load_yaml
from lab.bench import Bench
from lab.benchfile import validate_bench
from lab.faults import FaultKind, FaultSpec
from lab.registry import simulator_types
from lab.sims.nut import NutUnavailable, nut_programs
from protocols import nut

UPS = "ups-main"
SHARED_LOOP = pytest.mark.asyncio(loop_scope="module")  # the module's bench lives in it


def bench_document(**device: object) -> dict[str, object]:
    entry = {
        "resource": {"kind": "tcp"},
        "driver": {
            "type": "nut",
            "name": "Equipment room UPS",
            "options": {"ups": UPS, "username": "monitor", "password": "s3cret-pass"},
        },
        **device,
    }
    return {"bench": "nut-lab", "devices": {"nut-1": entry}, "strategy": {"on_crash": "report"}}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lab() -> AsyncIterator[Bench]:
    try:
        nut_programs()
    except NutUnavailable as err:
        pytest.fail(str(err))
    spec = validate_bench(load_yaml(yaml.safe_dump(bench_document(state={"load": 41}))))
    async with Bench(spec, control=False) as bench:
        yield bench


@pytest_asyncio.fixture(loop_scope="module")
async def bench(lab: Bench) -> AsyncIterator[Bench]:
    yield lab
    await lab.reset()


async def upsc(bench: Bench, *args: str) -> str:
    """nut-client's upsc against the simulator; stdout only (it chats about SSL on stderr)."""
    program = shutil.which("upsc")
    assert program is not None, "upsc is missing: install Debian's nut-client (`make deps`)"
    port = bench.site_transport("nut-1")["port"]
    proc = await asyncio.create_subprocess_exec(
        program, f"{UPS}@127.0.0.1:{port}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    lines = out.decode().splitlines()
    return "\n".join(line for line in lines if not line.startswith("Init SSL"))


async def client(bench: Bench, limit: float = 3.0) -> nut.NutClient:
    return await nut.NutClient.connect(
        "127.0.0.1", bench.site_transport("nut-1")["port"], limit=limit
    )


@SHARED_LOOP
async def test_upsd_serves_the_state_and_follows_changes(bench: Bench) -> None:
    dump = dict(line.split(": ", 1) for line in (await upsc(bench)).splitlines())
    assert dump["ups.status"] == "OL CHRG"
    assert dump["ups.load"] == "41"  # the bench file's initial state
    assert dump["battery.charge"] == "100" and dump["input.voltage"] == "230"
    assert dump["driver.name"] == "dummy-ups" and dump["ups.model"] == "Smart-UPS 3000 RM"
    async with await client(bench) as nut_client:
        assert await nut_client.list_ups() == {UPS: "Equipment room UPS"}
    await bench.set_state(
        "nut-1", {"status": "OB DISCHRG", "alarm": "On battery", "extra": {"ups.temperature": "31"}}
    )
    assert await upsc(bench, "ups.status") == "OB DISCHRG ALARM"
    assert await upsc(bench, "ups.alarm") == "On battery"
    assert await upsc(bench, "ups.temperature") == "31"
    # removed, not left behind ('' removes an extra variable: mappings merge in set_state)
    await bench.set_state("nut-1", {"alarm": "", "extra": {"ups.temperature": ""}})
    assert await upsc(bench, "ups.alarm") == "Error: Variable not supported by UPS"
    assert await upsc(bench, "ups.temperature") == "Error: Variable not supported by UPS"


@SHARED_LOOP
async def test_users_from_the_driver_options_may_log_in(bench: Bench) -> None:
    async with await client(bench) as good:
        await good.authenticate("monitor", "s3cret-pass")
        await good.login(UPS)
    async with await client(bench) as wrong:
        await wrong.authenticate("monitor", "guess")
        with pytest.raises(nut.NutError) as err:
            await wrong.login(UPS)
        assert err.value.code == "ACCESS-DENIED"


@SHARED_LOOP
async def test_driver_and_upsd_processes_follow_the_state(bench: Bench) -> None:
    await bench.set_state("nut-1", {"driver": "stopped"})
    assert await upsc(bench, "ups.status") == "Error: Driver not connected"
    await bench.set_state("nut-1", {"driver": "frozen"})  # restarted, then stopped: stale
    assert await upsc(bench, "ups.status") == "Error: Data stale"
    await bench.set_state("nut-1", {"driver": "running"})
    assert await upsc(bench, "ups.status") == "OL CHRG"
    await bench.set_state("nut-1", {"upsd": "stopped"})
    assert "Connection failure" in await upsc(bench, "ups.status")
    await bench.set_state("nut-1", {"upsd": "running"})
    assert await upsc(bench, "ups.status") == "OL CHRG"
    assert len(bench.pids()) == 2


@SHARED_LOOP
async def test_error_delay_and_garble_faults_on_the_proxy(bench: Bench) -> None:
    bench.inject("nut-1", FaultSpec(kind=FaultKind.ERROR))
    assert await upsc(bench, "ups.status") == "Error: Data stale"
    bench.inject("nut-1", FaultSpec(kind=FaultKind.ERROR, code="ACCESS-DENIED"))
    assert await upsc(bench, "ups.status") == "Error: Access denied"
    bench.clear("nut-1", FaultKind.ERROR)

    bench.inject("nut-1", FaultSpec(kind=FaultKind.DELAY, seconds=1.0))
    async with await client(bench, limit=0.3) as late:
        with pytest.raises(TimeoutError):
            await late.get_var(UPS, "ups.status")
    bench.clear("nut-1", FaultKind.DELAY)

    bench.inject("nut-1", FaultSpec(kind=FaultKind.GARBLE, rate=1.0))
    async with await client(bench, limit=0.5) as garbled:
        with pytest.raises((TimeoutError, nut.NutProtocolError)):
            await garbled.get_var(UPS, "ups.status")
    bench.clear("nut-1")
    assert await upsc(bench, "ups.status") == "OL CHRG"


@SHARED_LOOP
async def test_refuse_and_disconnect(bench: Bench) -> None:
    live = await client(bench)
    assert await live.get_var(UPS, "ups.status") == "OL CHRG"
    bench.inject("nut-1", FaultSpec(kind=FaultKind.DISCONNECT))
    with pytest.raises(ConnectionError):
        await live.get_var(UPS, "ups.status")
    bench.clear("nut-1")
    bench.inject("nut-1", FaultSpec(kind=FaultKind.REFUSE))
    for _ in range(100):  # the fault clock closes the port within a tick
        try:
            probe = await client(bench)
        except OSError:
            break
        await probe.close()
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the port stayed open under 'refuse'")
    bench.clear("nut-1")
    for _ in range(100):
        try:
            async with await client(bench) as back:
                assert await back.get_var(UPS, "ups.status") == "OL CHRG"
            break
        except OSError:
            await asyncio.sleep(0.05)
    else:
        pytest.fail("the port did not reopen")


def test_the_bench_file_checks_nut_devices() -> None:
    assert "nut" in simulator_types()
    document = bench_document(state={"status": "OB SPARKLES"})
    with pytest.raises(ConfigError) as err:
        validate_bench(load_yaml(yaml.safe_dump(document)))
    assert "devices.nut-1.state.status: status 'OB SPARKLES': flags must be among OL, OB" in str(
        err.value.problems
    )
    document = bench_document(resource={"kind": "snmp"})
    with pytest.raises(ConfigError) as err:
        validate_bench(load_yaml(yaml.safe_dump(document)))
    assert "simulator 'nut' runs on tcp, not 'snmp'" in str(err.value.problems)


@SHARED_LOOP
async def test_a_crash_is_reported_and_the_processes_stop(lab: Bench) -> None:
    # the module's last use of the shared bench: it stays crashed
    pids = lab.pids()
    assert len(pids) == 2
    lab.inject("nut-1", FaultSpec(kind=FaultKind.CRASH))
    async with await client(lab) as doomed:
        with pytest.raises((ConnectionError, TimeoutError)):
            await doomed.get_var(UPS, "ups.status")
    for _ in range(100):
        if lab.crashes and lab.pids() == []:
            break
        await asyncio.sleep(0.05)
    assert lab.crashes[0]["reason"] == "SimulatorCrashed: crash fault injected"
    assert lab.pids() == []
    gone = await asyncio.to_thread(lambda: [os.path.exists(f"/proc/{p}") for p in pids])
    assert gone == [False, False]
