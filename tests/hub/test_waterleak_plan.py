"""Issue 7's proof: an MQTT water-leak sensor triggers a plan (预案) that creates a conference
and dials the duty roster.

A real broker (Debian's mosquitto) carries the sensor's JSON; the hub's MQTT feed turns it
into a ``water.leak`` sample, the ``water-leak`` rule raises a red alarm whose ``plan`` step
starts ``flood-response``: ``create_conference``, then ``dial`` of every site endpoint with
role ``duty`` through the lab PSTN gateway simulator (real SIP and RTP on 127.0.0.1; one
duty officer answers, the other's line is busy), then a tone ``announce``ment. The test
reads everything back through the hub's REST API.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.config import SiteConfig
from hub.runtime import Hub
from lab.mosquitto import Mosquitto
from tests.hub.confkit import api_client, eventually, gateway_bench, gateway_trunk, sip_site_dict

pytestmark = pytest.mark.slow

ENDPOINTS = [
    {"id": "duty-1", "name": "Duty officer", "routes": ["pstn:+8613800000001"],
     "roles": ["duty"]},
    {"id": "duty-2", "name": "Deputy duty officer", "routes": ["pstn:+8613900000000"],
     "roles": ["duty", "leader"]},
    {"id": "chief", "name": "County chief", "routes": ["pstn:+8613700000000"],
     "roles": ["leader"]},
]  # fmt: skip
PLAN = {
    "id": "flood-response",
    "name": "Flood response (防汛)",
    "steps": [
        {"id": "bridge", "action": "create_conference", "name": "Flood response"},
        {"id": "call-duty", "action": "dial", "conference": "bridge", "role": "duty",
         "ring_timeout": 10, "depends_on": ["bridge"]},
        {"id": "alert-tone", "action": "announce", "conference": "bridge",
         "tone": {"frequency": 1000, "seconds": 0.5}, "depends_on": ["call-duty"]},
    ],
}  # fmt: skip


@pytest.fixture
async def gateway() -> AsyncIterator[Any]:
    async with gateway_bench(
        "waterleak", {"numbers": {"+8613900000000": {"action": "busy"}}}
    ) as bench:
        yield bench.sims["pstn-gw"]


def site(tmp_path: Path, broker: Mosquitto, gateway: Any) -> SiteConfig:
    data = sip_site_dict(tmp_path, domain=None)
    data["trunks"] = [gateway_trunk(gateway)]
    data["endpoints"] = ENDPOINTS
    data["conferences"] = {"rtp_host": "127.0.0.1"}
    data["monitoring"] = {
        "mqtt": [
            {
                "host": broker.host,
                "port": broker.port,
                "client_id": "cchub-waterleak-test",
                "subscriptions": [
                    # {"leak": true, "battery": 87} from site/<site>/<room>/leak
                    {"topic": "site/+/+/leak", "metric": "water.leak", "source": "leak-{1}-{2}",
                     "field": "leak", "labels": {"site": "{1}", "room": "{2}"}},
                ],
            }
        ]
    }  # fmt: skip
    data["rules"] = [
        {"id": "water-leak", "metric": "water.leak", "above": 1, "level": "red",
         "plan": "flood-response"},
    ]  # fmt: skip
    data["plans"] = [PLAN]
    return SiteConfig.model_validate(data)


async def test_water_leak_starts_the_plan_that_dials_the_duty_roster(
    tmp_path: Path, gateway: Any
) -> None:
    async with (
        Mosquitto() as broker,
        Hub(site(tmp_path, broker, gateway)) as hub,
        api_client(hub) as api,
    ):

        async def subscribed() -> bool:
            return all(feed.stats.connected for feed in hub.monitoring.mqtt)

        await eventually(subscribed, within=20.0)
        dry = json.dumps({"leak": False, "battery": 87})
        await broker.publish("site/hq/b2-pump-room/leak", dry, qos=1)

        async def seen_dry() -> bool:
            reply = await api.get("/api/v1/metrics", params={"name": "water.leak"})
            return [m["last_value"] for m in reply.json()] == [0.0]

        await eventually(seen_dry, within=20.0)
        assert (await api.get("/api/v1/alarms")).json() == []
        assert (await api.get("/api/v1/plans/runs")).json() == []

        wet = json.dumps({"leak": True, "battery": 86})
        await broker.publish("site/hq/b2-pump-room/leak", wet, qos=1)

        # the alarm: red, active, from the sensor, with the room's labels
        async def alarm() -> dict[str, Any] | None:
            found = [a for a in (await api.get("/api/v1/alarms")).json()]
            return found[0] if found else None

        raised = await eventually(alarm, within=20.0)
        assert (raised["rule"], raised["source"]) == ("water-leak", "leak-hq-b2-pump-room")
        assert (raised["level"], raised["state"]) == ("red", "active-unack")
        assert raised["labels"] == {"site": "hq", "room": "b2-pump-room"}

        # the plan run the rule started, to its end
        async def finished_run() -> dict[str, Any] | None:
            runs = (await api.get("/api/v1/plans/runs", params={"plan": "flood-response"})).json()
            return runs[0] if runs and runs[0]["state"] != "running" else None

        run = await eventually(finished_run, within=40)
        assert run["requested_by"] == "rule:water-leak"
        assert run["alarm"] == raised["id"]
        steps = {s["id"]: s for s in run["steps"]}
        assert [s["state"] for s in run["steps"]] == ["ok", "ok", "ok"], run["steps"]
        assert run["state"] == "succeeded"

        conf_id = steps["bridge"]["data"]["conference"]
        dialled = steps["call-duty"]["data"]
        assert dialled["conference"] == conf_id
        # the duty roster: both endpoints with role duty (not the chief), in site order
        assert [t["target"] for t in dialled["targets"]] == ["duty-1", "duty-2"]
        assert all(t["via_role"] == "duty" for t in dialled["targets"])
        assert dialled["answered"] == ["duty-1"]
        assert dialled["failed"] == ["duty-2"]
        busy = dialled["targets"][1]
        assert (busy["outcome"], busy["status"]) == ("failed", 486)
        assert dialled["targets"][0]["trunk"] == "gw"
        assert steps["call-duty"]["detail"].startswith("1 of 2 answered (duty-1); failed: duty-2")
        assert steps["alert-tone"]["data"]["conference"] == conf_id

        # the conference the plan made: the duty officer is in it, the deputy is not
        view = (await api.get(f"/api/v1/conferences/{conf_id}")).json()
        assert view["name"] == "Flood response"
        states = {p["target"]: p["state"] for p in view["participants"]}
        assert states == {"duty-1": "joined", "duty-2": "failed"}

        # the alarm's history says the plan was asked for
        history = (await api.get(f"/api/v1/alarms/{raised['id']}/history")).json()
        assert any(h["cause"] == "action:plan" and "flood-response" in h["comment"]
                   for h in history)  # fmt: skip
