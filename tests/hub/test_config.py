"""Site-file validation: every problem reported with its key path and line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devices.registry import known_types
from hub.config import load_site
from hub.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

BAD = """\
hub:
  api:
    port: eighty
  colour: blue
users:
  - name: alice
    role: dispatcher
    token: ${CCHUB_TEST_UNSET_TOKEN}
  - name: bob
    role: king
    token: short
trunks:
  - id: pstn-1
    type: pstn-gateway
    host: 127.0.0.1
    max_calls: 0
rules:
  - id: r1
    metric: ups.charge
"""


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    return caught.value.problems


def test_every_problem_has_path_and_line(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, BAD)
    assert problems == [
        "users[0].token: environment variable CCHUB_TEST_UNSET_TOKEN is not set, line 8",
        "hub.api.port: expected integer, line 3",
        "hub.colour: unknown key (allowed: name, data_dir, log_level, shutdown_timeout, "
        "subscriber_queue, api, store), line 4",
        "users[1].role: expected one of 'dispatcher', 'engineer', 'ops', 'platform' or "
        "'admin', line 10",
        "users[1].token: must be at least 16 characters, line 11",
        "trunks[0].max_calls: must be >= 1, line 16",
        "rules[0]: a rule needs 'above' or 'below', line 18",
    ]


def test_device_errors_name_the_index_and_legal_types(tmp_path: Path) -> None:
    text = "devices:\n" + "".join(
        f"  - id: d{i}\n    type: extron-sis\n    transport: {{kind: tcp, host: 10.0.0.{i}, "
        f"port: {23 if i != 3 else 'twenty'}}}\n"
        for i in range(4)
    )
    text += "  - id: d4\n    type: no-such-box\n    transport: {kind: tcp, host: h, port: 1}\n"
    problems = problems_of(tmp_path, text)
    assert problems[0] == "devices[3].transport.port: expected integer, line 13"
    assert problems[1].startswith(
        "devices[4].type: unknown device type 'no-such-box' (legal types:"
    )
    assert f"(legal types: {', '.join(known_types())})" in problems[1]
    assert problems[1].endswith(", line 15")


def test_duplicate_keys_and_ids(tmp_path: Path) -> None:
    text = (
        "hub:\n  name: a\n  name: b\n"
        "endpoints:\n"
        "  - {id: e1, name: One, routes: ['pstn:+861']}\n"
        "  - {id: e1, name: Two, routes: ['pstn:+862']}\n"
    )
    problems = problems_of(tmp_path, text)
    assert "hub.name: duplicate key, line 3" in problems
    assert any("duplicate 'e1'" in p for p in problems)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "hub:\n  api: {port: 1\nusers: []\n")
    assert len(problems) == 1
    assert problems[0].startswith("YAML syntax:")
    assert "line 3" in problems[0]


def test_secrets_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCHUB_TEST_TOKEN", "from-the-environment-1234")
    path = tmp_path / "site.yaml"
    path.write_text(
        "users:\n  - name: alice\n    role: admin\n    token: ${CCHUB_TEST_TOKEN}\n"
        "sip:\n  domain: cost-$$-centre\n"
    )
    site = load_site(path)
    assert site.users[0].token.get_secret_value() == "from-the-environment-1234"
    assert "from-the-environment" not in repr(site)
    assert site.sip.domain == "cost-$-centre"


def test_example_site_file_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DISPATCHER", "ENGINEER", "OPS", "PLATFORM", "ADMIN"):
        monkeypatch.setenv(f"CCHUB_TOKEN_{name}", f"example-{name.lower()}-token-123")
    monkeypatch.setenv("CCHUB_TIANTONG_PASSWORD", "sat-secret")
    site = load_site(ROOT / "examples" / "site.yaml")
    assert {u.role.value for u in site.users} == {
        "dispatcher",
        "engineer",
        "ops",
        "platform",
        "admin",
    }


def test_check_config_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    good = tmp_path / "good.yaml"
    good.write_text("hub:\n  name: ok\n")
    env = {k: v for k, v in os.environ.items() if k != "CCHUB_TEST_UNSET_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "hub", "check-config", str(good), str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{good}: OK" in result.stdout
    assert f"{bad}: 7 problem(s)" in result.stdout
    assert "  hub.api.port: expected integer, line 3" in result.stdout


SIP_BAD = """\
sip:
  transports: [udp, tls]
trunks:
  - id: sat
    type: satellite-gateway
    host: 10.0.0.9
    registration: {expiry: 600}
  - id: pdt
    type: pdt-gateway
    host: 10.0.0.8
    dialplan:
      - scheme: pdt
        headers: {X-Call: "{type}"}
endpoints:
  - id: e1
    name: One
    routes: ["pstn:+86 138", "pdt:grp/1", "fax:1"]
"""


def test_sip_trunk_and_route_problems_have_paths(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, SIP_BAD)
    assert problems == [
        "sip: transport 'tls' needs a 'tls' section with cert and key, line 1",
        "trunks[0]: registration needs a username (registration.username or username), line 4",
        "trunks[1].dialplan[0].headers: bad value of header 'X-Call' '{type}': unknown "
        "placeholder {type} (legal: {kind}, {number}, {scheme}), line 13",
        "endpoints[0].routes[1]: bad PDT address 'pdt:grp/1': 'grp' is not 'group' or 'unit', "
        "line 17",
        "endpoints[0].routes[2]: unknown address scheme 'fax:' (expected one of pstn:, sat:, "
        "pdt:, lte:, roip:, sip:, sips:, tel:, user:), line 17",
    ]


def test_example_trunks_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    from sip.dialplan import Dialplan

    for name in ("DISPATCHER", "ENGINEER", "OPS", "PLATFORM", "ADMIN"):
        monkeypatch.setenv(f"CCHUB_TOKEN_{name}", f"example-{name.lower()}-token-123")
    monkeypatch.setenv("CCHUB_TIANTONG_PASSWORD", "sat-secret")
    site = load_site(ROOT / "examples" / "site.yaml")
    assert site.sip.limits.rate_per_source == 200 and site.sip.timers.t2 == 4.0
    assert site.sip.tls_port is None
    sat = next(t for t in site.trunks if t.id == "tiantong")
    assert sat.register_username == "centre" and sat.registration is not None
    assert sat.registration.expiry == 600
    plan = Dialplan(
        site.trunks,
        domain=site.sip.domain,
        endpoints={e.id: e.routes for e in site.endpoints},
    )
    assert [(c.trunk, str(c.request_uri)) for c in plan.resolve_endpoint("duty-officer")] == [
        ("pstn-1", "sip:013800138000@127.0.0.1:5070;user=phone"),
        ("pdt-1", "sip:2001@127.0.0.1:5090;call-type=unit"),
        ("tiantong", "sip:17400000001@127.0.0.1:5080;user=phone"),
    ]


def test_sip_tls_listener(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "sip:\n  port: 5060\n  transports: [udp, tcp, tls]\n"
        "  tls: {cert: /etc/cchub/sip.crt, key: /etc/cchub/sip.key}\n"
    )
    site = load_site(path)
    assert site.sip.tls_port == 5061
    assert site.sip.tls is not None and site.sip.tls.cert == Path("/etc/cchub/sip.crt")
    path.write_text("sip:\n  timers: {t1: 2.0, t2: 1.0}\n")
    assert problems_of(tmp_path, path.read_text()) == [
        "sip.timers: t2 (1.0) must not be below t1 (2.0), line 2"
    ]


def test_a_room_pin_cannot_hold_the_key_that_ends_it(tmp_path: Path) -> None:
    text = (
        "conferences:\n  rooms:\n"
        "    - {id: ops, name: Ops, number: '8000', pin: '12#4', moderator_pin: '99x'}\n"
    )
    problems = problems_of(tmp_path, text)
    assert problems == [
        "conferences.rooms[0].pin: a PIN cannot contain '#': callers key '#' to end the PIN, "
        "line 3",
        "conferences.rooms[0].moderator_pin: a PIN is keyed on a phone: digits 0-9 and '*' only, "
        "line 3",
    ]
