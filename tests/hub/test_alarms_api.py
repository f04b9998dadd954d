"""The alarm API over real HTTP: list, inspect, history, ack, mass ack, shelve, reset, roles,
problems, audit, bus events, metrics, and alarms surviving a hub restart."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.config import SiteConfig
from hub.runtime import Hub
from tests.hub.sitefile import auth, site_dict

PROBLEM = "application/problem+json"
RULES: dict[str, Any] = {
    "rules": [
        {"id": "on-battery", "metric": "ups.on_battery", "above": 1, "level": "orange"},
        {"id": "hot", "metric": "room.temperature", "above": 35, "clear": 30, "unit": "C"},
        {"id": "smoke", "metric": "room.smoke", "above": 1, "latch": True, "level": "red"},
    ],
}


def site(tmp_path: Path) -> SiteConfig:
    return SiteConfig.model_validate({**site_dict(tmp_path), **RULES})


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with Hub(site(tmp_path)) as running:
        yield running


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.api_url, timeout=10) as http:
        yield http


def feed(hub: Hub, metric: str, source: str, value: Any, unit: str = "") -> None:
    """A producer inside the hub (a poller, the trap receiver) hands the core a sample."""
    assert hub.alarms.core.submit(metric, source, value, time.time(), unit)


async def test_list_get_ack_and_history(hub: Hub, client: httpx.AsyncClient) -> None:
    feed(hub, "ups.on_battery", "ups-1", True)
    feed(hub, "room.temperature", "room-1", 36, "C")
    listed = await client.get("/api/v1/alarms", headers=auth("platform"))
    assert listed.status_code == 200
    assert [(a["id"], a["level"], a["state"]) for a in listed.json()] == [
        ("on-battery@ups-1", "orange", "active-unack"),
        ("hot@room-1", "blue", "active-unack"),
    ]
    one = (await client.get("/api/v1/alarms/hot@room-1", headers=auth("dispatcher"))).json()
    assert one["message"] == "room.temperature on room-1 = 36 C (above 35)"
    assert one["condition"] == "active" and one["count"] == 1
    acked = await client.post(
        "/api/v1/alarms/on-battery@ups-1/ack",
        json={"comment": "generator starting"},
        headers=auth("dispatcher"),
    )
    assert acked.status_code == 200
    assert acked.json()["state"] == "active-ack"
    assert (acked.json()["ack_by"], acked.json()["ack_comment"]) == (
        "dispatcher-user",
        "generator starting",
    )
    feed(hub, "ups.on_battery", "ups-1", False)
    assert (await client.get("/api/v1/alarms", headers=auth("ops"))).json()[0]["id"] == (
        "hot@room-1"
    )
    everything = await client.get("/api/v1/alarms", params={"all": "true"}, headers=auth("ops"))
    assert {a["id"]: a["state"] for a in everything.json()}["on-battery@ups-1"] == "normal"
    history = await client.get("/api/v1/alarms/on-battery@ups-1/history", headers=auth("ops"))
    moves = [(h["old_state"], h["new_state"], h["cause"], h["actor"]) for h in history.json()]
    assert [m for m in moves if not m[2].startswith("action:")] == [
        ("normal", "active-unack", "activate", ""),
        ("active-unack", "active-ack", "ack", "dispatcher-user"),
        ("active-ack", "normal", "clear", ""),
    ]


async def test_filters(hub: Hub, client: httpx.AsyncClient) -> None:
    feed(hub, "ups.on_battery", "ups-1", 1)
    feed(hub, "room.temperature", "room-1", 40, "C")
    feed(hub, "room.temperature", "room-2", 40, "C")
    await client.post("/api/v1/alarms/hot@room-2/ack", headers=auth("ops"))

    async def ids(**params: str) -> list[str]:
        response = await client.get("/api/v1/alarms", params=params, headers=auth("platform"))
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()]

    assert await ids(level="orange") == ["on-battery@ups-1"]
    assert await ids(state="active-ack") == ["hot@room-2"]
    assert await ids(source="room-1") == ["hot@room-1"]
    assert sorted(await ids(level="blue,orange", state="active-unack")) == [
        "hot@room-1",
        "on-battery@ups-1",
    ]
    bad = await client.get("/api/v1/alarms", params={"level": "purple"}, headers=auth("ops"))
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    assert bad.json()["detail"] == (
        "level: expected some of blue, yellow, orange, red; got ['purple']"
    )


async def test_roles(hub: Hub, client: httpx.AsyncClient) -> None:
    feed(hub, "room.temperature", "room-1", 40, "C")
    assert (await client.get("/api/v1/alarms")).status_code == 401
    refused = await client.post("/api/v1/alarms/hot@room-1/ack", headers=auth("platform"))
    assert refused.status_code == 403
    assert refused.headers["content-type"] == PROBLEM
    assert "role 'platform' may not do this" in refused.json()["detail"]
    for role in ("dispatcher", "ops", "engineer", "admin"):
        shelved = await client.post(
            "/api/v1/alarms/hot@room-1/shelve",
            json={"duration": 60, "reason": f"{role} checks"},
            headers=auth(role),
        )
        assert shelved.status_code == 200, (role, shelved.text)
        assert shelved.json()["shelved_by"] == f"{role}-user"
    entries = (await client.get("/api/v1/audit", headers=auth("ops"))).json()
    assert [(e["actor"], e["action"], e["target"], e["result"]) for e in entries[-2:]] == [
        ("dispatcher-user", "POST /api/v1/alarms/{alarm_id}/shelve", "alarm:hot@room-1", "200"),
        ("platform-user", "POST /api/v1/alarms/{alarm_id}/ack", "/api/v1/alarms/hot@room-1/ack",
         "403"),
    ]  # fmt: skip


async def test_mass_acknowledge(hub: Hub, client: httpx.AsyncClient) -> None:
    for room in ("room-1", "room-2", "room-3"):
        feed(hub, "room.temperature", room, 40, "C")
    feed(hub, "ups.on_battery", "ups-1", 1)
    await client.post("/api/v1/alarms/hot@room-3/ack", headers=auth("ops"))
    by_filter = await client.post(
        "/api/v1/alarms/ack",
        json={"filter": {"level": ["blue"]}, "comment": "air-con fault known"},
        headers=auth("ops"),
    )
    assert by_filter.status_code == 200
    body = by_filter.json()
    assert [a["id"] for a in body["acknowledged"]] == ["hot@room-1", "hot@room-2"]
    assert {a["ack_comment"] for a in body["acknowledged"]} == {"air-con fault known"}
    assert body["skipped"] == [{"id": "hot@room-3", "reason": "the alarm is already acknowledged"}]
    by_ids = await client.post(
        "/api/v1/alarms/ack", json={"ids": ["on-battery@ups-1", "nope@x"]}, headers=auth("engineer")
    )
    assert [a["id"] for a in by_ids.json()["acknowledged"]] == ["on-battery@ups-1"]
    assert by_ids.json()["skipped"] == [{"id": "nope@x", "reason": "no such alarm"}]
    neither = await client.post("/api/v1/alarms/ack", json={}, headers=auth("ops"))
    assert neither.status_code == 422
    assert "give either 'ids' or 'filter'" in neither.json()["detail"]


async def test_shelve_unshelve_reset_and_refusals(hub: Hub, client: httpx.AsyncClient) -> None:
    feed(hub, "room.smoke", "room-1", 1)
    feed(hub, "room.smoke", "room-1", 0)
    path = "/api/v1/alarms/smoke@room-1"
    early = await client.post(f"{path}/reset", headers=auth("engineer"))
    assert early.status_code == 409
    assert early.headers["content-type"] == PROBLEM
    assert early.json()["detail"] == "acknowledge the latched alarm before resetting it"
    await client.post(f"{path}/ack", json={"comment": "dust"}, headers=auth("dispatcher"))
    reset = await client.post(f"{path}/reset", json={"comment": "cleaned"}, headers=auth("ops"))
    assert reset.status_code == 200 and reset.json()["state"] == "normal"

    feed(hub, "room.temperature", "room-1", 40, "C")
    hot = "/api/v1/alarms/hot@room-1"
    too_long = await client.post(
        f"{hot}/shelve", json={"duration": 10**6, "reason": "x"}, headers=auth("ops")
    )
    assert too_long.status_code == 409
    assert too_long.json()["detail"] == "shelve duration must be in (0, 86400] s, not 1e+06"
    invalid = await client.post(f"{hot}/shelve", json={"duration": -1}, headers=auth("ops"))
    assert invalid.status_code == 422
    shelved = await client.post(
        f"{hot}/shelve", json={"duration": 3600, "reason": "sensor swap"}, headers=auth("ops")
    )
    assert shelved.json()["state"] == "shelved"
    assert shelved.json()["shelved_until"] == pytest.approx(time.time() + 3600, abs=30)
    back = await client.post(f"{hot}/unshelve", headers=auth("ops"))
    assert back.json()["state"] == "active-unack" and back.json()["shelved_until"] is None
    missing = await client.post("/api/v1/alarms/ghost@nowhere/ack", headers=auth("ops"))
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no alarm 'ghost@nowhere'"
    assert (await client.get("/api/v1/alarms/ghost@nowhere", headers=auth("ops"))).status_code == (
        404
    )


async def test_transitions_are_events_and_metrics(hub: Hub, client: httpx.AsyncClient) -> None:
    feed(hub, "ups.on_battery", "ups-1", 1)
    assert not hub.alarms.core.submit("room.temperature", "room-1", 40, time.time(), "F")
    assert not hub.alarms.core.submit("room.temperature", "room-1", float("nan"), time.time())
    await client.post("/api/v1/alarms/on-battery@ups-1/ack", headers=auth("ops"))
    page = await client.get(
        "/api/v1/events", params={"kinds": "alarm.state,alarm.notify"}, headers=auth("ops")
    )
    events = [(e["kind"], e["data"]["alarm"], e["data"].get("new")) for e in page.json()["events"]]
    assert ("alarm.state", "on-battery@ups-1", "active-unack") in events
    assert ("alarm.state", "on-battery@ups-1", "active-ack") in events
    assert ("alarm.notify", "on-battery@ups-1", None) in events
    text = (await client.get("/metrics")).text
    assert 'cchub_alarms_active{level="orange",state="active-ack"} 1.0' in text
    assert 'cchub_alarms_active{level="red",state="active-unack"} 0.0' in text
    assert "cchub_alarm_samples_ingested_total 1.0" in text
    assert 'cchub_alarm_samples_rejected_total{reason="wrong_unit"} 1.0' in text
    assert 'cchub_alarm_samples_rejected_total{reason="not_finite"} 1.0' in text


async def test_alarms_survive_a_hub_restart(tmp_path: Path) -> None:
    async with Hub(site(tmp_path)) as first:
        feed(first, "ups.on_battery", "ups-1", 1)
        feed(first, "room.smoke", "room-1", 1)
        async with httpx.AsyncClient(base_url=first.api_url, timeout=10) as http:
            await http.post(
                "/api/v1/alarms/smoke@room-1/ack", json={"comment": "on it"}, headers=auth("ops")
            )
    async with Hub(site(tmp_path)) as second:
        async with httpx.AsyncClient(base_url=second.api_url, timeout=10) as http:
            listed = (await http.get("/api/v1/alarms", headers=auth("ops"))).json()
            assert [(a["id"], a["state"], a["ack_comment"]) for a in listed] == [
                ("smoke@room-1", "active-ack", "on it"),
                ("on-battery@ups-1", "active-unack", None),
            ]
            history = await http.get("/api/v1/alarms/smoke@room-1/history", headers=auth("ops"))
            causes = [h["cause"] for h in history.json() if not h["cause"].startswith("action")]
            assert causes == ["activate", "ack"]
        feed(second, "room.smoke", "room-1", 0)  # the rule carries on after the restart
        assert second.alarms.core.get("smoke@room-1").state.value == "latched-ack"
