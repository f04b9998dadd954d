"""The conference layer's plan step kinds in a running hub without SIP: conferences are
created and announced into; unknown conferences and roles, files outside the data directory
and an unreachable roster each fail their step with a precise reason, and the independent
steps still run. Bad arguments never get that far: the site file is refused, each mistake at
its key path and line, and ``check-config`` warns of a roster role nobody has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.cli import check_config
from hub.config import SiteConfig, load_site
from hub.errors import ConfigError
from hub.runtime import Hub
from tests.hub.sitefile import site_dict

PLANS: list[dict[str, Any]] = [
    {"id": "bridge-and-tone", "steps": [
        {"id": "bridge", "action": "create_conference", "name": "Incident 7", "pin": "2468"},
        {"id": "tone", "action": "announce", "conference": "bridge",
         "tone": {"frequency": 800, "seconds": 0.2}, "depends_on": ["bridge"]},
    ]},
    {"id": "mistakes", "steps": [
        {"id": "nowhere", "action": "dial", "conference": "conf-none", "targets": ["duty-1"]},
        {"id": "no-role", "action": "dial", "conference": "bridge", "role": "ghost"},
        {"id": "bridge", "action": "create_conference", "name": "Mistakes"},
        {"id": "no-sip", "action": "dial", "conference": "bridge", "role": "duty",
         "depends_on": ["bridge"]},
        {"id": "ghost", "action": "dial", "conference": "bridge", "role": "ghost",
         "depends_on": ["bridge"]},
        {"id": "outside", "action": "announce", "conference": "bridge", "file": "../x.wav",
         "depends_on": ["bridge"]},
    ]},
]  # fmt: skip


def site(tmp_path: Path) -> SiteConfig:
    data = site_dict(tmp_path)
    data["endpoints"] = [
        {"id": "duty-1", "name": "Duty officer", "routes": ["pstn:+8613800000001"],
         "roles": ["duty"]},
    ]  # fmt: skip
    data["plans"] = PLANS
    return SiteConfig.model_validate(data)


async def test_create_and_announce(tmp_path: Path) -> None:
    async with Hub(site(tmp_path)) as hub:
        assert {"create_conference", "dial", "announce"} <= set(hub.plans.kinds.available())
        started = hub.plans.launch("bridge-and-tone", "test")
        report = (await hub.plans.wait(started.run)).as_dict()
        assert report["state"] == "succeeded", report
        bridge, tone = report["steps"]
        conf = hub.conferences.get(bridge["data"]["conference"])
        assert (conf.name, conf.pin) == ("Incident 7", "2468")
        assert tone["data"]["conference"] == conf.id
        assert tone["detail"] == f"tone 800 Hz for 0.2 s played in {conf.id}"


async def test_each_mistake_fails_its_own_step(tmp_path: Path) -> None:
    async with Hub(site(tmp_path)) as hub:
        started = hub.plans.launch("mistakes", "test")
        report = (await hub.plans.wait(started.run)).as_dict()
        steps = {s["id"]: s for s in report["steps"]}
        assert report["state"] == "failed"
        assert steps["bridge"]["state"] == "ok"  # independent of the failures around it
        failed = {k: (s["code"], s["detail"]) for k, s in steps.items() if s["state"] == "failed"}
        assert failed["nowhere"][0] == "not-found"
        assert "neither a create_conference step of plan 'mistakes'" in failed["nowhere"][1]
        # steps start in order: 'bridge' has not run yet, and no-role does not wait for it
        assert failed["no-role"] == (
            "dependency",
            "step 'bridge' has not created a conference (list it in this step's depends_on)",
        )
        assert failed["no-sip"] == (
            "no-answer",
            "nobody answered: duty-1 (SIP is not configured on this hub)",
        )
        roster = steps["no-sip"]["data"]
        assert [(t["target"], t["via_role"], t["outcome"]) for t in roster["targets"]] == [
            ("duty-1", "duty", "failed")
        ]
        assert failed["ghost"] == ("no-targets", "no endpoint has role 'ghost' (roles: duty)")
        assert failed["outside"][0] == "file"
        assert "outside the hub's data directory" in failed["outside"][1]


BAD_STEPS = """\
conferences:
  profiles: {small: {max_participants: 4}}
endpoints:
  - {id: duty-1, name: Duty officer, routes: ['pstn:+8613800000001'], roles: [duty]}
plans:
  - id: mistakes
    steps:
      - {id: no-name, action: create_conference}
      - {id: bad-pin, action: create_conference, name: x, pin: 12ab}
      - {id: bad-profile, action: create_conference, name: x, profile: huge}
      - {id: nobody, action: dial, conference: c}
      - action: announce
        conference: c
        tone: {frequency: 800, seconds: 1, volume: 3}
      - {id: both, action: announce, conference: c, file: a.wav, tone: {frequency: 1, seconds: 1}}
      - {id: typo, action: dial, conference: c, role: duty, ring_timout: 5}
"""


def test_bad_step_arguments_are_refused_with_the_site_file(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(BAD_STEPS)
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    step_keys = "id, depends_on, timeout, action"
    assert caught.value.problems == [
        "plans[0].steps[0].name: required key is missing, line 8",
        "plans[0].steps[1].pin: a PIN is keyed on a phone: digits 0-9 and '*' only, line 9",
        "plans[0].steps[2].profile: unknown profile 'huge' (default, small), line 10",
        "plans[0].steps[3]: give 'targets' or 'role' (or both), line 11",
        "plans[0].steps[4].tone.volume: unknown key (allowed: frequency, seconds, level), line 14",
        "plans[0].steps[5]: give either 'tone' or 'file', line 15",
        f"plans[0].steps[6].ring_timout: unknown key (allowed: {step_keys}, conference, "
        "targets, role, wait, ring_timeout, as_role), line 16",
    ]


def test_check_config_warns_of_a_roster_role_nobody_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(BAD_STEPS.split("plans:")[0] + "plans:\n" + "\n".join([
        "  - id: call-out",
        "    steps:",
        "      - {id: bridge, action: create_conference, name: Flood}",
        "      - {id: rota, action: dial, conference: bridge, role: nights, depends_on: [bridge]}",
        "      - {id: duty, action: dial, conference: bridge, role: duty, depends_on: [bridge]}",
        "",
    ]))  # fmt: skip
    assert check_config([path]) == 0
    out = capsys.readouterr().out
    assert (
        "warning: plan 'call-out' step 'rota' dials role 'nights', which no endpoint has "
        "(roles: duty)"
    ) in out
    assert "step 'duty'" not in out
