"""Build the FastAPI application for one hub: auth, audit, metrics, problems, routes."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub import __version__
from hub.api import problems
from hub.api.metrics import ApiMetrics
from hub.auth import Principal
from hub.events import AuditRecorded
from hub.store import AuditEntry

if TYPE_CHECKING:
    from hub.runtime import Hub

logger = logging.getLogger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuditAndMetrics:
    """ASGI middleware: every mutating call is audited (committed before the response
    goes out), and every request is counted and timed for /metrics."""

    def __init__(self, app: ASGIApp, hub: Hub, metrics: ApiMetrics) -> None:
        self.app = app
        self.hub = hub
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        status_holder = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                if method in MUTATING:
                    await self._audit(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.observe(method, template, status_holder[0], time.perf_counter() - started)

    async def _audit(self, scope: Scope, status: int) -> None:
        state: dict[str, Any] = scope.get("state", {})
        principal: Principal | None = state.get("principal")
        client = scope.get("client")
        route = scope.get("route")
        entry = AuditEntry(
            actor=principal.name if principal else "anonymous",
            role=principal.role.value if principal else "",
            action=f"{scope['method']} {getattr(route, 'path', scope['path'])}",
            target=str(state.get("audit_target", scope["path"])),
            source=f"{client[0]}:{client[1]}" if client else "",
            result=str(status),
            detail=state.get("audit_detail", ""),
        )
        try:
            entry = await self.hub.store.record_audit(entry)
        except Exception:
            logger.exception("could not write audit entry for %s", entry.action)
            return
        self.hub.bus.publish(
            AuditRecorded(
                actor=entry.actor, action=entry.action, target=entry.target, result=entry.result
            )
        )


def create_app(hub: Hub) -> FastAPI:
    from hub.alarms import AlarmCollector
    from hub.api import (
        alarms,
        conferences,
        console,
        devices,
        endpoints,
        metrics_api,
        plans,
        recordings,
        rollcall,
        routes,
        scenes,
        stream,
    )
    from hub.conferences.service import ConferenceCollector
    from hub.monitoring import MonitoringCollector
    from hub.snmp.agent import SnmpCollector
    from hub.telephony import TelephonyCollector

    app = FastAPI(
        title="cchub",
        version=__version__,
        description="Converged-communications hub: REST API and event stream.",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.hub = hub
    metrics = ApiMetrics(hub)
    app.state.metrics = metrics
    metrics.registry.register(AlarmCollector(hub.alarms))
    if hub.snmp is not None:
        metrics.registry.register(SnmpCollector(hub.snmp))
    metrics.registry.register(MonitoringCollector(hub.monitoring))
    metrics.registry.register(TelephonyCollector(hub.telephony))
    metrics.registry.register(ConferenceCollector(hub.conferences, hub.dialin))
    problems.install(app)
    app.include_router(routes.router)
    app.include_router(stream.router)
    app.include_router(devices.router)
    app.include_router(alarms.router)
    app.include_router(scenes.router)
    app.include_router(plans.router)
    app.include_router(conferences.router)
    app.include_router(recordings.router)
    app.include_router(rollcall.router)
    app.include_router(endpoints.router)
    app.include_router(metrics_api.router)
    app.include_router(console.router)
    app.add_middleware(AuditAndMetrics, hub=hub, metrics=metrics)
    return app
