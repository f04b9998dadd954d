"""Bench files: the shipped ones load; bad ones fail with key path, line and legal values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devices.registry import known_types
from hub.yamlsource import load_yaml
from lab.benchfile import BenchFileError, load_bench, validate_bench
from lab.registry import simulator_types

BENCHES = sorted((Path(__file__).resolve().parents[2] / "lab" / "benches").glob("*.yaml"))

GOOD = """\
bench: t
devices:
  radio:
    resource: {kind: pty}
    driver: {type: kenwood-cat}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(BenchFileError) as caught:
        validate_bench(load_yaml(text))
    return caught.value.problems


@pytest.mark.parametrize("path", BENCHES, ids=lambda p: p.name)
def test_shipped_benches_are_valid(path: Path) -> None:
    assert load_bench(path).devices


def test_minimal_bench_gets_defaults() -> None:
    spec = validate_bench(load_yaml(GOOD))
    assert spec.bring_up_order() == ["radio"]
    assert spec.devices["radio"].simulated and spec.strategy.on_crash == "report"


def test_unknown_simulator_type_lists_the_legal_ones() -> None:
    found = problems(GOOD.replace("kenwood-cat", "icom-civ"))
    legal = ", ".join(sorted({*simulator_types(), *known_types()}))
    assert "extron-sis, kenwood-cat" in legal
    assert found == [
        f"devices.radio.driver.type: unknown device type 'icom-civ' (legal types: {legal}), line 5"
    ]


def test_unknown_key_names_path_line_and_allowed_keys() -> None:
    found = problems(GOOD + "    colour: red\n")
    assert found == [
        "devices.radio.colour: unknown key (allowed: resource, driver, simulated, state), line 6"
    ]
    found = problems(GOOD.replace("{kind: pty}", "{kind: pty, speed: 9600}"))
    assert found == ["devices.radio.resource.speed: unknown key (allowed: kind, baudrate), line 4"]


def test_resource_kind_must_fit_the_simulator() -> None:
    found = problems(GOOD.replace("{kind: pty}", "{kind: tcp, port: 0}"))
    assert found == ["devices.radio: simulator 'kenwood-cat' runs on pty, not 'tcp', line 3"]
    found = problems(GOOD.replace("{kind: pty}", "{kind: usb}"))
    assert found[0].startswith("devices.radio.resource: unknown kind 'usb' (legal kinds: pty,")


def test_initial_state_is_checked_against_the_simulator() -> None:
    found = problems(GOOD + "    state:\n      vfo_a: 5\n      colour: red\n")
    assert found[0].startswith("devices.radio.state.vfo_a: Input should be greater than")
    assert found[0].endswith("line 7")
    assert found[1].startswith("devices.radio.state.colour: unknown key (allowed: model, power,")


def test_real_devices_need_real_addresses() -> None:
    text = GOOD.replace("{kind: pty}", "{kind: serial, port: /dev/ttyUSB0}")
    found = problems(text)
    assert found == ["devices.radio: a simulated serial device needs resource kind 'pty', line 3"]
    spec = validate_bench(load_yaml(text + "    simulated: false\n"))
    assert not spec.devices["radio"].simulated


def test_yaml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    assert problems("bench: [\n")[0].startswith("YAML syntax:")
    with pytest.raises(BenchFileError) as caught:
        load_bench(tmp_path / "nope.yaml")
    assert "cannot read bench file" in caught.value.problems[0]


def test_lab_check_command_reports_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("kenwood-cat", "nope") + "strategy: {retries: 3}\n")
    done = subprocess.run(
        [sys.executable, "-m", "lab", "check", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "devices.radio.driver.type: unknown device type 'nope'" in done.stderr
    assert "strategy.retries: unknown key" in done.stderr and "line 6" in done.stderr
