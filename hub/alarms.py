"""The hub's side of the warning core: alarms persisted and published, devices fed in, and
the verbs people use (ack, shelve, reset), each answered once it is stored."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from devices.registry import driver_for
from devices.tasks import TaskOwner
from hub.bus import EventBus, SubscriberDropped
from hub.config import SiteConfig
from hub.errors import InvalidStateError, NotFound
from hub.events import (
    AlarmActionDone,
    AlarmNotified,
    AlarmStateChanged,
    AlarmUpdated,
    DeviceStateChanged,
    PlanRequested,
)
from hub.store import AlarmHistoryEntry, Store
from monitoring.actions import (
    ActionRegistry,
    ActionRequest,
    ActionResult,
    ActionRunner,
    WebhookAction,
)
from monitoring.alarms import AlarmSnapshot, AlarmState, AlarmTransition
from monitoring.config import WarningLevel
from monitoring.coordinator import Feed
from monitoring.errors import AlarmNotFound, IllegalTransition
from monitoring.samples import Occurrence, OccurrenceState, Rejection, Sample
from monitoring.warning import AlarmFilter, WarningCore

logger = logging.getLogger(__name__)

DEVICE_OFFLINE = "device.offline"
"""The occurrence kind fed for a device that stops answering (cleared when it answers)."""

# Snapshot errors that are not failures: the device is not running yet, or on purpose.
_NOT_FAILURES = frozenset({"not started", "stopped"})

PRUNE_EVERY = 3600.0
"""Seconds between deletions of normal alarms past the retention (``alarm.retention``)."""

# Units by state-key suffix: device state keys name their unit (charge_percent, input_voltage).
_UNITS = (("_percent", "%"), ("_voltage", "V"), ("_hz", "Hz"), ("minutes_", "min"))


@functools.cache
def metric_prefix(device_type: str) -> str:
    """Device metrics are named ``<prefix>.<state key>``: the driver's first capability
    (``ups`` for every UPS driver), else its type name."""
    try:
        capabilities = getattr(driver_for(device_type), "capabilities", ())
    except KeyError:
        capabilities = ()
    return str(capabilities[0].name) if capabilities else device_type


def unit_of(key: str) -> str:
    for affix, unit in _UNITS:
        if key.endswith(affix) or (affix.endswith("_") and key.startswith(affix)):
            return unit
    return ""


class CoreFeed:
    """A feed straight into the warning core (no series kept): until the hub's monitoring
    routes the device feed through its intake."""

    def __init__(self, core: WarningCore) -> None:
        self._core = core

    def sample(self, sample: Sample) -> bool:
        return self._core.ingest(sample)

    def occur(self, occurrence: Occurrence) -> None:
        self._core.occur(occurrence)


class DeviceFeed:
    """Device snapshots as producer input: ``device.offline`` occurrences (raised and
    cleared on the online edge) and one sample per numeric/bool state key, named
    ``<capability>.<key>`` (``ups.on_battery``, ``ups.charge_percent``)."""

    def __init__(self, core: WarningCore, clock: Callable[[], float]) -> None:
        self._out: Feed = CoreFeed(core)
        self._clock = clock
        self._online: dict[str, bool] = {}
        self._states: dict[str, tuple[str, Mapping[str, Any]]] = {}

    def route(self, feed: Feed) -> None:
        """Feed through ``feed`` from now on: the hub's intake (``hub.monitoring``), which
        counts the samples and keeps them as series for ``GET /api/v1/metrics``."""
        self._out = feed

    def on_state(self, event: DeviceStateChanged) -> None:
        now = self._clock()
        if not event.online and event.error in _NOT_FAILURES:
            return
        if self._online.get(event.device) != event.online:
            self._online[event.device] = event.online
            state = OccurrenceState.CLEAR if event.online else OccurrenceState.RAISE
            why = "answers again" if event.online else (event.error or "offline")
            message = f"device {event.device} ({event.type}): {why}"
            self._out.occur(Occurrence(DEVICE_OFFLINE, event.device, now, state, message))
        if event.online:
            self._states[event.device] = (event.type, event.state)
            self._feed(event.device, event.type, event.state, now)
        else:
            self._states.pop(event.device, None)

    def resample(self) -> None:
        """Feed the online devices' unchanged states again (staleness needs a heartbeat)."""
        now = self._clock()
        for device, (device_type, state) in list(self._states.items()):
            self._feed(device, device_type, state, now)

    def _feed(self, device: str, device_type: str, state: Mapping[str, Any], ts: float) -> None:
        prefix = metric_prefix(device_type)
        for key, value in state.items():
            if value is None or isinstance(value, bool | int | float):
                number = None if value is None else float(value)
                self._out.sample(Sample(f"{prefix}.{key}", device, number, ts, unit_of(key)))


class AlarmService:
    """Owns the warning core for one hub: restore on start, persist and publish every
    change, feed device states in, and tick the core's clock."""

    def __init__(
        self,
        site: SiteConfig,
        bus: EventBus,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.site = site
        self._bus = bus
        self._store = store
        self._clock = clock
        self.registry = ActionRegistry()
        self.registry.register("notify", self._notify)
        self.registry.register("plan", self._request_plan)
        self.webhook = WebhookAction(site.alarm.webhook, origin=site.hub.name)
        self.registry.register("webhook", self.webhook)
        self.runner = ActionRunner(self.registry, self.action_result, clock=clock)
        self.core = WarningCore(
            site.rules,
            site.alarm,
            site.dependencies,
            sink=self,
            actions=self.runner,
            clock=clock,
            source_labels=site.monitoring.sources,
        )
        self.devices = DeviceFeed(self.core, clock)
        self.revision = 0
        """Counts alarm changes handed to the store (readers cache alarm views by it)."""
        self._tasks = TaskOwner(logger)
        self._running = False

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Restore the stored alarms, then listen to devices and tick (before devices start)."""
        restored = self.core.restore(await self._store.load_alarms())
        open_alarms = len(self.core.alarms())
        logger.info(
            "alarms: %d restored (%d not normal), %d rules",
            restored,
            open_alarms,
            len(self.site.rules),
        )
        self.prune()
        self._running = True
        subscription = self._subscribe()
        self._tasks.spawn(self._consume(subscription), "alarms-devices")
        self._tasks.spawn(self._tick(), "alarms-tick")

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        await self._tasks.close()
        self.core.flush()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self.runner.drain()
        await self.runner.close()
        await self.webhook.close()

    def _subscribe(self) -> Any:
        return self._bus.subscribe(
            "alarms", maxsize=100_000, accept=lambda e: isinstance(e, DeviceStateChanged)
        )

    async def _consume(self, subscription: Any) -> None:
        while self._running:
            try:
                async for event in subscription:
                    if isinstance(event, DeviceStateChanged):
                        try:
                            self.devices.on_state(event)
                        except Exception:  # loop boundary: one bad state never ends the feed
                            logger.exception("[dev=%s] feeding its state failed", event.device)
                return
            except SubscriberDropped as err:
                # Device states are levels, not edges: the next snapshot tells the truth again.
                logger.error("alarm feed fell behind (%s); resubscribing", err)
                subscription = self._subscribe()

    async def _tick(self) -> None:
        every = self.site.alarm.tick
        resample = self.site.monitoring.device_sample_interval
        next_resample = self._clock() + resample
        next_prune = self._clock() + PRUNE_EVERY
        while True:
            await asyncio.sleep(every)
            if self._clock() >= next_resample:
                next_resample = self._clock() + resample
                self.devices.resample()
            self.core.tick()
            if self._clock() >= next_prune:
                next_prune = self._clock() + PRUNE_EVERY
                self.prune()

    def prune(self) -> list[str]:
        """Forget the normal alarms unchanged for ``alarm.retention`` seconds and delete
        them with their history from the store; return their ids."""
        gone = self.core.forget(self._clock() - self.site.alarm.retention)
        if gone:
            self.revision += 1
            self._store.delete_alarms(gone)
            logger.info(
                "alarms: %d normal alarm(s) older than %g s deleted with their history",
                len(gone),
                self.site.alarm.retention,
            )
        return gone

    # -- the core's sink -------------------------------------------------------------------

    def transition(self, transition: AlarmTransition) -> None:
        self.revision += 1
        alarm = transition.alarm
        self._store.save_alarm(
            alarm,
            AlarmHistoryEntry(
                alarm_id=alarm.id,
                ts=transition.ts,
                old_state=transition.old.value,
                new_state=transition.new.value,
                cause=transition.cause.value,
                actor=transition.actor,
                comment=transition.comment,
                data={
                    "condition": alarm.condition.value,
                    "count": alarm.count,
                    "message": alarm.message,
                    "level": alarm.level.value,
                },
            ),
        )
        self._bus.publish(
            AlarmStateChanged(
                alarm=alarm.id,
                rule=alarm.rule,
                source=alarm.source,
                level=alarm.level.value,
                old=transition.old.value,
                new=transition.new.value,
                cause=transition.cause.value,
                condition=alarm.condition.value,
                count=alarm.count,
                message=alarm.message,
                actor=transition.actor,
                comment=transition.comment,
                suppressed_by=alarm.suppressed_by or "",
            )
        )

    def updated(self, alarm: AlarmSnapshot) -> None:
        self.revision += 1
        self._store.save_alarm(alarm)
        self._bus.publish(
            AlarmUpdated(
                alarm=alarm.id,
                level=alarm.level.value,
                state=alarm.state.value,
                condition=alarm.condition.value,
                count=alarm.count,
                message=alarm.message,
                flapping=alarm.flapping,
            )
        )

    def action_result(self, result: ActionResult) -> None:
        request = result.request
        try:
            alarm = self.core.get(request.alarm.id)
        except AlarmNotFound:
            alarm = request.alarm
        self._store.save_alarm(
            alarm,
            AlarmHistoryEntry(
                alarm_id=alarm.id,
                ts=result.ts,
                old_state=alarm.state.value,
                new_state=alarm.state.value,
                cause=f"action:{request.step.do}",
                comment=result.detail,
                data={"step": request.index, "ok": result.ok},
            ),
        )
        self._bus.publish(
            AlarmActionDone(
                alarm=alarm.id,
                action=request.step.do,
                step=request.index,
                ok=result.ok,
                detail=result.detail,
            )
        )

    # -- action kinds the hub provides -----------------------------------------------------

    async def _notify(self, request: ActionRequest) -> str:
        alarm = request.alarm
        event = self._bus.publish(
            AlarmNotified(
                alarm=alarm.id,
                rule=alarm.rule,
                source=alarm.source,
                level=alarm.level.value,
                state=alarm.state.value,
                message=alarm.message,
                step=request.index,
            )
        )
        return f"consoles notified (event {event.id})"

    async def _request_plan(self, request: ActionRequest) -> str:
        plan = request.step.plan or ""
        event = self._bus.publish(
            PlanRequested(
                plan=plan,
                requested_by=f"rule:{request.alarm.rule}",
                alarm=request.alarm.id,
                reason=request.alarm.message,
            )
        )
        return f"plan {plan!r} requested (event {event.id})"

    # -- people's verbs (durable: answered after the store has committed) ------------------

    async def _durable(self, verb: Callable[[], AlarmSnapshot]) -> AlarmSnapshot:
        try:
            snapshot = verb()
        except AlarmNotFound as err:
            raise NotFound(str(err)) from None
        except IllegalTransition as err:
            raise InvalidStateError(str(err)) from None
        await self._store.flush()
        return snapshot

    async def ack(self, alarm_id: str, actor: str, comment: str) -> AlarmSnapshot:
        return await self._durable(lambda: self.core.ack(alarm_id, actor, comment))

    async def shelve(
        self, alarm_id: str, duration: float, actor: str, reason: str
    ) -> AlarmSnapshot:
        return await self._durable(lambda: self.core.shelve(alarm_id, duration, actor, reason))

    async def unshelve(self, alarm_id: str, actor: str) -> AlarmSnapshot:
        return await self._durable(lambda: self.core.unshelve(alarm_id, actor))

    async def reset(self, alarm_id: str, actor: str, comment: str) -> AlarmSnapshot:
        return await self._durable(lambda: self.core.reset(alarm_id, actor, comment))

    async def ack_many(
        self, selected: AlarmFilter | Iterable[str], actor: str, comment: str
    ) -> tuple[list[AlarmSnapshot], list[tuple[str, str]]]:
        result = self.core.ack_many(selected, actor, comment)
        await self._store.flush()
        return result

    def get(self, alarm_id: str) -> AlarmSnapshot:
        try:
            return self.core.get(alarm_id)
        except AlarmNotFound as err:
            raise NotFound(str(err)) from None

    async def history(self, alarm_id: str, limit: int = 500) -> list[AlarmHistoryEntry]:
        self.get(alarm_id)
        await self._store.flush()
        return await self._store.alarm_history(alarm_id, limit=limit)


class AlarmCollector(Collector):
    """Prometheus figures of the warning core, read at scrape time."""

    def __init__(self, service: AlarmService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        core = self.service.core
        active = GaugeMetricFamily(
            "cchub_alarms_active",
            "Alarms not normal, by level and state",
            labels=["level", "state"],
        )
        counts = core.counts()
        for level in WarningLevel:
            for state in AlarmState:
                if state is not AlarmState.NORMAL:
                    active.add_metric([level.value, state.value], counts.get((level, state), 0))
        yield active
        yield CounterMetricFamily(
            "cchub_alarm_samples_ingested",
            "Samples accepted by the warning core",
            value=core.stats.samples_ingested,
        )
        rejected = CounterMetricFamily(
            "cchub_alarm_samples_rejected", "Samples refused, by reason", labels=["reason"]
        )
        for reason in Rejection:
            rejected.add_metric([reason.value], core.stats.rejected.get(reason, 0))
        yield rejected
        yield CounterMetricFamily(
            "cchub_alarm_occurrences",
            "Discrete events fed to the warning core",
            value=core.stats.occurrences,
        )
        actions = CounterMetricFamily(
            "cchub_alarm_actions", "Action steps carried out, by result", labels=["result"]
        )
        actions.add_metric(["ok"], self.service.runner.done)
        actions.add_metric(["failed"], self.service.runner.failed)
        yield actions
