"""The hub's telephony: the SIP stack from the site's ``sip`` section, the registrar with
the site users that have a ``sip_password``, the trunks, the dial plan and the call legs;
their changes as bus events, call records in the store, figures for ``/metrics``."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.bus import EventBus
from hub.config import SiteConfig
from hub.events import SipBindingChanged, SipCallProgress, SipTrunkChanged, SubsystemState
from hub.store import CallRecordRow, Store
from sip.calls import (
    CallAnswered,
    CallAttemptFailed,
    CallEarlyMedia,
    CallEnded,
    CallEvent,
    CallFailed,
    CallLeg,
    CallManager,
    CallRecord,
    CallRinging,
    CallTrying,
    DtmfReceived,
    MediaChanged,
)
from sip.dialplan import Dialplan
from sip.digest import Algorithm
from sip.registrar import BindingChange, Registrar, SipUser
from sip.stack import SipStack, StackConfig
from sip.transaction import Timers
from sip.transport import TransportConfig
from sip.trunk import TrunkSet, TrunkState, TrunkStatus

logger = logging.getLogger(__name__)


def stack_config(site: SiteConfig, exempt: frozenset[str] = frozenset()) -> StackConfig:
    """The stack's configuration from the site file's ``sip`` section."""
    sip = site.sip
    tls_context: ssl.SSLContext | None = None
    if "tls" in sip.transports and sip.tls is not None:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(sip.tls.cert, sip.tls.key)
        if sip.tls.ca is not None:
            tls_context.load_verify_locations(sip.tls.ca)
    size = sip.limits.max_message_size
    transport = TransportConfig(
        hosts=(sip.host,),
        port=sip.port,
        udp="udp" in sip.transports,
        tcp="tcp" in sip.transports,
        tls_context=tls_context,
        tls_port=sip.tls_port,
        max_datagram_bytes=size,
        max_header_bytes=min(size, 65_535),
        max_body_bytes=size,
    )
    return StackConfig(
        transport=transport,
        timers=Timers(t1=sip.timers.t1, t2=sip.timers.t2, t4=sip.timers.t4),
        domain=sip.domain,
        advertised_host=None if sip.host not in ("0.0.0.0", "::") else site.sip.domain,
        rate_limit=sip.limits.rate_per_source,
        rate_burst=sip.limits.burst_per_source,
        rate_limit_exempt=exempt,
        max_transactions=sip.limits.max_transactions,
    )


_PHASES: dict[type[CallEvent], str] = {
    CallTrying: "trying",
    CallRinging: "ringing",
    CallEarlyMedia: "early-media",
    CallAnswered: "answered",
    CallAttemptFailed: "attempt-failed",
    CallFailed: "failed",
    CallEnded: "ended",
    MediaChanged: "media-changed",
    DtmfReceived: "dtmf",
}


class Telephony:
    """SIP for one hub: ``start`` binds the stack and starts registrar and trunks."""

    def __init__(self, site: SiteConfig, bus: EventBus, store: Store) -> None:
        self.site = site
        self.bus = bus
        self.store = store
        trunk_hosts = frozenset(t.host.strip("[]") for t in site.trunks)
        self.stack = SipStack(stack_config(site, trunk_hosts))
        users = [
            SipUser(u.name, u.sip_password.get_secret_value(), frozenset({u.role.value}))
            for u in site.users
            if u.sip_password is not None
        ]
        self.registrar = Registrar(
            users,
            realm=site.sip.domain,
            algorithms=[Algorithm(name) for name in site.sip.digest_algorithms],
            on_change=self._binding_changed,
        )
        self.registrar.attach(self.stack)
        self.trunks = TrunkSet(site.trunks, self.stack, on_change=self._trunk_changed)
        self.dialplan = Dialplan(
            site.trunks,
            domain=site.sip.domain,
            endpoints={e.id: e.routes for e in site.endpoints},
            local_users=[u.name for u in users],
            local_hosts=(site.sip.host,),
        )
        self.calls = CallManager(
            self.stack,
            dialplan=self.dialplan,
            trunks=self.trunks,
            registrar=self.registrar,
            on_event=self._call_event,
            on_record=self._call_record,
        )
        self.calls.attach()
        # a site without a sip section, trunks or SIP users runs no SIP listener
        self.enabled = bool("sip" in site.model_fields_set or site.trunks or users)
        self._running = False

    async def start(self) -> None:
        if not self.enabled:
            logger.info("SIP not configured (no sip section, trunks or SIP users)")
            return
        await self.stack.start()
        await self.registrar.start()
        await self.trunks.start()
        self._running = True
        logger.info(
            "SIP up on %s (%d users, %d trunks)",
            ", ".join(f"{a.transport} {a.host}:{a.port}" for a in self.stack.addresses),
            len(self.registrar.users),
            len(self.trunks.trunks),
        )

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        await self.calls.close()
        await self.trunks.close()
        await self.registrar.close()
        await self.stack.close()

    # -- bus and store --------------------------------------------------------------------

    def _binding_changed(self, change: BindingChange) -> None:
        binding = change.binding
        origin = binding.origin
        self.bus.publish(
            SipBindingChanged(
                user=binding.user,
                contact=str(binding.uri),
                change=change.event.value,
                expires_in=binding.expires_in(time.monotonic()),
                source=f"{origin.remote.host}:{origin.remote.port}" if origin else "",
            )
        )

    def _trunk_changed(self, status: TrunkStatus) -> None:
        self.bus.publish(
            SipTrunkChanged(
                trunk=status.id,
                state=status.state.value,
                registration=status.registration.value,
                detail=status.detail,
            )
        )

    def _call_event(self, leg: CallLeg, event: CallEvent) -> None:
        status, reason, detail = 0, "", {}
        route = leg.route
        if isinstance(event, CallAttemptFailed | CallFailed):
            status, reason = event.status, event.reason
        elif isinstance(event, CallEnded):
            status, reason = event.status, event.cause
        elif isinstance(event, DtmfReceived):
            detail = {"digit": event.digit, "duration_ms": event.duration_ms}
        elif isinstance(event, MediaChanged):
            detail = {"held": event.held}
        if isinstance(event, CallTrying | CallAnswered | CallAttemptFailed):
            route = event.route
        if leg.media is not None and isinstance(event, CallAnswered | MediaChanged):
            detail = {**detail, "media": {k: str(v) for k, v in asdict(leg.media).items()}}
        self.bus.publish(
            SipCallProgress(
                leg=leg.id,
                phase=_PHASES.get(type(event), "other"),
                direction=leg.direction.value,
                remote=leg.remote,
                trunk=getattr(event, "trunk", leg.trunk),
                route=route,
                status=status,
                reason=reason,
                detail=detail,
            )
        )

    def _call_record(self, record: CallRecord) -> None:
        self.store.save_call_record(CallRecordRow(**asdict(record)))

    # -- state ----------------------------------------------------------------------------

    def health(self) -> tuple[SubsystemState, str]:
        """Down when the stack is not running, degraded when a trunk is down."""
        if not self.enabled:
            return SubsystemState.UP, "not configured"
        if not self._running:
            return SubsystemState.DOWN, "SIP stack not running"
        down = [t.id for t in self.trunks.statuses() if t.state is TrunkState.DOWN]
        where = ", ".join(f"{a.transport} {a.host}:{a.port}" for a in self.stack.addresses)
        detail = (
            f"{where}; {len(self.registrar.registered_users)} registered, "
            f"{len(self.calls.legs)} calls"
        )
        if down:
            return SubsystemState.DEGRADED, f"trunks down: {', '.join(down)}; {detail}"
        return SubsystemState.UP, detail

    def directory(self) -> dict[str, Any]:
        """Site endpoints with their routes, SIP users with their bindings, trunks."""
        endpoints = []
        for endpoint in self.site.endpoints:
            routes = []
            for route in endpoint.routes:
                try:
                    candidates = self.dialplan.resolve(route)
                    routes.append(
                        {"address": route, "trunks": [c.trunk for c in candidates], "error": None}
                    )
                except ValueError as err:
                    routes.append({"address": route, "trunks": [], "error": str(err)})
            endpoints.append(
                {"id": endpoint.id, "name": endpoint.name, "roles": endpoint.roles,
                 "routes": routes}
            )  # fmt: skip
        now = time.monotonic()
        users = [
            {
                "name": user.name,
                "address": f"user:{user.name}",
                "roles": sorted(user.roles),
                "bindings": [
                    {"contact": str(b.uri), "expires_in": b.expires_in(now), "q": b.q}
                    for b in self.registrar.lookup(user.name)
                ],
            }
            for user in self.registrar.users
        ]
        trunks = [
            {
                "id": s.id,
                "type": self.trunks.trunks[s.id].trunk.type.value,
                "state": s.state.value,
                "registration": s.registration.value,
                "active_calls": s.active_calls,
                "max_calls": s.max_calls,
                "detail": s.detail,
            }
            for s in self.trunks.statuses()
        ]
        return {"endpoints": endpoints, "users": users, "trunks": trunks}


class TelephonyCollector(Collector):
    """Prometheus figures: stack counters, registrations, trunks, active legs."""

    def __init__(self, telephony: Telephony) -> None:
        self.telephony = telephony

    def collect(self) -> Iterator[Metric]:
        tel = self.telephony
        gauges = {"connections_active", "transactions_active", "transactions_pending",
                  "dialogs_active"}  # fmt: skip
        for name, value in tel.stack.counters.snapshot().items():
            family: CounterMetricFamily | GaugeMetricFamily
            if name in gauges:
                family = GaugeMetricFamily(f"cchub_sip_{name}", f"SIP stack {name}")
            else:
                family = CounterMetricFamily(f"cchub_sip_{name}", f"SIP stack {name}")
            family.add_metric([], value)
            yield family
        legs = GaugeMetricFamily("cchub_sip_calls_active", "Active call legs", labels=["state"])
        by_state: dict[str, int] = {}
        for leg in tel.calls.legs.values():
            by_state[leg.state.value] = by_state.get(leg.state.value, 0) + 1
        for state, count in sorted(by_state.items()):
            legs.add_metric([state], count)
        yield legs
        calls = CounterMetricFamily("cchub_sip_calls", "Call legs by outcome", labels=["outcome"])
        for outcome, count in tel.calls.counters.items():
            calls.add_metric([outcome], count)
        yield calls
        registered = GaugeMetricFamily("cchub_sip_registered_users", "Users with a binding")
        registered.add_metric([], len(tel.registrar.registered_users))
        yield registered
        up = GaugeMetricFamily("cchub_sip_trunk_up", "1 when the trunk is up", labels=["trunk"])
        active = GaugeMetricFamily("cchub_sip_trunk_calls", "Calls on the trunk", labels=["trunk"])
        for status in tel.trunks.statuses():
            up.add_metric([status.id], 0.0 if status.state is TrunkState.DOWN else 1.0)
            active.add_metric([status.id], status.active_calls)
        yield from (up, active)
