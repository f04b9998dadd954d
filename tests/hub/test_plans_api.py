"""The plans API over real HTTP: list, describe, start by role, follow a run, 409 while it
runs, the audit log and the event log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.config import SiteConfig
from hub.runtime import Hub
from tests.hub.sitefile import auth, site_dict

PLANS = [
    {
        "id": "evacuate",
        "name": "Evacuate the duty hall",
        "description": "tell everyone, then call the roster",
        "steps": [
            {"id": "tell", "action": "notify", "text": "evacuate", "level": "red"},
            {"id": "hold", "action": "wait", "seconds": 0.3},
            {"id": "call", "action": "key_radio", "net": "hf-1", "depends_on": ["tell"]},
            {"id": "after", "action": "notify", "depends_on": ["call"]},
        ],
    },
    {"id": "drill", "steps": [{"action": "notify", "text": "drill"}]},
]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    site = SiteConfig.model_validate({**site_dict(tmp_path), "plans": PLANS})
    async with Hub(site) as running:
        yield running


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.api_url, timeout=20) as http:
        yield http


async def run_done(client: httpx.AsyncClient, run: str) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            body: dict[str, Any] = (
                await client.get(f"/api/v1/plans/runs/{run}", headers=auth("ops"))
            ).json()
            if body["state"] != "running":
                return body
            await asyncio.sleep(0.02)


async def test_list_and_describe_plans(client: httpx.AsyncClient) -> None:
    listed = await client.get("/api/v1/plans", headers=auth("ops"))
    assert listed.status_code == 200
    assert [(p["id"], p["name"], p["running"]) for p in listed.json()] == [
        ("evacuate", "Evacuate the duty hall", None),
        ("drill", "drill", None),
    ]
    one = (await client.get("/api/v1/plans/evacuate", headers=auth("dispatcher"))).json()
    assert one["description"] == "tell everyone, then call the roster"
    assert one["steps"][0] == {
        "id": "tell",
        "action": "notify",
        "depends_on": [],
        "timeout": None,
        "arguments": {"text": "evacuate", "level": "red"},
        "available": True,
    }
    assert one["steps"][2]["arguments"] == {"net": "hf-1"}
    assert one["steps"][2]["available"] is False  # no radio layer in this hub
    missing = await client.get("/api/v1/plans/flood", headers=auth("ops"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "no plan 'flood' (plans: evacuate, drill)"
    assert (await client.get("/api/v1/plans")).status_code == 401


async def test_start_follow_and_audit_a_run(hub: Hub, client: httpx.AsyncClient) -> None:
    denied = await client.post("/api/v1/plans/evacuate/start", headers=auth("ops"))
    assert denied.status_code == 403
    assert hub.plans.runs() == []  # nothing started

    started = await client.post(
        "/api/v1/plans/evacuate/start",
        json={"reason": "smoke in the duty hall"},
        headers=auth("dispatcher"),
    )
    assert started.status_code == 202, started.text
    run = started.json()
    assert (run["state"], run["requested_by"], run["reason"]) == (
        "running",
        "dispatcher-user",
        "smoke in the duty hall",
    )
    busy = await client.post("/api/v1/plans/evacuate/start", headers=auth("engineer"))
    assert busy.status_code == 409
    assert busy.json()["detail"] == f"plan 'evacuate' is running already (run {run['run']})"
    described = (await client.get("/api/v1/plans/evacuate", headers=auth("ops"))).json()
    assert described["running"] == run["run"]

    done = await run_done(client, run["run"])
    assert done["state"] == "failed"
    states = {s["id"]: (s["state"], s["code"], s["detail"]) for s in done["steps"]}
    assert states == {
        "tell": ("ok", "", states["tell"][2]),
        "hold": ("ok", "", "waited 0.3 s"),
        "call": (
            "failed",
            "unavailable",
            "no handler for step kind 'key_radio' (radio nets are not available in this hub)",
        ),
        "after": ("skipped", "dependency", "depends on step 'call' failed"),
    }
    assert states["tell"][2].startswith("consoles notified (event ")
    assert done["finished"] >= done["started"]

    for role in ("engineer", "platform", "admin"):
        other = await client.post("/api/v1/plans/drill/start", headers=auth(role))
        assert other.status_code == 202, (role, other.text)
        assert (await run_done(client, other.json()["run"]))["state"] == "succeeded"
    runs = (await client.get("/api/v1/plans/runs", headers=auth("ops"))).json()
    assert [r["plan"] for r in runs] == ["drill", "drill", "drill", "evacuate"]
    drills = await client.get("/api/v1/plans/runs", params={"plan": "drill", "limit": 2},
                              headers=auth("ops"))  # fmt: skip
    assert [r["requested_by"] for r in drills.json()] == ["admin-user", "platform-user"]
    gone = await client.get("/api/v1/plans/runs/0123456789ab", headers=auth("ops"))
    assert gone.status_code == 404 and "event log" in gone.json()["detail"]
    unknown = await client.post("/api/v1/plans/flood/start", headers=auth("dispatcher"))
    assert unknown.status_code == 404

    audit = (await client.get("/api/v1/audit", headers=auth("ops"))).json()
    rows = [(e["actor"], e["target"], e["result"], e["detail"]) for e in audit]
    assert ("dispatcher-user", "plan:evacuate", "202", f"run {run['run']}") in rows
    assert ("engineer-user", "plan:evacuate", "409", "") in rows
    assert ("ops-user", "/api/v1/plans/evacuate/start", "403", "") in rows

    logged = await client.get("/api/v1/events", params={"kinds": "plan."}, headers=auth("ops"))
    events = [e for e in logged.json()["events"] if e["data"].get("run") == run["run"]]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "plan.started" and kinds[-1] == "plan.finished"
    assert events[-1]["data"]["failed"] == ["call"]
    assert events[-1]["data"]["skipped"] == ["after"]
    notify = next(e for e in events if e["kind"] == "plan.notify")
    assert (notify["data"]["text"], notify["data"]["level"]) == ("evacuate", "red")


async def test_openapi_describes_the_plan_routes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {"/api/v1/plans", "/api/v1/plans/{plan_id}", "/api/v1/plans/{plan_id}/start",
            "/api/v1/plans/runs", "/api/v1/plans/runs/{run_id}"} <= set(spec["paths"])  # fmt: skip
    start = spec["paths"]["/api/v1/plans/{plan_id}/start"]["post"]
    assert {"202", "404", "409"} <= set(start["responses"])
