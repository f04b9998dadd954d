"""WebSocket ``/api/v1/events``: the event stream, resumable from an event id.

Connect with ``?after=<last id seen>`` (and optionally ``kinds=duty.,hub.``); the token
comes in the ``Authorization`` header or, for browsers, ``?token=``. The server first
replays from the store everything after ``after``, then streams live events, so a
reconnecting client misses nothing. A client too slow to keep up is closed with code
4008 and the id to resume after.
"""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from hub.auth import Principal
from hub.bus import SubscriberDropped, Subscription
from hub.errors import AuthFailed
from hub.events import Event
from hub.logs import ContextAdapter
from hub.runtime import Hub

logger = logging.getLogger(__name__)
router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_SLOW_CONSUMER = 4008
SEND_TIMEOUT = 10.0
REPLAY_PAGE = 500


def _encode(event: Event) -> str:
    return json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":"))


@router.websocket("/api/v1/events")
async def event_stream(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    await websocket.accept()
    try:
        principal = hub.auth.authenticate(
            websocket.headers.get("authorization"), websocket.query_params.get("token")
        )
    except AuthFailed as err:
        await websocket.close(CLOSE_UNAUTHORIZED, str(err))
        return
    try:
        after = int(websocket.query_params.get("after", "0"))
        if after < 0:
            raise ValueError
    except ValueError:
        await websocket.close(1008, "'after' must be a non-negative event id")
        return
    kinds = tuple(k for k in websocket.query_params.get("kinds", "").split(",") if k)
    metrics = websocket.app.state.metrics
    metrics.websocket_clients += 1
    try:
        await _stream(hub, websocket, principal, after, kinds)
    except WebSocketDisconnect:
        pass
    finally:
        metrics.websocket_clients -= 1


async def _stream(
    hub: Hub, websocket: WebSocket, principal: Principal, after: int, kinds: tuple[str, ...]
) -> None:
    def accept(event: Event) -> bool:
        return not kinds or event.kind.startswith(kinds)

    # Subscribe before reading the store: whatever the replay misses is in the queue.
    sub = hub.bus.subscribe(
        f"ws:{principal.name}", maxsize=hub.site.hub.subscriber_queue, accept=accept
    )
    client = websocket.client
    log = ContextAdapter(
        logger, {"ws": sub.name, "peer": f"{client.host}:{client.port}" if client else "?"}
    )
    log.debug("streaming after %d (kinds %s)", after, ",".join(kinds) or "all")
    last_sent = after
    try:
        await hub.store.flush()
        while True:
            page = await hub.store.events_since(last_sent, limit=REPLAY_PAGE, kinds=kinds)
            for event in page:
                await _send(websocket, event)
                last_sent = event.id
            if len(page) < REPLAY_PAGE:
                break
        await _live_until_disconnect(websocket, sub, last_sent)
    except SubscriberDropped as dropped:
        resume = max(last_sent, dropped.last_id)
        log.warning("closed: too slow, resume after %d", resume)
        await websocket.close(CLOSE_SLOW_CONSUMER, f"too slow; reconnect with after={resume}")
    except TimeoutError:
        log.warning("closed: not reading, resume after %d", last_sent)
        await websocket.close(CLOSE_SLOW_CONSUMER, f"not reading; reconnect with after={last_sent}")
    finally:
        sub.close()


async def _live_until_disconnect(websocket: WebSocket, sub: Subscription, last_sent: int) -> None:
    """Stream live events until the client goes away (noticed at once, not at the next send)."""
    sender = asyncio.create_task(_live(websocket, sub, last_sent))
    watcher = asyncio.create_task(_client_gone(websocket))
    try:
        await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, watcher):
            task.cancel()
        await asyncio.gather(sender, watcher, return_exceptions=True)
    if sender.done() and not sender.cancelled():
        sender.result()  # re-raises SubscriberDropped or a send timeout


async def _live(websocket: WebSocket, sub: Subscription, last_sent: int) -> None:
    async for event in sub:
        if event.id <= last_sent:
            continue  # already replayed from the store
        await _send(websocket, event)


async def _client_gone(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _send(websocket: WebSocket, event: Event) -> None:
    await asyncio.wait_for(websocket.send_text(_encode(event)), SEND_TIMEOUT)
