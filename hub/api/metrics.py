"""Prometheus metrics for the hub (names prefixed ``cchub_``), one registry per hub."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub import __version__
from hub.events import SubsystemState

if TYPE_CHECKING:
    from hub.runtime import Hub


class _HubCollector(Collector):
    """Reads live figures from the hub at scrape time (nothing is copied in between)."""

    def __init__(self, hub: Hub, api: ApiMetrics) -> None:
        self.hub = hub
        self.api = api

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        info = GaugeMetricFamily("cchub_build_info", "Build of this hub", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        up = GaugeMetricFamily("cchub_subsystem_up", "1 when the subsystem is up", labels=["name"])
        for sub in hub.health():
            up.add_metric([sub.name], 1 if sub.state is SubsystemState.UP else 0)
        yield up
        yield CounterMetricFamily(
            "cchub_events_published", "Events published on the bus", value=hub.bus.published
        )
        yield GaugeMetricFamily("cchub_event_last_id", "Newest event id", value=hub.bus.last_id)
        yield GaugeMetricFamily(
            "cchub_bus_subscribers", "Live bus subscribers", value=hub.bus.subscriber_count
        )
        yield CounterMetricFamily(
            "cchub_bus_subscribers_dropped",
            "Subscribers dropped for falling behind",
            value=hub.bus.dropped_subscribers,
        )
        depth = GaugeMetricFamily(
            "cchub_bus_queue_depth", "Events queued per subscriber", labels=["subscriber"]
        )
        for subscription in hub.bus.subscriptions():
            depth.add_metric([subscription.name], subscription.depth)
        yield depth
        yield GaugeMetricFamily(
            "cchub_websocket_clients", "Event-stream clients", value=self.api.websocket_clients
        )
        store = hub.store
        yield GaugeMetricFamily(
            "cchub_store_queue_depth",
            "Writes waiting for commit",
            value=getattr(store, "queued", 0),
        )
        yield CounterMetricFamily(
            "cchub_store_events_committed",
            "Events committed to the event log by this process",
            value=getattr(store, "committed_events", 0),
        )
        yield CounterMetricFamily(
            "cchub_store_write_errors",
            "Failed store writes",
            value=getattr(store, "write_errors", 0),
        )


class ApiMetrics:
    def __init__(self, hub: Hub) -> None:
        self.websocket_clients = 0
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_HubCollector(hub, self))
        self.requests = Counter(
            "cchub_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cchub_http_request_duration_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
