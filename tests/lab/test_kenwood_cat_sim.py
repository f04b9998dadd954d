"""The Kenwood CAT simulator over its pty, byte for byte, with injected faults."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from lab.harness import BenchThread
from tests.lab.wire import SerialPeer, device, simulator


@pytest.fixture
def radio(bench: BenchThread) -> Iterator[SerialPeer]:
    peer = SerialPeer(bench.site_transport(device(bench, "kenwood-cat")))
    yield peer
    peer.close()


def test_reads_sets_and_reads_back_frequency_and_mode(radio: SerialPeer) -> None:
    assert radio.ask(b"ID;").startswith(b"ID0")
    radio.send(b"FA00014250000;MD2;")
    assert radio.ask(b"FA;") == b"FA00014250000;"
    assert radio.ask(b"MD;") == b"MD2;"
    info = radio.ask(b"IF;")
    assert len(info) == 38 and info.startswith(b"IF00014250000") and info[29:30] == b"2"


def test_transmit_and_receive_show_in_if(radio: SerialPeer, bench: BenchThread) -> None:
    simulator(bench, "kenwood-cat")  # never key a real transmitter from a test
    radio.send(b"TX;")
    assert radio.ask(b"IF;")[28:29] == b"1"
    radio.send(b"RX;")
    assert radio.ask(b"IF;")[28:29] == b"0"


def test_bad_commands_get_the_radios_error_answers(radio: SerialPeer) -> None:
    assert radio.ask(b"ZZ;") == b"?;"  # unknown command
    assert radio.ask(b"FA123;") == b"?;"  # wrong parameter length
    assert radio.ask(b"FA99999999999;") == b"?;"  # out of the tuning range
    assert radio.ask(b"F\xffA;") == b"E;"  # a corrupted byte on the line
    assert radio.ask(b"A" * 80 + b";") == b"O;"  # receive buffer overflow
    assert radio.ask(b"FA;").startswith(b"FA")  # and the radio still works


def test_front_panel_change_is_reported_with_auto_info(
    radio: SerialPeer, bench: BenchThread
) -> None:
    name = simulator(bench, "kenwood-cat")
    radio.send(b"AI2;")
    assert radio.ask(b"AI;") == b"AI2;"
    bench.set_state(name, vfo_a=3_650_000, mode="CW")
    assert radio.read_for(0.3) == b"FA00003650000;MD3;"
    assert bench.state(name)["vfo_a"] == 3_650_000


def test_disconnect_silences_the_line_until_cleared(radio: SerialPeer, bench: BenchThread) -> None:
    name = simulator(bench, "kenwood-cat")
    bench.inject(name, "disconnect")
    radio.send(b"FA;")
    assert radio.read_for(0.4) == b""
    bench.clear(name)
    assert radio.ask(b"FA;") == b"FA00007050000;"


def test_refuse_puts_the_radio_in_standby(radio: SerialPeer, bench: BenchThread) -> None:
    name = simulator(bench, "kenwood-cat")
    bench.inject(name, "refuse")
    radio.send(b"FA;")
    assert radio.read_for(0.3) == b""
    assert radio.ask(b"PS;") == b"PS0;"
    bench.clear(name, "refuse")
    time.sleep(0.1)
    assert radio.ask(b"PS;") == b"PS1;"


def test_delay_holds_every_reply(radio: SerialPeer, bench: BenchThread) -> None:
    name = simulator(bench, "kenwood-cat")
    bench.inject(name, "delay", seconds=0.4)
    start = time.monotonic()
    assert radio.ask(b"MD;", timeout=2) == b"MD1;"
    assert time.monotonic() - start >= 0.35


def test_error_fault_answers_with_the_chosen_code(radio: SerialPeer, bench: BenchThread) -> None:
    name = simulator(bench, "kenwood-cat")
    bench.inject(name, "error", code="E")
    assert radio.ask(b"FA;") == b"E;"
    bench.inject(name, "error")
    assert radio.ask(b"FA;") == b"?;"


def test_drop_and_garble_corrupt_replies(radio: SerialPeer, bench: BenchThread) -> None:
    name = simulator(bench, "kenwood-cat")
    bench.inject(name, "drop", rate=1.0)
    radio.send(b"FA;")
    assert radio.read_for(0.3) == b""
    bench.clear(name, "drop")
    bench.inject(name, "garble", rate=0.5)
    radio.send(b"FA;")
    garbled = radio.read_for(0.3)
    assert len(garbled) == len(b"FA00007050000;") and garbled != b"FA00007050000;"


def test_flap_alternates_standby_and_service(radio: SerialPeer, bench: BenchThread) -> None:
    name = simulator(bench, "kenwood-cat")
    bench.inject(name, "flap", down=0.5, up=0.5)
    assert radio.ask(b"PS;") == b"PS0;"  # down phase first
    time.sleep(0.6)
    assert radio.ask(b"PS;") == b"PS1;"


def test_fault_with_duration_clears_itself(radio: SerialPeer, bench: BenchThread) -> None:
    name = simulator(bench, "kenwood-cat")
    bench.inject(name, "error", code="O", duration=0.3)
    assert radio.ask(b"FA;") == b"O;"
    time.sleep(0.4)
    assert radio.ask(b"FA;") == b"FA00007050000;"
    assert bench.describe(name)["faults"] == []
