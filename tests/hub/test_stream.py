"""The WebSocket event stream: live events, resume after reconnect, auth, slow clients."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from hub.config import SiteConfig
from hub.events import DutyNoteAdded
from hub.runtime import Hub
from tests.hub.sitefile import TOKENS, auth, site_dict


def ws_url(hub: Hub, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return hub.api_url.replace("http", "ws") + "/api/v1/events" + (f"?{query}" if query else "")


async def recv_event(ws: websockets.ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def post_note(client: httpx.AsyncClient, text: str) -> int:
    response = await client.post("/api/v1/duty-log", json={"text": text}, headers=auth("platform"))
    assert response.status_code == 201
    return int(response.json()["id"])


async def test_resume_after_reconnect_misses_nothing(hub: Hub, client: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {TOKENS['dispatcher']}"}
    async with websockets.connect(ws_url(hub, kinds="duty."), additional_headers=headers) as ws:
        first = await post_note(client, "before the drop")
        event = await recv_event(ws)
        assert (event["id"], event["kind"], event["data"]["text"]) == (
            first,
            "duty.note",
            "before the drop",
        )
        last_seen = event["id"]
    missed = [await post_note(client, f"while away {i}") for i in range(3)]
    async with websockets.connect(
        ws_url(hub, after=last_seen, kinds="duty."), additional_headers=headers
    ) as ws:
        replayed = [await recv_event(ws) for _ in range(3)]
        assert [e["id"] for e in replayed] == missed
        live = await post_note(client, "after the return")
        assert (await recv_event(ws))["id"] == live
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.2)  # nothing twice


async def test_browser_style_token_and_bad_tokens(hub: Hub) -> None:
    async with websockets.connect(ws_url(hub, token=TOKENS["ops"])) as ws:
        hub.bus.publish(DutyNoteAdded(author="x", text="hi"))
        events = [await recv_event(ws) for _ in range(2)]
        assert events[-1]["kind"] == "duty.note"
    async with websockets.connect(ws_url(hub, token="wrong")) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4401
        assert "not valid" in closed.value.rcvd.reason


async def test_slow_client_is_closed_with_resume_point(tmp_path: Path) -> None:
    site = SiteConfig.model_validate(site_dict(tmp_path, subscriber_queue=10))
    async with Hub(site) as hub:
        url = ws_url(hub, token=TOKENS["ops"])
        async with websockets.connect(url) as ws:
            started = await recv_event(ws)  # the replay of hub.started
            for i in range(200):  # in one go: the stream's queue overflows
                hub.bus.publish(DutyNoteAdded(author="x", text=str(i)))
            received = [started]
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    received.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
            resume = int(closed.value.rcvd.reason.rsplit("=", 1)[1])
            assert resume == received[-1]["id"]
        # The other subscribers and the hub are unaffected; resuming recovers the rest.
        async with websockets.connect(ws_url(hub, token=TOKENS["ops"], after=resume)) as ws:
            rest = []
            while len(received) + len(rest) < 201:
                rest.append(await recv_event(ws))
        ids = [e["id"] for e in received + rest]
        assert ids == list(range(1, 202))
