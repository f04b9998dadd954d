"""The hub's own SNMP agent, read with net-snmp's real CLI (snmpwalk, snmpbulkwalk, snmpget,
snmpset) over v2c and v3 authPriv, and its notifications received by Debian's snmptrapd."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub import __version__
from hub.config import ConfigError, SiteConfig, load_site
from hub.events import AlarmActionDone
from hub.runtime import Hub
from hub.snmp.mib import (
    ALARM_TABLE,
    CONFERENCES,
    DEVICE_TABLE,
    SCALARS,
    Absent,
    HubState,
    Syntax,
    SystemInfo,
    build_view,
    date_and_time,
    display,
)
from hub.snmp.rows import AlarmRow, ConferenceRow, LegRow, RadioNetRow, Table
from lab.bench import Bench
from lab.demo import _parser as demo_parser
from lab.demo import demo_site
from lab.faults import FaultKind, FaultSpec
from tests.devices.peers import eventually
from tests.devices.scene_bench import device_entry, matrices
from tests.hub.sitefile import site_dict
from tests.hub.snmptools import (
    ARC,
    numeric,
    run,
    snmptrapd_conf,
    trap_oid,
    trap_receiver,
    v2c,
    v3,
    with_mib,
)

USER, AUTH, PRIV = "noc", "auth-secret-1", "priv-secret-1"
RULES = [
    {"id": "hot", "metric": "room.temperature", "above": 35, "clear": 30, "level": "orange"},
    {"id": "smoke", "metric": "room.smoke", "above": 1, "level": "red",
     "actions": [{"do": "trap", "target": "nms-v3"}]},
]  # fmt: skip
DEVICES = ARC + ".1.2.2.1"
ALARMS = ARC + ".1.3.2.1"


def snmp_section(**traps: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": 0,
        "community": "public",
        "users": [{"name": USER, "auth_key": AUTH, "priv_key": PRIV}],
        "location": "duty hall, 3rd floor",
        **({"traps": traps} if traps else {}),
    }


@pytest.fixture
async def sims() -> AsyncIterator[Bench]:
    async with matrices("wall-matrix", "desk-matrix") as running:
        yield running


def site(tmp_path: Path, sims: Bench, **traps: Any) -> SiteConfig:
    data = site_dict(tmp_path)
    data["devices"] = [device_entry(sims, name) for name in sims.sims]
    data["rules"] = RULES if traps else RULES[:1]
    data["snmp"] = snmp_section(**traps)
    return SiteConfig.model_validate(data)


async def online(hub: Hub) -> None:
    await eventually(lambda: all(s.online for s in hub.equipment.snapshots().values()), 10)


@pytest.fixture
async def hub(tmp_path: Path, sims: Bench) -> AsyncIterator[Hub]:
    async with Hub(site(tmp_path, sims)) as running:
        await online(running)
        yield running


def agent(hub: Hub) -> str:
    assert hub.snmp is not None
    host, port = hub.snmp.address
    return f"{host}:{port}"


def feed(hub: Hub, metric: str, source: str, value: float) -> None:
    assert hub.alarms.core.submit(metric, source, value, time.time(), "")


async def walk(hub: Hub, *options: str, oid: str = ARC, tool: str = "snmpwalk") -> dict[str, str]:
    result = await run(tool, "-On", "-t", "5", *options, agent(hub), oid)
    assert result.code == 0, result.err
    return numeric(result.lines)


# -- v2c --------------------------------------------------------------------------------


async def test_snmpwalk_v2c_shows_devices_and_an_active_alarm(hub: Hub, sims: Bench) -> None:
    feed(hub, "room.temperature", "room-1", 41)  # through the warning core
    rows = await walk(hub, *v2c())
    assert rows[f"{DEVICES}.2.1"] == 'STRING: "wall-matrix"'
    assert rows[f"{DEVICES}.2.2"] == 'STRING: "desk-matrix"'
    assert rows[f"{DEVICES}.3.1"] == 'STRING: "extron-sis"'
    assert rows[f"{DEVICES}.4.1"] == rows[f"{DEVICES}.4.2"] == "INTEGER: 1"  # online: true
    assert rows[f"{ARC}.1.2.1.0"] == "Gauge32: 2"
    assert rows[f"{ALARMS}.2.1"] == 'STRING: "hot@room-1"'
    assert rows[f"{ALARMS}.3.1"] == 'STRING: "room-1"'
    assert rows[f"{ALARMS}.5.1"] == "INTEGER: 3"  # orange
    assert rows[f"{ALARMS}.6.1"] == "INTEGER: 2"  # activeUnack
    assert rows[f"{ALARMS}.7.1"] == 'STRING: "room.temperature on room-1 = 41 (above 35)"'
    assert rows[f"{ARC}.1.3.1.0"] == "Gauge32: 1"
    # conferences and radio nets: defined, no rows until their layers provide them
    assert rows[f"{ARC}.1.4.1.0"] == rows[f"{ARC}.1.5.1.0"] == "Gauge32: 0"
    assert not [oid for oid in rows if oid.startswith(f"{ARC}.1.4.2.")]

    # values are read on each request: an ack, a device going down, the alarm clearing
    await hub.alarms.ack("hot@room-1", "dispatcher-user", "seen")
    sims.inject("desk-matrix", FaultSpec(kind=FaultKind.REFUSE))
    sims.inject("desk-matrix", FaultSpec(kind=FaultKind.DISCONNECT))
    await eventually(lambda: not hub.equipment.snapshots()["desk-matrix"].online, 10)
    rows = await walk(hub, *v2c())
    assert rows[f"{ALARMS}.6.1"] == "INTEGER: 3"  # activeAck
    assert rows[f"{DEVICES}.4.2"] == "INTEGER: 2"  # offline: false
    assert rows[f"{DEVICES}.6.2"] != 'STRING: ""'  # why it is offline
    feed(hub, "room.temperature", "room-1", 20)
    rows = await walk(hub, *v2c())
    assert rows[f"{ARC}.1.3.1.0"] == "Gauge32: 0"
    assert not [oid for oid in rows if oid.startswith(f"{ALARMS}.")]


async def test_walk_with_the_mib_loaded_names_every_object(hub: Hub) -> None:
    """net-snmp parses mibs/CCHUB-MIB.txt and decodes the agent's answers with it."""
    feed(hub, "room.temperature", "room-1", 40)
    result = await run(
        "snmpwalk", "-t", "5", *with_mib(), *v2c(), agent(hub), "CCHUB-MIB::cchubMIB"
    )
    assert result.code == 0, result.err
    text = result.out  # DisplayStrings are printed without quotes when the MIB is loaded
    assert "CCHUB-MIB::cchubSiteName.0 = STRING: test-centre\n" in text
    assert "CCHUB-MIB::cchubHealth.0 = INTEGER: up(1)" in text
    assert re.search(r"CCHUB-MIB::cchubSubsystemName\.\d+ = STRING: snmp\n", text)
    assert "CCHUB-MIB::cchubDeviceName.1 = STRING: wall-matrix\n" in text
    assert "CCHUB-MIB::cchubDeviceOnline.1 = INTEGER: true(1)" in text
    assert "CCHUB-MIB::cchubAlarmName.1 = STRING: hot@room-1\n" in text
    assert "CCHUB-MIB::cchubAlarmLevel.1 = INTEGER: orange(3)" in text
    assert "CCHUB-MIB::cchubAlarmState.1 = INTEGER: activeUnack(2)" in text
    assert re.search(r"CCHUB-MIB::cchubAlarmRaisedTime\.1 = STRING: \d{4}-\d+-\d+,.*,\+0:0", text)
    assert "Wrong Type" not in text  # every value has the syntax the MIB declares


async def test_snmpget_scalars_and_exceptions(hub: Hub) -> None:
    got = await run(
        "snmpget", "-On", *v2c(), agent(hub),
        f"{ARC}.1.1.1.0", f"{ARC}.1.1.2.0", f"{ARC}.1.1.4.0",
        "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.6.0", "1.3.6.1.2.1.1.2.0",
    )  # fmt: skip
    assert got.code == 0, got.err
    values = numeric(got.lines)
    assert values[f"{ARC}.1.1.1.0"] == f'STRING: "{__version__}"'
    assert values[f"{ARC}.1.1.2.0"] == 'STRING: "test-centre"'
    assert values[f"{ARC}.1.1.4.0"] == "INTEGER: 1"  # up
    assert values["1.3.6.1.2.1.1.5.0"] == 'STRING: "test-centre"'  # sysName
    assert values["1.3.6.1.2.1.1.6.0"] == 'STRING: "duty hall, 3rd floor"'
    assert values["1.3.6.1.2.1.1.2.0"] == f"OID: .{ARC}"  # sysObjectID
    first = numeric((await run("snmpget", "-On", *v2c(), agent(hub), f"{ARC}.1.1.3.0")).lines)
    await asyncio.sleep(0.05)
    later = numeric((await run("snmpget", "-On", *v2c(), agent(hub), f"{ARC}.1.1.3.0")).lines)
    ticks = [int(v[f"{ARC}.1.1.3.0"].split("(")[1].split(")")[0]) for v in (first, later)]
    assert ticks[1] > ticks[0]  # uptime is read live

    missing = await run(
        "snmpget", "-On", *v2c(), agent(hub), f"{ARC}.1.1.1.1", f"{ARC}.1.9.0", f"{DEVICES}.2.99"
    )
    values = numeric(missing.lines)
    assert values[f"{ARC}.1.1.1.1"].startswith("No Such Instance")
    assert values[f"{ARC}.1.9.0"].startswith("No Such Object")
    assert values[f"{DEVICES}.2.99"].startswith("No Such Instance")

    refused = await run("snmpset", *v2c(), agent(hub), f"{ARC}.1.1.2.0", "s", "other")
    assert refused.code != 0
    assert "notWritable" in refused.err


async def test_bulkwalk_matches_walk_in_lexicographic_order(hub: Hub) -> None:
    feed(hub, "room.temperature", "room-1", 40)
    feed(hub, "room.temperature", "room-2", 38)
    walked = await walk(hub, *v2c())
    bulked = await walk(hub, *v2c(), "-Cr7", tool="snmpbulkwalk")
    assert list(walked) == list(bulked)
    keys = [tuple(int(p) for p in oid.split(".")) for oid in walked]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert walked[f"{ALARMS}.2.2"] == 'STRING: "hot@room-2"'


async def test_v3_authpriv_walk_works_and_wrong_credentials_fail(hub: Hub) -> None:
    feed(hub, "room.temperature", "room-1", 40)
    rows = await walk(hub, *v3(USER, AUTH, PRIV))
    assert rows[f"{ALARMS}.2.1"] == 'STRING: "hot@room-1"'
    assert rows[f"{DEVICES}.2.1"] == 'STRING: "wall-matrix"'

    wrong_auth = await run("snmpwalk", "-t", "1", "-r", "0", *v3(USER, "wrong-auth-key", PRIV),
                           agent(hub), ARC)  # fmt: skip
    assert wrong_auth.code != 0
    assert "Authentication failure" in wrong_auth.err
    wrong_priv = await run("snmpget", "-t", "1", "-r", "0", *v3(USER, AUTH, "wrong-priv-key"),
                           agent(hub), f"{ARC}.1.1.2.0")  # fmt: skip
    assert wrong_priv.code != 0
    assert "STRING" not in wrong_priv.out
    unknown = await run("snmpget", "-t", "1", "-r", "0", *v3("intruder", AUTH, PRIV),
                        agent(hub), f"{ARC}.1.1.2.0")  # fmt: skip
    assert unknown.code != 0
    assert "Unknown user name" in unknown.err
    no_priv = await run("snmpget", "-t", "1", "-r", "0", "-v3", "-l", "authNoPriv", "-u", USER,
                        "-a", "SHA", "-A", AUTH, agent(hub), f"{ARC}.1.1.2.0")  # fmt: skip
    assert "STRING" not in no_priv.out  # authPriv only: the value is never sent in clear
    wrong_community = await run("snmpget", "-t", "1", "-r", "0", *v2c("private"), agent(hub),
                                f"{ARC}.1.1.2.0")  # fmt: skip
    assert wrong_community.code != 0
    assert "Timeout" in wrong_community.err


async def test_garbage_datagrams_do_not_stop_the_agent(hub: Hub) -> None:
    host, port = agent(hub).split(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for junk in (b"", b"\x30\x03\x02\x01", b"\xff" * 600, b"\x30\x82\xff\xff" + b"\x00" * 40):
            sock.sendto(junk, (host, int(port)))
    got = await run("snmpget", "-On", *v2c(), agent(hub), f"{ARC}.1.1.2.0")
    assert got.code == 0
    assert numeric(got.lines)[f"{ARC}.1.1.2.0"] == 'STRING: "test-centre"'


async def test_conference_layer_rows_through_the_provider_registry(hub: Hub) -> None:
    conferences = [ConferenceRow(3, "flood response", "active", 2, 1_800_000_000.0)]
    legs = [
        LegRow(3, 7, "+8613800138000", "pstn", "connected", False, True),
        LegRow(3, 8, "hf-net-1", "hf-radio", "connected", True, False),
    ]
    hub.snmp_tables.provide(Table.CONFERENCES, lambda: conferences)
    hub.snmp_tables.provide(Table.LEGS, lambda: legs)
    rows = await walk(hub, *v2c(), oid=f"{ARC}.1.4")
    assert rows[f"{ARC}.1.4.1.0"] == "Gauge32: 1"
    assert rows[f"{ARC}.1.4.2.1.2.3"] == 'STRING: "flood response"'
    assert rows[f"{ARC}.1.4.2.1.4.3"] == "Gauge32: 2"
    assert rows[f"{ARC}.1.4.3.1.2.3.7"] == 'STRING: "+8613800138000"'
    assert rows[f"{ARC}.1.4.3.1.5.3.8"] == "INTEGER: 1"  # muted
    legs.append(LegRow(3, 9, "sat-1", "satellite", "ringing", False, False))
    rows = await walk(hub, *v2c(), oid=f"{ARC}.1.4.3")
    assert rows[f"{ARC}.1.4.3.1.3.3.9"] == 'STRING: "satellite"'  # no stale copy

    def broken() -> list[RadioNetRow]:
        raise RuntimeError("radio layer lost its state")

    hub.snmp_tables.provide(Table.RADIO_NETS, broken)
    failed = await run("snmpget", *v2c(), agent(hub), f"{ARC}.1.5.1.0")  # cchubRadioNetCount
    assert failed.code != 0
    assert "genErr" in failed.err
    assert hub.snmp is not None and hub.snmp.request_failures == 1
    # what does not touch the radio nets still answers
    assert (await run("snmpget", *v2c(), agent(hub), f"{ARC}.1.1.2.0")).code == 0
    hub.snmp_tables.withdraw(Table.RADIO_NETS)
    assert (await run("snmpget", *v2c(), agent(hub), f"{ARC}.1.5.1.0")).code == 0
    with pytest.raises(ValueError, match="already has a provider"):
        hub.snmp_tables.provide(Table.CONFERENCES, lambda: [])


async def test_the_demo_agent_answers_public_read_only(tmp_path: Path, sims: Bench) -> None:
    """``cchub demo`` writes an snmp section: v2c community public on 127.0.0.1:1161."""
    args = demo_parser().parse_args(["--dir", str(tmp_path)])
    assert (args.host, args.snmp_port) == ("127.0.0.1", 1161)
    args.api_port = args.sip_port = args.snmp_port = 0  # free ports in the test
    document = demo_site(sims, args)
    assert document["snmp"] == {"host": "127.0.0.1", "port": 0, "community": "public"}
    async with Hub(SiteConfig.model_validate(document)) as hub:
        rows = await walk(hub, *v2c("public"))
        names = {v for k, v in rows.items() if k.startswith(f"{DEVICES}.2.")}
        assert names == {'STRING: "wall-matrix"', 'STRING: "desk-matrix"'}
        refused = await run("snmpset", *v2c("public"), agent(hub), f"{ARC}.1.1.2.0", "s", "x")
        assert "notWritable" in refused.err


# -- notifications ----------------------------------------------------------------------


async def test_new_alarm_traps_reach_snmptrapd_v2c_and_v3(tmp_path: Path, sims: Bench) -> None:
    engine_id = bytes.fromhex("80007ed9047472617073")
    conf = snmptrapd_conf(community="traps", engine_id=engine_id, user=USER, auth=AUTH, priv=PRIV)
    async with trap_receiver(tmp_path, conf) as receiver:
        config = site(
            tmp_path,
            sims,
            targets=[
                {"id": "nms-v2c", "host": "127.0.0.1", "port": receiver.port,
                 "community": "traps"},
                {"id": "nms-v3", "host": "127.0.0.1", "port": receiver.port, "version": "3",
                 "user": USER},
            ],
            on_new_alarm=True,
            on_clear=True,
        )  # fmt: skip
        assert config.snmp is not None
        config = config.model_copy(
            update={"snmp": config.snmp.model_copy(update={"engine_id": engine_id.hex()})}
        )
        async with Hub(config) as hub:
            feed(hub, "room.temperature", "room-1", 42)
            traps = await receiver.wait_for(2)
            assert sorted(t.security.split(",")[1].strip() for t in traps) == [
                "SNMP v2c",
                "SNMP v3",
            ]
            for trap in traps:
                assert trap_oid(trap) == f"{ARC}.0.1"  # cchubAlarmRaised
                assert trap.varbinds[f"{ALARMS}.2.1"] == 'STRING: "hot@room-1"'
                assert trap.varbinds[f"{ALARMS}.5.1"] == "INTEGER: 3"
                assert trap.varbinds[f"{ALARMS}.6.1"] == "INTEGER: 2"
                assert trap.varbinds[f"{ALARMS}.8.1"].startswith("Hex-STRING: ")
            assert "user noc" in next(t.security for t in traps if "v3" in t.security)
            # the table names the same row as the notification
            rows = await walk(hub, *v2c())
            assert rows[f"{ALARMS}.2.1"] == 'STRING: "hot@room-1"'

            feed(hub, "room.temperature", "room-1", 25)  # back under `clear`
            traps = await receiver.wait_for(4)
            cleared = [t for t in traps if trap_oid(t) == f"{ARC}.0.2"]
            assert len(cleared) == 2
            assert cleared[0].varbinds[f"{ALARMS}.6.1"] == "INTEGER: 4"  # rtnUnack

            # a rule's trap step: cchubAlarmForwarded to its one target, reported as done
            done = hub.bus.subscribe("t", accept=lambda e: isinstance(e, AlarmActionDone))
            feed(hub, "room.smoke", "room-1", 1)
            traps = await receiver.wait_for(7)  # raised x2, forwarded x1 (v3 only)
            forwarded = [t for t in traps if trap_oid(t) == f"{ARC}.0.3"]
            assert len(forwarded) == 1 and "SNMP v3" in forwarded[0].security
            assert forwarded[0].varbinds[f"{ALARMS}.2.2"] == 'STRING: "smoke@room-1"'
            assert forwarded[0].varbinds[f"{ALARMS}.5.2"] == "INTEGER: 4"  # red

            async def action() -> AlarmActionDone:
                event = await done.get()
                assert isinstance(event, AlarmActionDone)
                return event

            result = await asyncio.wait_for(action(), 10)
            assert (result.action, result.ok) == ("trap", True)
            assert result.detail == "cchubAlarmForwarded sent to nms-v3"


async def test_trap_step_without_a_reachable_target_fails_precisely(
    tmp_path: Path, sims: Bench
) -> None:
    config = site(tmp_path, sims, targets=[
        {"id": "nms-v2c", "host": "127.0.0.1", "port": 9, "community": "traps"},
        {"id": "nms-v3", "host": "127.0.0.1", "port": 9, "version": "3", "user": USER},
    ])  # fmt: skip
    async with Hub(config) as hub:
        assert hub.snmp is not None
        await hub.snmp.stop()  # the agent went away: the step says so, the core goes on
        done = hub.bus.subscribe("t", accept=lambda e: isinstance(e, AlarmActionDone))
        feed(hub, "room.smoke", "room-1", 1)
        event = await asyncio.wait_for(done.get(), 10)
        assert isinstance(event, AlarmActionDone)
        assert (event.ok, event.detail) == (False, "the SNMP agent is not running")


# -- the site file ----------------------------------------------------------------------


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_site(path)
    return err.value.problems


def test_snmp_section_errors_name_key_path_and_line(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """\
snmp:
  port: 1161
  users:
    - {name: noc, auth_key: short, priv_key: long-enough-1}
  traps:
    targets:
      - {id: nms, host: 127.0.0.1, version: "3", user: nobody}
      - {id: nms2, host: 127.0.0.1}
rules:
  - {id: hot, metric: t, above: 1, actions: [{do: trap, target: nms9}]}
""",
    ) == [
        "snmp.users[0].auth_key: must be at least 8 characters, line 4",
        "snmp.traps.targets[1]: an SNMPv2c target needs 'community', line 8",
    ]
    assert problems(
        tmp_path,
        """\
snmp:
  community: public
  traps:
    targets:
      - {id: nms, host: 127.0.0.1, version: "3", user: nobody}
rules:
  - {id: hot, metric: t, above: 1, actions: [{do: trap, target: nms9}]}
""",
    ) == [
        "snmp.traps.targets[0].user: no user 'nobody' (snmp.users: none), line 5",
        "rules[0].actions[0].target: no trap target 'nms9' (nms), line 7",
    ]
    assert problems(tmp_path, "snmp: {port: 1161}\n") == [
        "snmp: the agent needs a v2c 'community' or SNMPv3 'users' (or both), line 1"
    ]
    assert problems(
        tmp_path, "rules:\n  - {id: hot, metric: t, above: 1, actions: [{do: trap}]}\n"
    ) == ["rules[0].actions[0].do: a trap step needs snmp.traps.targets, line 2"]


# -- the view, sans-IO -------------------------------------------------------------------


def state(**rows: Any) -> HubState:
    readers = {name: (lambda rows=rows_: rows) for name, rows_ in rows.items()}
    return HubState(SystemInfo("cchub"), "1.0", "site", 12.5, 3.0, **readers)


def alarm(index: int, name: str) -> AlarmRow:
    return AlarmRow(index, name, "ups-1", "r", "red", "active-unack", "text", 1.0, 1)


def test_view_get_and_next_follow_oid_order() -> None:
    view = build_view(state(alarms=[alarm(10, "b"), alarm(2, "a")], devices=[]))
    walked = view.items()
    oids = [oid for oid, _ in walked]
    assert oids == sorted(oids) and len(set(oids)) == len(oids)
    name = (*ALARM_TABLE.entry, 2)
    # column-major: every name, then every source...; index 2 before 10 (numeric, not text)
    assert [o for o in oids if o[: len(name)] == name] == [(*name, 2), (*name, 10)]
    assert len(oids) == len(SCALARS) + 2 * len(ALARM_TABLE.columns)
    assert view.get((*name, 2)) == (Syntax.OCTETS, b"a")
    assert view.get((*name, 3)) is Absent.NO_SUCH_INSTANCE
    assert view.get(name) is Absent.NO_SUCH_INSTANCE
    assert view.get((*DEVICE_TABLE.entry, 2, 1)) is Absent.NO_SUCH_INSTANCE
    assert view.get((1, 3, 6, 1, 4, 1, 32473, 7)) is Absent.NO_SUCH_OBJECT
    assert view.get((1, 3, 6, 1, 4, 1, 32473, 1, 1, 2, 0)) == (Syntax.OCTETS, b"site")
    assert view.get((1, 3, 6, 1, 4, 1, 32473, 1, 1, 2, 1)) is Absent.NO_SUCH_INSTANCE
    assert view.next_after((*name, 2)) == ((*name, 10), (Syntax.OCTETS, b"b"))
    assert view.next_after(name) == ((*name, 2), (Syntax.OCTETS, b"a"))
    assert view.next_after((*name, 2, 5)) == ((*name, 10), (Syntax.OCTETS, b"b"))
    last = (*ALARM_TABLE.entry, ALARM_TABLE.columns[-1].sub, 10)
    after_table = view.next_after(last)  # past the table: the next scalar
    assert after_table == walked[oids.index(last) + 1]
    assert after_table == ((*CONFERENCES, 1, 0), (Syntax.GAUGE, 0))
    assert view.next_after((1, 3, 6, 1, 4, 1, 32473, 9)) is None
    assert view.next_after(oids[-1]) is None


def test_view_reads_only_the_tables_a_request_touches() -> None:
    read: list[str] = []

    def reader(name: str, rows: list[Any]) -> Any:
        def read_rows() -> list[Any]:
            read.append(name)
            return rows

        return read_rows

    view = build_view(
        HubState(
            SystemInfo("cchub"), "1.0", "site", 1.0, 1.0,
            devices=reader("devices", []),
            alarms=reader("alarms", [alarm(1, "a"), alarm(1, "b")]),
        )
    )  # fmt: skip
    view.get((*DEVICE_TABLE.entry, 2, 1))
    assert read == ["devices"]
    with pytest.raises(ValueError, match="two rows of cchubAlarmTable share an index"):
        view.next_after((*ALARM_TABLE.entry, 2))
    assert read == ["devices", "alarms"]  # each table is read once per request


def test_value_encodings() -> None:
    # DateAndTime (RFC 2579): 2027-01-15 06:30:05.7 UTC
    assert date_and_time(1_799_994_605.7) == bytes([7, 235, 1, 15, 6, 30, 5, 7]) + b"+\x00\x00"
    assert date_and_time(0) == bytes(8)
    assert display("温度过高", 7) == "温度".encode()  # never half a character
    assert display("x" * 300) == b"x" * 255
