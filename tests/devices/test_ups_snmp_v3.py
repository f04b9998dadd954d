"""ups-mib over SNMPv3 (USM authPriv) against snmpsim, the alarm table, and wrong credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
import yaml
from pydantic import ValidationError

from devices.base import Device
from devices.capabilities import Ups
from devices.config import DeviceConfig, SnmpTransport
from devices.registry import driver_for
from hub.yamlsource import load_yaml
from lab.bench import Bench
from lab.benchfile import validate_bench
from lab.faults import FaultKind, FaultSpec
from tests.devices.peers import device_config, eventually, online

AUTH_KEY = "auth-key-for-ups-1"
PRIV_KEY = "priv-key-for-ups-1"
USM = {
    "version": "3",
    "user": "ups-monitor",
    "auth_protocol": "SHA-256",
    "auth_key": AUTH_KEY,
    "priv_protocol": "AES256",
    "priv_key": PRIV_KEY,
}
SHARED_LOOP = pytest.mark.asyncio(loop_scope="module")  # the module's bench lives in it


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bench() -> AsyncIterator[Bench]:
    """snmpsim serving the UPS-MIB recording to an SNMPv3 user (and v1/v2c community public)."""
    document = {
        "bench": "ups-v3",
        "devices": {
            "ups-1": {
                "resource": {"kind": "snmp", **USM},
                "driver": {"type": "ups-mib"},
                "state": {"output_voltage": 229},
            }
        },
        "strategy": {"on_crash": "stop", "start_timeout": 60},
    }
    async with Bench(validate_bench(load_yaml(yaml.safe_dump(document))), control=False) as lab:
        yield lab


@pytest_asyncio.fixture(loop_scope="module")
async def agent(bench: Bench) -> AsyncIterator[Bench]:
    yield bench
    await bench.reset()


def ups(bench: Bench, **transport: Any) -> Device[Any]:
    where = {**bench.site_transport("ups-1"), **transport}
    config = device_config("ups-mib", where, id="ups-1", timeout=1.0, poll_interval=0.3)
    device: Device[Any] = driver_for("ups-mib")(config)
    return device


@SHARED_LOOP
async def test_auth_priv_reads_the_ups_and_its_alarm_table(agent: Bench) -> None:
    transport = agent.site_transport("ups-1")
    assert transport["version"] == "3" and "community" not in transport
    async with ups(agent) as device:
        await online(device, within=10.0)
        state = dict(device.snapshot.state)
        assert Ups.missing_state(state) == []
        assert {k: state[k] for k in Ups.state_keys} == {
            "status": "online",
            "on_battery": False,
            "battery_low": False,
            "charge_percent": 100,
            "minutes_remaining": 52,
            "input_voltage": 230,
            "output_voltage": 229,
            "output_load_percent": 34,
            "alarms": (),
        }
        assert state["battery_status"] == "normal" and state["output_source"] == "normal"
        assert state["alarms_present"] == 0

        await agent.set_state(
            "ups-1",
            {
                "output_source": "battery",
                "battery_status": "low",
                "charge_remaining": 18,
                "alarms": ["on_battery", "low_battery", "input_bad"],
            },
        )
        state = await device.command({"command": "refresh"})
        assert state["status"] == "low_battery" and state["on_battery"] is True
        assert state["battery_low"] is True and state["charge_percent"] == 18
        assert state["alarms_present"] == 3
        assert state["alarms"] == ["upsAlarmOnBattery", "upsAlarmLowBattery", "upsAlarmInputBad"]

        await agent.set_state("ups-1", {"output_source": "normal", "alarms": []})
        state = await device.command({"command": "refresh"})
        assert state["status"] == "low_battery"  # the battery is still low on mains
        assert state["alarms"] == [] and state["on_battery"] is False


@SHARED_LOOP
@pytest.mark.parametrize("version", ["2c", "1"])
async def test_the_alarm_table_over_getbulk_and_getnext(agent: Bench, version: str) -> None:
    alarms = ["on_battery", "output_overload", "fan_failure", "test_in_progress"]
    await agent.set_state("ups-1", {"alarms": alarms})
    plain = {"version": version, "community": "public"}
    none: dict[str, Any] = {k: None for k in USM if k != "version"}
    async with ups(agent, **plain, **none, context="") as device:
        await online(device, within=10.0)
        assert device.snapshot.state["alarms"] == (
            "upsAlarmOnBattery",
            "upsAlarmOutputOverload",
            "upsAlarmFanFailure",
            "upsAlarmTestInProgress",
        )


WRONG = [
    ({"auth_key": "not-the-auth-key"}, "Wrong SNMP PDU digest (check auth_key and auth_protocol)"),
    ({"auth_protocol": "SHA-512"}, "Wrong SNMP PDU digest (check auth_key and auth_protocol)"),
    ({"priv_key": "not-the-priv-key"}, "(check priv_key and priv_protocol)"),
    ({"user": "intruder"}, "Unknown USM user (check user)"),
]


def tried(device: Device[Any]) -> Callable[[], bool]:
    return lambda: device.snapshot.error != "not started"


@SHARED_LOOP
async def test_wrong_credentials_are_an_auth_failure(agent: Bench) -> None:
    devices = [ups(agent, **wrong) for wrong, _ in WRONG]
    for device in devices:
        await device.start()
    try:
        for device, (wrong, reason) in zip(devices, WRONG, strict=True):
            await eventually(tried(device), within=10.0)
            user = wrong.get("user", "ups-monitor")
            assert not device.snapshot.online
            assert device.snapshot.error.startswith(f"auth: SNMPv3 user {user!r} refused: ")
            assert device.snapshot.error.endswith(reason)
            assert AUTH_KEY not in device.snapshot.error and PRIV_KEY not in device.snapshot.error
    finally:
        for device in devices:
            await device.stop()


@SHARED_LOOP
async def test_an_agent_that_stops_answering_goes_offline_and_comes_back(agent: Bench) -> None:
    async with ups(agent) as device:
        await online(device, within=10.0)
        agent.inject("ups-1", FaultSpec(kind=FaultKind.DISCONNECT))  # UDP: nothing comes back
        await eventually(lambda: not device.snapshot.online, within=10.0)
        assert device.snapshot.error == "No SNMP response received before timeout"
        agent.clear("ups-1")
        await online(device, within=10.0)
        assert device.snapshot.error == ""


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCHUB_TEST_UPS_AUTH", AUTH_KEY)
    monkeypatch.setenv("CCHUB_TEST_UPS_PRIV", PRIV_KEY)
    text = """
id: ups-1
type: ups-mib
transport:
  kind: snmp
  host: 10.0.0.7
  version: "3"
  user: ups-monitor
  auth_key: ${CCHUB_TEST_UPS_AUTH}
  priv_key: ${CCHUB_TEST_UPS_PRIV}
"""
    doc = load_yaml(text)
    assert doc.problems == []
    config = DeviceConfig.model_validate(doc.data)
    transport = config.transport
    assert isinstance(transport, SnmpTransport) and transport.level == "authPriv"
    assert transport.auth_key is not None and transport.auth_key.get_secret_value() == AUTH_KEY
    assert AUTH_KEY not in repr(config) and PRIV_KEY not in config.model_dump_json()


BAD_TRANSPORTS = [
    ({"version": "3"}, "SNMPv3 needs a user"),
    ({"version": "3", "user": "u", "community": "public"}, "community is for SNMP v1/v2c"),
    ({"user": "u"}, "user: SNMPv3 settings need version '3'"),
    ({"version": "3", "user": "u", "auth_key": "short"}, "auth_key must be at least 8"),
    (
        {"version": "3", "user": "u", "security_level": "authPriv", "auth_key": AUTH_KEY},
        "security level authPriv needs a priv_key",
    ),
    (
        {"version": "3", "user": "u", "security_level": "authNoPriv"},
        "security level authNoPriv needs an auth_key",
    ),
    (
        {"version": "3", "user": "u", "security_level": "noAuthNoPriv", "auth_key": AUTH_KEY},
        "security level noAuthNoPriv takes no auth_key",
    ),
    (
        {"version": "3", "user": "u", "auth_key": AUTH_KEY, "priv_protocol": "AES128"},
        "priv_protocol is unused at security level authNoPriv",
    ),
    ({"version": "3", "user": "u", "auth_protocol": "SHA-1"}, "Input should be 'MD5', 'SHA'"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_TRANSPORTS)
def test_snmpv3_settings_are_validated(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        SnmpTransport.model_validate({"kind": "snmp", "host": "10.0.0.7", **fields})
