"""The conference layer's plan step kinds in a running hub without SIP: conferences are
created and announced into; bad arguments, unknown conferences and roles, files outside the
data directory and an unreachable roster each fail their step with a precise reason, and
the independent steps still run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.config import SiteConfig
from hub.runtime import Hub
from tests.hub.sitefile import site_dict

PLANS: list[dict[str, Any]] = [
    {"id": "bridge-and-tone", "steps": [
        {"id": "bridge", "action": "create_conference", "name": "Incident 7", "pin": "2468"},
        {"id": "tone", "action": "announce", "conference": "bridge",
         "tone": {"frequency": 800, "seconds": 0.2}, "depends_on": ["bridge"]},
    ]},
    {"id": "mistakes", "steps": [
        {"id": "no-name", "action": "create_conference"},
        {"id": "bad-pin", "action": "create_conference", "name": "x", "pin": "12ab"},
        {"id": "bad-profile", "action": "create_conference", "name": "x", "profile": "huge"},
        {"id": "nowhere", "action": "dial", "conference": "conf-none", "targets": ["duty-1"]},
        {"id": "no-role", "action": "dial", "conference": "bridge", "role": "ghost"},
        {"id": "bridge", "action": "create_conference", "name": "Mistakes"},
        {"id": "no-sip", "action": "dial", "conference": "bridge", "role": "duty",
         "depends_on": ["bridge"]},
        {"id": "ghost", "action": "dial", "conference": "bridge", "role": "ghost",
         "depends_on": ["bridge"]},
        {"id": "outside", "action": "announce", "conference": "bridge", "file": "../x.wav",
         "depends_on": ["bridge"]},
        {"id": "both", "action": "announce", "conference": "bridge", "file": "a.wav",
         "tone": {"frequency": 800, "seconds": 1}, "depends_on": ["bridge"]},
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
        assert failed["no-name"] == (
            "invalid-arguments",
            "create_conference: name: required key is missing",
        )
        assert failed["bad-pin"][0] == "invalid-arguments"
        assert failed["bad-pin"][1] == (
            "create_conference: pin: a PIN is keyed on a phone: digits 0-9 and '*' only"
        )
        assert failed["bad-profile"][1].startswith("unknown profile 'huge'")
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
        assert failed["both"] == (
            "invalid-arguments",
            "announce: arguments: give either 'tone' or 'file'",
        )
