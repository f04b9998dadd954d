"""The UPS-MIB agent (snmpsim behind the lab's fault proxy), read with net-snmp's snmpget."""

from __future__ import annotations

import re
import socket
import time

import pytest

from lab.harness import BenchThread
from lab.snmpwire import encode_get, error_status_of, request_id_of
from tests.lab.wire import device, simulator, snmpget

UPS = "1.3.6.1.2.1.33.1"
CHARGE = f"{UPS}.2.4.0"
SOURCE = f"{UPS}.4.1.0"
ALARMS = f"{UPS}.6.1.0"


def _udp_get(transport: dict[str, object], oid: str, wait: float = 1.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((str(transport["host"]), int(str(transport["port"]))))
        sock.settimeout(wait)
        sock.send(encode_get(str(transport["community"]), oid, 4242))
        return sock.recv(4096)


def test_recording_answers_system_ident_battery_input_output(bench: BenchThread) -> None:
    transport = bench.site_transport(device(bench, "ups-mib"))
    out = snmpget(
        transport,
        "1.3.6.1.2.1.1.2.0",
        f"{UPS}.1.2.0",
        f"{UPS}.2.1.0",
        f"{UPS}.3.3.1.3.1",
        SOURCE,
        f"{UPS}.4.4.1.5.1",
        ALARMS,
    )
    assert ".1.3.6.1.2.1.1.2.0 = OID: .1.3.6.1.4.1." in out  # the vendor's sysObjectID
    assert f".{UPS}.1.2.0 = STRING:" in out
    assert re.search(rf"\.{UPS}\.2\.1\.0 = INTEGER: [1-4]$", out, re.M)  # upsBatteryStatus
    assert re.search(rf"\.{SOURCE} = INTEGER: [1-7]$", out, re.M)  # upsOutputSource
    assert f".{ALARMS} = Gauge32: " in out
    if bench.simulated(device(bench, "ups-mib")):
        assert f".{UPS}.2.1.0 = INTEGER: 2" in out and f".{SOURCE} = INTEGER: 3" in out


def test_changed_values_show_on_the_wire(bench: BenchThread) -> None:
    name = simulator(bench, "ups-mib")
    transport = bench.site_transport(name)
    bench.set_state(
        name, output_source="battery", charge_remaining=41, alarms=["on_battery", "input_bad"]
    )
    out = snmpget(transport, CHARGE, SOURCE, ALARMS, f"{UPS}.6.2.1.2.2")
    assert f".{CHARGE} = INTEGER: 41" in out
    assert f".{SOURCE} = INTEGER: 5" in out  # battery
    assert f".{ALARMS} = Gauge32: 2" in out
    assert f".{UPS}.6.2.1.2.2 = OID: .{UPS}.6.3.6" in out  # upsAlarmInputBad
    bench.set_state(name, charge_remaining=40)  # a second change in the same second
    assert "= INTEGER: 40" in snmpget(transport, CHARGE)


def test_device_error_status(bench: BenchThread) -> None:
    name = simulator(bench, "ups-mib")
    transport = bench.site_transport(name)
    bench.inject(name, "error")
    assert "genError" in snmpget(transport, CHARGE)
    bench.inject(name, "error", code="noSuchName")
    assert error_status_of(_udp_get(transport, CHARGE)) == 2
    bench.clear(name)
    assert "INTEGER: 100" in snmpget(transport, CHARGE)


def test_delay_beyond_the_managers_timeout(bench: BenchThread) -> None:
    name = simulator(bench, "ups-mib")
    transport = bench.site_transport(name)
    bench.inject(name, "delay", seconds=1.5)
    assert "Timeout" in snmpget(transport, CHARGE, timeout=0.5)
    start = time.monotonic()
    reply = _udp_get(transport, CHARGE, wait=3)
    assert request_id_of(reply) == 4242 and time.monotonic() - start >= 1.4


def test_refuse_closes_the_port_and_disconnect_goes_silent(bench: BenchThread) -> None:
    name = simulator(bench, "ups-mib")
    transport = bench.site_transport(name)
    bench.inject(name, "refuse")
    with pytest.raises(ConnectionRefusedError):
        _udp_get(transport, CHARGE)
        _udp_get(transport, CHARGE)  # the ICMP error surfaces on the next call at the latest
    bench.clear(name, "refuse")
    bench.inject(name, "disconnect")
    with pytest.raises(TimeoutError):
        _udp_get(transport, CHARGE, wait=0.4)
    bench.clear(name)
    assert "INTEGER: 100" in snmpget(transport, CHARGE)


def test_drop_and_garble(bench: BenchThread) -> None:
    name = simulator(bench, "ups-mib")
    transport = bench.site_transport(name)
    clean = _udp_get(transport, CHARGE)
    bench.inject(name, "drop", rate=1.0)
    assert "Timeout" in snmpget(transport, CHARGE, timeout=0.3)
    bench.clear(name, "drop")
    bench.inject(name, "garble", rate=0.2)
    garbled = _udp_get(transport, CHARGE)
    assert len(garbled) == len(clean) and garbled != clean


def test_flap(bench: BenchThread) -> None:
    name = simulator(bench, "ups-mib")
    transport = bench.site_transport(name)
    bench.inject(name, "flap", down=0.6, up=5)
    assert "INTEGER" not in snmpget(transport, CHARGE, timeout=0.3)
    time.sleep(0.6)
    assert "INTEGER: 100" in snmpget(transport, CHARGE)
