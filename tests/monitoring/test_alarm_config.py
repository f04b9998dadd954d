"""The warning sections of the site file: every problem with its key path and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import load_site
from hub.errors import ConfigError


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    return caught.value.problems


def test_rule_and_policy_fields(tmp_path: Path) -> None:
    text = """\
rules:
  - id: r1
    metric: ups.charge
    below: 20
    clear: 10
  - id: r2
    event: trap.*
    actions:
      - {do: pager}
      - {do: plan}
alarm:
  escalations:
    - {id: e1, level: red, count: 2, to: blue}
"""
    assert problems(tmp_path, text) == [
        "rules[0]: 'clear' (10) must be >= 'below' (20), line 2",
        "rules[1].actions[0].do: expected one of 'notify', 'webhook', 'trap', 'plan' or 'sms', "
        "line 9",
        "rules[1].actions[1]: a plan step needs 'plan', line 10",
        "alarm.escalations[0]: 'to' (blue) must be above 'level' (red), line 13",
    ]


def test_references_across_sections(tmp_path: Path) -> None:
    text = """\
rules:
  - id: r1
    metric: ups.charge
    below: 20
    plan: flood
alarm:
  escalations:
    - {id: r1, level: blue, count: 2, to: red}
dependencies:
  - {parent: a, children: [b]}
  - {parent: b, children: [c]}
  - {parent: c, children: [a]}
"""
    assert problems(tmp_path, text) == [
        "rules[0].plan: no plan 'flood' (plans: none), line 5",
        "alarm.escalations[0].id: 'r1' is a rule id, line 8",
        "dependencies: cycle a -> b -> c -> a, line 9",
    ]


def test_a_complete_warning_setup_loads(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("""\
monitoring:
  sources: {ups-main: {site: hq}}
rules:
  - {id: on-battery, metric: ups.on_battery, above: 1, level: orange, impairs: true,
     actions: [{do: notify}, {do: webhook, url: "http://127.0.0.1:9/x", after: 60}]}
  - {id: offline, event: device.offline, unreachable: true, plan: power-loss}
alarm:
  actions: {red: [{do: notify}]}
dependencies:
  - {parent: ups-main, children: [switch-1]}
plans:
  - {id: power-loss, name: Power loss, steps: [{action: notify}]}
""")
    site = load_site(path)
    assert [r.id for r in site.rules] == ["on-battery", "offline"]
    assert [s.do for s in site.rules[1].steps or []] == ["notify", "plan"]
    assert site.monitoring.sources == {"ups-main": {"site": "hq"}}
