"""The REST API over real HTTP: health, auth, problems, audit, history, metrics."""

from __future__ import annotations

import httpx

from hub.runtime import Hub
from tests.hub.sitefile import TOKENS, auth

PROBLEM = "application/problem+json"


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {s["name"]: s["state"] for s in body["subsystems"]} == {
        "store": "up",
        "bus": "up",
        "devices": "up",
        "monitoring": "up",
        "api": "up",
    }


async def test_health_reports_a_dead_store(hub: Hub, client: httpx.AsyncClient) -> None:
    await hub.store.close()
    response = await client.get("/api/v1/health")
    assert response.status_code == 503
    store = next(s for s in response.json()["subsystems"] if s["name"] == "store")
    assert store == {"name": "store", "state": "down", "detail": "writer not running"}


async def test_missing_or_bad_token_is_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic x"}):
        response = await client.get("/api/v1/whoami", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["title"] == "Unauthorized"
        assert response.json()["detail"]


async def test_wrong_role_is_403(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/audit", headers=auth("dispatcher"))
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    assert "role 'dispatcher' may not do this" in response.json()["detail"]
    for role in ("ops", "admin"):
        assert (await client.get("/api/v1/audit", headers=auth(role))).status_code == 200


async def test_each_role_is_recognised(client: httpx.AsyncClient) -> None:
    for role in TOKENS:
        response = await client.get("/api/v1/whoami", headers=auth(role))
        assert response.json() == {"name": f"{role}-user", "role": role}


async def test_malformed_and_invalid_bodies(client: httpx.AsyncClient) -> None:
    headers = {**auth("dispatcher"), "content-type": "application/json"}
    broken = await client.post("/api/v1/duty-log", content=b'{"text": "half', headers=headers)
    assert broken.status_code == 400
    assert broken.headers["content-type"] == PROBLEM
    assert broken.json()["detail"].startswith("the request body is not valid JSON")
    unknown = await client.post(
        "/api/v1/duty-log", json={"text": "x", "colour": "red"}, headers=auth("dispatcher")
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == [
        {"where": "colour", "problem": "Extra inputs are not permitted"}
    ]
    empty = await client.post("/api/v1/duty-log", json={"text": ""}, headers=auth("dispatcher"))
    assert empty.status_code == 422
    assert "text" in empty.json()["detail"]
    # The hub is unharmed.
    assert (await client.get("/api/v1/health")).status_code == 200


async def test_mutating_calls_are_audited(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/v1/duty-log", json={"text": "台风预警"}, headers=auth("platform")
    )
    assert created.status_code == 201
    event_id = created.json()["id"]
    await client.post("/api/v1/duty-log", json={"text": "x"}, headers=auth("ops"))
    await client.post("/api/v1/duty-log", json={"text": "x"})
    entries = (await client.get("/api/v1/audit", headers=auth("admin"))).json()
    summary = [(e["actor"], e["role"], e["action"], e["target"], e["result"]) for e in entries]
    assert summary == [
        ("anonymous", "", "POST /api/v1/duty-log", "/api/v1/duty-log", "401"),
        ("ops-user", "ops", "POST /api/v1/duty-log", "/api/v1/duty-log", "403"),
        ("platform-user", "platform", "POST /api/v1/duty-log", f"event:{event_id}", "201"),
    ]
    assert all(e["source"].startswith("127.0.0.1:") for e in entries)
    # Reads are not audited.
    assert len((await client.get("/api/v1/audit", headers=auth("ops"))).json()) == 3


async def test_event_history_pages(client: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        response = await client.post(
            "/api/v1/duty-log", json={"text": f"n{i}"}, headers=auth("dispatcher")
        )
        ids.append(response.json()["id"])
    page = (
        await client.get(
            "/api/v1/events",
            params={"after": 0, "limit": 3, "kinds": "duty."},
            headers=auth("ops"),
        )
    ).json()
    assert [e["id"] for e in page["events"]] == ids[:3]
    assert page["more"] is True
    rest = (
        await client.get(
            "/api/v1/events",
            params={"after": page["last_id"], "kinds": "duty."},
            headers=auth("ops"),
        )
    ).json()
    assert [e["data"]["text"] for e in rest["events"]] == ["n3", "n4"]
    assert rest["more"] is False


async def test_openapi_and_metrics(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {"/api/v1/health", "/api/v1/events", "/api/v1/duty-log", "/api/v1/audit"} <= set(
        spec["paths"]
    )
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    await client.get("/api/v1/health")
    text = (await client.get("/metrics")).text
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert samples and all(line.startswith("cchub_") for line in samples)
    assert 'cchub_http_requests_total{method="GET",route="/api/v1/health",status="200"}' in text
    assert "cchub_store_events_committed_total" in text


async def test_console_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "/api/v1/events" in response.text
