"""The trap receiver against net-snmp's snmptrap/snmpinform (v1, v2c, v3 authPriv): each
notification becomes an occurrence for the warning core; a storm of 1,000 identical traps
makes one alarm with count 1000; malformed datagrams and wrong credentials are counted."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from monitoring.ingest import Intake
from monitoring.targets import TrapListener
from monitoring.traps import TrapReceiver
from tests.monitoring.harness import Rig
from tests.monitoring.producers import Recorder, eventually, run, wired

pytestmark = pytest.mark.slow

ENGINE_ID = "0x8000000001020304"
USM = ["-u", "trapper", "-l", "authPriv", "-a", "SHA-256", "-A", "auth-pass-123"]
USM += ["-x", "AES", "-X", "priv-pass-456"]
ENV = {**os.environ, "MIBS": "", "MIBDIRS": "/nonexistent"}
ON_BATTERY = ".1.3.6.1.2.1.33.2.1"
LINK_DOWN, LINK_UP = ".1.3.6.1.6.3.1.1.5.3", ".1.3.6.1.6.3.1.1.5.4"
IF_INDEX_4 = ".1.3.6.1.2.1.2.2.1.1.4"
RULES = [
    {"id": "ups-trap", "event": "trap.upsTrapOnBattery", "level": "orange"},
    {"id": "link", "event": "trap.linkDown", "level": "yellow"},
    {"id": "vendor", "event": "trap.tankOverpressure", "level": "red"},
]


def listener() -> TrapListener:
    return TrapListener.model_validate(
        {
            "port": 0,
            "communities": ["public"],
            "users": [
                {
                    "user": "trapper",
                    "auth_protocol": "SHA-256",
                    "auth_key": "auth-pass-123",
                    "priv_protocol": "AES",
                    "priv_key": "priv-pass-456",
                    "engine_id": ENGINE_ID,
                }
            ],
            "sources": {"127.0.0.9": "ups-b"},
            "names": {"1.3.6.1.4.1.99999.0.7": "tankOverpressure"},
        }
    )


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[tuple[Rig, Intake, TrapReceiver]]:
    core, intake = wired(RULES)
    receiver = TrapReceiver(
        listener(), intake.channel("trap"), host_sources={"127.0.0.1": "ups-a"}, clock=core.clock
    )
    async with receiver:
        yield core, intake, receiver


async def test_v1_v2c_v3_traps_and_informs_become_alarms(
    rig: tuple[Rig, Intake, TrapReceiver],
) -> None:
    core, intake, receiver = rig
    port = receiver.port
    # SNMPv1: enterprise upsTraps, specific 1, agent-addr 127.0.0.9 (mapped to ups-b)
    await run(
        "snmptrap", "-v1", "-c", "public", f"127.0.0.1:{port}", ".1.3.6.1.2.1.33.2",
        "127.0.0.9", "6", "1", "", ".1.3.6.1.2.1.33.1.2.3.0", "i", "7", env=ENV,
    )  # fmt: skip
    # SNMPv2c from 127.0.0.1: the sender's address maps to the polled target ups-a
    await run("snmptrap", "-v2c", "-c", "public", f"127.0.0.1:{port}", "", ON_BATTERY, env=ENV)
    # SNMPv3 authPriv trap (the sender's engine ID) and inform (ours)
    await run(
        "snmptrap", "-v3", "-e", ENGINE_ID, *USM, f"127.0.0.1:{port}", "",
        ".1.3.6.1.4.1.99999.0.7", ".1.3.6.1.4.1.99999.1.1.0", "i", "427", env=ENV,
    )  # fmt: skip
    await run(
        "snmpinform", "-v3", *USM, f"127.0.0.1:{port}", "", LINK_DOWN, IF_INDEX_4, "i", "4", env=ENV
    )
    await eventually(lambda: sum(receiver.received.values()) == 4)
    assert receiver.received == {"1": 1, "2c": 1, "3": 2}
    alarms = {a.id: a for a in core.core.alarms()}
    assert alarms["ups-trap@ups-b,trap_oid=1.3.6.1.2.1.33.2.0.1"].state.value == "active-unack"
    assert alarms["ups-trap@ups-a,trap_oid=1.3.6.1.2.1.33.2.1"].count == 1
    vendor = alarms["vendor@ups-a,trap_oid=1.3.6.1.4.1.99999.0.7"]
    assert vendor.level.value == "red" and "1.3.6.1.4.1.99999.1.1.0=427" in vendor.message
    link = "link@ups-a,ifIndex=4,trap_oid=1.3.6.1.6.3.1.1.5.3"
    assert alarms[link].state.value == "active-unack"
    # linkUp on the same interface clears linkDown's alarm (it is a lasting condition)
    await run("snmpinform", "-v2c", "-c", "public", f"127.0.0.1:{port}", "", LINK_UP,
              IF_INDEX_4, "i", "4", env=ENV)  # fmt: skip
    await eventually(lambda: core.core.get(link).state.value == "rtn-unack")
    assert intake.occurrences["trap"] == 5


async def test_a_storm_of_identical_traps_makes_one_alarm(
    rig: tuple[Rig, Intake, TrapReceiver],
) -> None:
    """net-snmp's snmptrap datagram, captured once and replayed 1,000 times: one alarm,
    count 1000, nothing lost (the sender is paced by what the receiver has taken)."""
    core, _, receiver = rig
    capture = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    capture.bind(("127.0.0.1", 0))
    capture.setblocking(False)
    try:
        await run(
            "snmptrap", "-v2c", "-c", "public", f"127.0.0.1:{capture.getsockname()[1]}", "",
            ON_BATTERY, env=ENV,
        )  # fmt: skip
        datagram = await asyncio.get_running_loop().sock_recv(capture, 65535)
    finally:
        capture.close()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for burst in range(10):
            for _ in range(100):
                sender.sendto(datagram, ("127.0.0.1", receiver.port))
            await eventually(lambda b=burst: receiver.received["2c"] == (b + 1) * 100)
    finally:
        sender.close()
    alarms = core.core.alarms()
    assert len(alarms) == 1
    assert (alarms[0].rule, alarms[0].count) == ("ups-trap", 1000)
    assert alarms[0].state.value == "active-unack"
    # a quiet spell lets the one-shot condition lapse (dedupe window)
    core.tick(core.core.policy.dedupe_window + 1)
    assert core.core.get(alarms[0].id).state.value == "rtn-unack"


async def test_malformed_datagrams_and_bad_credentials_are_counted(
    rig: tuple[Rig, Intake, TrapReceiver],
) -> None:
    core, _, receiver = rig
    port = receiver.port
    junk = [
        b"garbage\x00\x01",  # not BER at all
        b"\x30\x03\x02\x01\x05",  # SNMP version 6: unknown
        b"\x30\x10\x02\x01\x01\x04\x06public\xa7\x03\x02\x01",  # truncated PDU
        b"\x30\x82\xff\xff" + b"\x00" * 10,  # length beyond the datagram
    ]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for data in junk:
            sock.sendto(data, ("127.0.0.1", port))
    finally:
        sock.close()
    await run(
        "snmptrap", "-v2c", "-c", "wrong-community", f"127.0.0.1:{port}", "", ON_BATTERY, env=ENV
    )
    wrong_key = [*USM[:7], "wrong-auth-key", *USM[8:]]
    await run(
        "snmptrap", "-v3", "-e", ENGINE_ID, *wrong_key, f"127.0.0.1:{port}", "", ON_BATTERY, env=ENV
    )
    await run("snmptrap", "-v2c", "-c", "public", f"127.0.0.1:{port}", "", ON_BATTERY, env=ENV)

    def counted() -> bool:
        refused = receiver.refused()
        broken = refused["broken"] + refused["undecodable"] + refused["bad_version"]
        return broken == 4 and refused["bad_community"] == 1 and refused["wrong_digest"] == 1

    await eventually(counted)
    # the good trap after all that still arrives: one alarm, from the good trap only
    await eventually(lambda: receiver.received["2c"] == 1)
    assert [a.count for a in core.core.alarms()] == [1]


async def test_port_in_use_is_a_clear_error() -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    try:
        config = listener().model_copy(update={"port": busy.getsockname()[1]})
        receiver = TrapReceiver(config, Recorder())
        with pytest.raises(OSError, match=r"cannot receive traps on udp 127\.0\.0\.1"):
            await receiver.start()
    finally:
        busy.close()
