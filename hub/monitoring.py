"""The hub's monitoring: the polling coordinators, the trap receiver and the MQTT feeds of
the site file, started and stopped with the hub, all feeding one intake (warning core, then
the recent series); minute roll-ups go to the store. Device states are turned into samples
by ``hub.alarms`` and routed through the same intake (channel ``device``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from devices.tasks import TaskOwner
from hub.alarms import AlarmService
from hub.config import SiteConfig
from hub.events import SubsystemState
from hub.store import Store
from monitoring.coordinator import Coordinator
from monitoring.ingest import Intake
from monitoring.modbus import ModbusCoordinator
from monitoring.mqtt import MqttIngest
from monitoring.nut_poll import NutCoordinator
from monitoring.rtsp_probe import RtspProbe
from monitoring.series import Rollup, SeriesStore
from monitoring.sip_options import OptionsAnswer, SipOptionsProbe
from monitoring.snmp_poll import SnmpCoordinator
from monitoring.targets import (
    ModbusTarget,
    NutTarget,
    RtspTarget,
    SipOptionsTarget,
    SnmpTarget,
    Target,
)
from monitoring.traps import TrapReceiver

logger = logging.getLogger(__name__)

ROLLUP_EVERY = 15.0  # seconds between flushes of closed minutes to the store
PRUNE_EVERY = 3600.0


class SipOptionsClient:
    """OPTIONS through a client-only SIP user agent (``sip.stack``) on an ephemeral port."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._stack: Any = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> Any:
        async with self._lock:
            if self._stack is None:
                from sip.stack import SipStack, StackConfig
                from sip.transport import TransportConfig

                stack = SipStack(
                    StackConfig(
                        transport=TransportConfig(hosts=(self.host,), port=0),
                        rate_limit=None,
                        user_agent="cchub-monitor",
                    )
                )
                await stack.start()
                self._stack = stack
            return self._stack

    async def options(self, uri: str, within: float) -> OptionsAnswer:
        stack = await self._ensure()
        try:
            async with asyncio.timeout(within):
                response = await stack.request("OPTIONS", uri)
        except TimeoutError:
            return OptionsAnswer(408, f"no final answer within {within:g} s", local=True)
        except ValueError as err:  # a URI the stack cannot route
            return OptionsAnswer(503, str(err), local=True)
        # the stack makes up a 408/503 itself when nothing usable came back: such a
        # response has no To tag, which every peer's final answer carries (RFC 3261 8.2.6.2)
        try:
            tagged = response.to.tag is not None
        except ValueError:
            tagged = False
        local = response.status in (408, 503) and not tagged
        return OptionsAnswer(response.status, response.reason, local=local)

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.close()


class MonitoringService:
    """Everything under ``monitoring:`` in the site file, for one hub."""

    def __init__(
        self,
        site: SiteConfig,
        alarms: AlarmService,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.site = site
        self.config = site.monitoring
        self._store = store
        self._clock = clock
        self.series = SeriesStore(self.config.series, self._save_rollups, clock=clock)
        self.intake = Intake(
            alarms.core,
            self.series,
            clock=clock,
            max_future_skew=site.alarm.max_future_skew,
        )
        alarms.devices.route(self.intake.channel("device"))
        self.sip_client: SipOptionsClient | None = None
        self.coordinators = [self._coordinator(t) for t in self.config.targets]
        hosts = {t.host: t.id for t in self.config.targets if isinstance(t, SnmpTarget | NutTarget)}
        self.traps = (
            TrapReceiver(
                self.config.traps, self.intake.channel("trap"), host_sources=hosts, clock=clock
            )
            if self.config.traps is not None
            else None
        )
        self.mqtt = [MqttIngest(feed, self.intake, clock=clock) for feed in self.config.mqtt]
        self._tasks = TaskOwner(logger)
        self._running = False

    def _coordinator(self, target: Target) -> Coordinator:
        feed = self.intake.channel("poll")
        if isinstance(target, SnmpTarget):
            return SnmpCoordinator(target, feed, clock=self._clock)
        if isinstance(target, ModbusTarget):
            return ModbusCoordinator(target, feed, clock=self._clock)
        if isinstance(target, NutTarget):
            return NutCoordinator(target, feed, clock=self._clock)
        if isinstance(target, RtspTarget):
            return RtspProbe(target, feed, clock=self._clock)
        if isinstance(target, SipOptionsTarget):
            if self.sip_client is None:
                self.sip_client = SipOptionsClient(self.site.sip.host)
            return SipOptionsProbe(target, feed, self.sip_client, clock=self._clock)
        raise TypeError(f"no coordinator for {target!r}")  # the site file forbids this

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        if self.traps is not None:
            await self.traps.start()
        for coordinator in self.coordinators:
            await coordinator.start()
        for feed in self.mqtt:
            await feed.start()
        self._tasks.spawn(self._rollups(), "monitoring-rollups")
        logger.info(
            "monitoring: %d target(s), traps %s, %d MQTT feed(s)",
            len(self.coordinators),
            f"on udp port {self.traps.port}" if self.traps else "off",
            len(self.mqtt),
        )

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        await self._tasks.close()
        for feed in self.mqtt:
            await feed.stop()
        for coordinator in self.coordinators:
            await coordinator.stop()
        if self.traps is not None:
            await self.traps.stop()
        if self.sip_client is not None:
            await self.sip_client.close()
        self.series.flush(everything=True)

    async def _rollups(self) -> None:
        next_prune = 0.0
        while True:
            await asyncio.sleep(ROLLUP_EVERY)
            now = self._clock()
            self.series.flush(now)
            if now >= next_prune:
                next_prune = now + PRUNE_EVERY
                self._store.prune_rollups(now - self.config.series.rollup_retention)

    def _save_rollups(self, rollups: list[Rollup]) -> None:
        with contextlib.suppress(Exception):  # the store counts and logs its own failures
            self._store.save_rollups(rollups)

    # -- state ---------------------------------------------------------------------------------

    def health(self) -> tuple[SubsystemState, str]:
        """Up unless a producer is stuck; targets that do not answer are alarms, not ill health."""
        down = [c.id for c in self.coordinators if c.stats.up is False]
        parts = [f"{len(self.coordinators)} target(s), {len(down)} not answering"]
        if down:
            parts.append(
                "(" + ", ".join(sorted(down)[:5]) + (", ..." if len(down) > 5 else "") + ")"
            )
        if self.mqtt:
            connected = sum(1 for m in self.mqtt if m.stats.connected)
            parts.append(f"MQTT {connected}/{len(self.mqtt)} connected")
        parts.append(f"{len(self.series)} series")
        return SubsystemState.UP, " ".join(parts)


class MonitoringCollector(Collector):
    """Prometheus figures of the producers and the latest value of every series."""

    def __init__(self, service: MonitoringService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        svc = self.service
        polls = CounterMetricFamily(
            "cchub_poll", "Polls by target and result", labels=["target", "kind", "result"]
        )
        duration = GaugeMetricFamily(
            "cchub_poll_last_duration_seconds", "Duration of the last poll", labels=["target"]
        )
        up = GaugeMetricFamily(
            "cchub_poll_up", "1 when the target answered its last poll", labels=["target", "kind"]
        )
        errors = CounterMetricFamily(
            "cchub_poll_errors",
            "Poll failures and protocol events by code",
            labels=["target", "code"],
        )
        for c in svc.coordinators:
            polls.add_metric([c.id, c.kind, "ok"], c.stats.polls_ok)
            polls.add_metric([c.id, c.kind, "failed"], c.stats.polls_failed)
            duration.add_metric([c.id], c.stats.last_duration)
            up.add_metric([c.id, c.kind], 1.0 if c.stats.up else 0.0)
            for code, n in sorted(c.stats.errors.items()):
                errors.add_metric([c.id, code], n)
        yield from (polls, duration, up, errors)
        accepted = CounterMetricFamily(
            "cchub_ingest_accepted", "Samples accepted, by channel", labels=["channel"]
        )
        for channel, n in sorted(svc.intake.accepted.items()):
            accepted.add_metric([channel], n)
        rejected = CounterMetricFamily(
            "cchub_ingest_rejected",
            "Records refused, by channel and reason",
            labels=["channel", "reason"],
        )
        for (channel, reason), n in sorted(svc.intake.rejected.items()):
            rejected.add_metric([channel, reason], n)
        yield from (accepted, rejected)
        if svc.traps is not None:
            traps = CounterMetricFamily(
                "cchub_traps_received", "Notifications received", labels=["version"]
            )
            for version, n in sorted(svc.traps.received.items()):
                traps.add_metric([version], n)
            refused = CounterMetricFamily(
                "cchub_traps_refused", "Datagrams refused by the trap receiver", labels=["reason"]
            )
            for reason, n in sorted(svc.traps.refused().items()):
                refused.add_metric([reason], n)
            yield from (traps, refused)
        depth = GaugeMetricFamily("cchub_ingest_queue_depth", "Messages waiting", labels=["queue"])
        dropped = CounterMetricFamily(
            "cchub_ingest_dropped", "Messages dropped: queue full", labels=["queue"]
        )
        received = CounterMetricFamily(
            "cchub_mqtt_messages", "MQTT messages received", labels=["broker"]
        )
        connected = GaugeMetricFamily(
            "cchub_mqtt_connected", "1 when subscribed", labels=["broker"]
        )
        for feed in svc.mqtt:
            depth.add_metric([feed.where], len(feed.inbox))
            dropped.add_metric([feed.where], feed.inbox.dropped)
            received.add_metric([feed.where], feed.stats.received)
            connected.add_metric([feed.where], 1.0 if feed.stats.connected else 0.0)
        yield from (depth, dropped, received, connected)
        yield GaugeMetricFamily(
            "cchub_metric_series", "Series kept in memory", value=len(svc.series)
        )
        latest = GaugeMetricFamily(
            "cchub_metric_value",
            "Latest value of each monitored series",
            labels=["metric", "source", "unit", "labels"],
        )
        for series in svc.series.find():
            point = series.last
            if point is not None:
                text = ",".join(f"{k}={v}" for k, v in series.key.labels)
                latest.add_metric(
                    [series.key.metric, series.key.source, series.unit, text], point.value
                )
        yield latest
