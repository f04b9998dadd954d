"""``POST /api/v1/sensing`` on a running hub: records accepted or refused one by one with
reasons, the roles that may push, an alarm from pushed data, and the series it leaves."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from hub.config import SiteConfig
from hub.runtime import Hub
from tests.hub.sitefile import auth, site_dict
from tests.monitoring.producers import eventually


@pytest_asyncio.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    site = {
        **site_dict(tmp_path),
        "rules": [
            {"id": "overpressure", "metric": "tank.pressure", "above": 6, "clear": 5,
             "unit": "bar", "level": "orange"},
        ],
        "monitoring": {"push": {"max_records": 20, "max_age": 3600}},
    }  # fmt: skip
    async with Hub(SiteConfig.model_validate(site)) as running:
        yield running


@pytest_asyncio.fixture
async def http(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.api_url, timeout=10) as client:
        yield client


def record(**fields: Any) -> dict[str, Any]:
    base = {"metric": "tank.pressure", "source": "pump-room-2", "value": 3.2,
            "ts": time.time(), "unit": "bar", "labels": {"tank": "t1"}}  # fmt: skip
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


async def test_each_record_is_accepted_or_refused_with_its_reason(
    http: httpx.AsyncClient,
) -> None:
    now = time.time()
    records = [
        record(ts=now - 10),
        record(ts="2020-01-01T00:00:00+08:00"),  # older than max_age
        record(value="high"),
        record(value=None, ts=now - 9),  # polled, but no value: accepted, not a point
        record(unit="psi", ts=now - 8),  # the rule expects bar
        record(ts=now + 3600),
        record(ts="last tuesday"),
        record(source=...),
        record(extra=1),
        record(labels={"tank": 1}),
        record(metric="", ts=now - 7),
        record(value=7.5, ts=now - 5),
    ]
    response = await http.post(
        "/api/v1/sensing", json={"records": records}, headers=auth("platform")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    verdicts = [(r["accepted"], r.get("reason")) for r in body["results"]]
    assert verdicts == [
        (True, None),
        (False, "too_old"),
        (False, "bad_type"),
        (True, None),
        (False, "wrong_unit"),
        (False, "future"),
        (False, "bad_timestamp"),
        (False, "missing_field"),
        (False, "bad_field"),
        (False, "bad_field"),
        (False, "bad_field"),
        (True, None),
    ]
    assert (body["accepted"], body["rejected"]) == (3, 9)
    assert body["results"][4]["detail"] == (
        "tank.pressure: unit 'psi' differs from the series' unit 'bar'"
    )
    assert "source" in body["results"][7]["detail"]
    # 7.5 bar > 6: the alarm is up
    alarm = (await http.get("/api/v1/alarms", headers=auth("ops"))).json()
    assert [(a["rule"], a["source"], a["value"]) for a in alarm] == [
        ("overpressure", "pump-room-2", 7.5)
    ]
    # the accepted points are in the series, with their unit
    series = (await http.get("/api/v1/metrics/tank.pressure", headers=auth("ops"))).json()
    [only] = series["series"]
    assert only["unit"] == "bar" and [p[1] for p in only["points"]] == [3.2, 7.5]
    metrics = (await http.get("/metrics")).text
    assert 'cchub_ingest_rejected_total{channel="push",reason="too_old"} 1.0' in metrics
    assert 'cchub_ingest_accepted_total{channel="push"} 3.0' in metrics


async def test_who_may_push(http: httpx.AsyncClient) -> None:
    body = {"records": [record()]}
    for role, status in (("dispatcher", 403), ("ops", 403), ("engineer", 200), ("admin", 200)):
        response = await http.post("/api/v1/sensing", json=body, headers=auth(role))
        assert response.status_code == status, role
    assert (await http.post("/api/v1/sensing", json=body)).status_code == 401
    audit = (await http.get("/api/v1/audit", headers=auth("ops"))).json()
    pushes = [a for a in audit if a["action"] == "POST /api/v1/sensing" and a["result"] == "200"]
    assert pushes and pushes[0]["detail"].endswith("rejected")


async def test_batches_are_bounded_and_bodies_checked(http: httpx.AsyncClient) -> None:
    too_many = {"records": [record()] * 21}
    response = await http.post("/api/v1/sensing", json=too_many, headers=auth("platform"))
    assert response.status_code == 413
    assert "at most 20" in response.json()["detail"]
    for body in ({"records": []}, {"records": "x"}, [1, 2]):
        response = await http.post("/api/v1/sensing", json=body, headers=auth("platform"))
        assert response.status_code == 422


async def test_pushed_data_keeps_flowing(hub: Hub, http: httpx.AsyncClient) -> None:
    """Many small pushes: every one answered, the series bounded by its ring size."""
    for i in range(30):
        response = await http.post(
            "/api/v1/sensing",
            json={"records": [record(value=float(i % 5), ts=time.time())]},
            headers=auth("engineer"),
        )
        assert response.json()["accepted"] == 1
    await eventually(lambda: hub.monitoring.intake.accepted["push"] == 30)
    listed = (
        await http.get("/api/v1/metrics", params={"name": "tank.*"}, headers=auth("ops"))
    ).json()
    assert [(s["metric"], s["source"], s["points"]) for s in listed] == [
        ("tank.pressure", "pump-room-2", 30)
    ]
