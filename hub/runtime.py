"""The hub process: owns the store, the bus, the subsystems and the API server in one loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from devices.manager import DeviceManager
from devices.tasks import TaskOwner
from hub import __version__
from hub.alarms import AlarmService
from hub.auth import TokenAuth
from hub.bus import EventBus
from hub.conferences.dialin import DialIn
from hub.conferences.rollcall import RollCalls
from hub.conferences.service import ConferenceService
from hub.conferences.steps import ConferenceSteps
from hub.config import SiteConfig
from hub.equipment import Equipment
from hub.events import HubStarted, HubStopping, SubsystemState
from hub.monitoring import MonitoringService
from hub.plans import BuiltinSteps, PlanEngine, StepKinds
from hub.scenes import scene_engine
from hub.snmp.agent import HubAgent
from hub.snmp.rows import Table, TableProviders
from hub.snmp.sources import HubSources
from hub.store import SqliteStore, Store
from hub.telephony import Telephony

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubsystemHealth:
    name: str
    state: SubsystemState
    detail: str


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the hub's loop: the hub, not uvicorn, owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Hub:
    """One running hub. ``async with Hub(site)`` starts it and stops it."""

    def __init__(self, site: SiteConfig, *, site_path: str = "") -> None:
        self.site = site
        self.site_path = site_path
        self.store: Store = SqliteStore(
            site.hub.store_path, synchronous=site.hub.store.synchronous.upper()
        )
        self.bus = EventBus(sink=self.store)
        self.auth = TokenAuth(site.users)
        self.equipment = Equipment(DeviceManager(site.devices), self.bus)
        self.alarms = AlarmService(site, self.bus, self.store)
        self.monitoring = MonitoringService(site, self.alarms, self.store)
        self.scenes = scene_engine(self.equipment.manager, site.scenes, self.bus)
        steps = BuiltinSteps(
            scenes=self.scenes, devices=self.equipment, bus=self.bus, origin=site.hub.name
        )
        self.plans = PlanEngine(site.plans, self.bus, steps.register(StepKinds()))
        self.telephony = Telephony(site, self.bus, self.store)
        # conference, leg and radio-net rows of the hub MIB: their layers provide them here
        self.snmp_tables = TableProviders()
        self.conferences = ConferenceService(site, self.bus, self.store, self.telephony)
        if self.telephony.enabled:  # without SIP a conference has no legs to show
            self.snmp_tables.provide(Table.CONFERENCES, self.conferences.snmp_conferences)
            self.snmp_tables.provide(Table.LEGS, self.conferences.snmp_legs)
        self.rollcalls = RollCalls(self.conferences, self.bus)  # roll call, calls, barge
        self.dialin = DialIn(self.conferences, site.conferences)  # room numbers and PINs
        self.dialin.attach(self.telephony)
        ConferenceSteps(self.conferences).register(self.plans.kinds)  # plan steps (预案)
        self.snmp: HubAgent | None = None
        if site.snmp is not None:
            sources = HubSources(self, self.snmp_tables)
            self.snmp = HubAgent(site.snmp, sources, self.bus, name=site.hub.name)
            self.alarms.registry.register("trap", self.snmp.trap_action)
        self.stopped = asyncio.Event()
        self._server: _EmbeddedServer | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self._tasks = TaskOwner(logger)
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        self.bus.continue_from(await self.store.last_event_id())
        await self.alarms.start()  # before the devices: their first states are fed in
        await self.plans.start()  # listens for the rules' plan.requested
        await self.monitoring.start()
        await self.equipment.start()
        await self.telephony.start()
        await self.conferences.start()
        await self.rollcalls.start()
        if self.snmp is not None:
            await self.snmp.start()
        await self._start_api()
        self._started = True
        self.bus.publish(HubStarted(version=__version__, site=self.site.hub.name))
        logger.info("hub %s up, API at %s", self.site.hub.name, self.api_url)

    async def _start_api(self) -> None:
        from hub.api.app import create_app

        api = self.site.hub.api
        family = socket.AF_INET6 if ":" in api.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((api.host, api.port))
        except OSError as err:
            sock.close()
            raise OSError(
                err.errno, f"cannot listen on {api.host}:{api.port}: {err.strerror}"
            ) from err
        sock.listen(1024)
        sock.setblocking(False)
        self._socket = sock
        config = uvicorn.Config(
            create_app(self),
            lifespan="off",
            log_config=None,
            access_log=False,
            ws_ping_interval=20,
            ws_ping_timeout=20,
            timeout_graceful_shutdown=2,
        )
        self._server = _EmbeddedServer(config)
        self._server_task = self.spawn(self._server.serve(sockets=[sock]), "api-server")
        while not self._server.started:
            if self._server_task.done():
                self._server_task.result()
                raise RuntimeError("API server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self, reason: str = "shutdown") -> None:
        if not self._started:
            return
        self._started = False
        logger.info("hub stopping: %s", reason)
        self.bus.publish(HubStopping(reason=reason))
        self.bus.close_all()
        if self._server is not None:
            self._server.should_exit = True
        if self._server_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._server_task
        if self.snmp is not None:
            await self.snmp.stop()
        await self.plans.stop()  # before the scenes and devices its steps use
        await self.scenes.close()
        await self.dialin.close()  # no new callers, PIN dialogues ended
        await self.rollcalls.stop()  # stops dialling before the conferences end
        await self.conferences.stop()  # hangs up every participant while SIP is still up
        await self.telephony.stop()
        await self.equipment.stop()
        await self.monitoring.stop()
        await self.alarms.stop()
        await self._tasks.close()
        await self.store.close()
        if self._socket is not None:
            self._socket.close()
        self.stopped.set()
        logger.info("hub stopped")

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start a background task that the hub keeps, reaps and cancels on stop."""
        return self._tasks.spawn(coro, name)

    # -- state ---------------------------------------------------------------------------

    @property
    def api_port(self) -> int:
        if self._socket is None:
            return self.site.hub.api.port
        return int(self._socket.getsockname()[1])

    @property
    def api_url(self) -> str:
        host = self.site.hub.api.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.api_port}"

    def health(self) -> list[SubsystemHealth]:
        """Each subsystem's state, derived from the subsystem itself (never stored)."""
        ok, detail = self.store.health()
        out = [
            SubsystemHealth("store", SubsystemState.UP if ok else SubsystemState.DOWN, detail),
            SubsystemHealth(
                "bus",
                SubsystemState.UP,
                f"last id {self.bus.last_id}, {self.bus.subscriber_count} subscribers",
            ),
            SubsystemHealth("devices", *self.equipment.health()),
            *([SubsystemHealth("snmp", *self.snmp.health())] if self.snmp else []),
            SubsystemHealth("monitoring", *self.monitoring.health()),
            *([SubsystemHealth("sip", *self.telephony.health())] if self.telephony.enabled else []),
            *(
                [SubsystemHealth("conferences", *self.conferences.health())]
                if self.telephony.enabled
                else []
            ),
            SubsystemHealth(
                "api",
                SubsystemState.UP if self._server and self._server.started else SubsystemState.DOWN,
                self.api_url,
            ),
        ]
        return out


async def serve(
    site: SiteConfig,
    *,
    site_path: str = "",
    ready: Callable[[Hub], Awaitable[None] | None] | None = None,
) -> None:
    """Run a hub in the current loop until SIGINT/SIGTERM (or cancellation), then stop it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reason = {"why": "cancelled"}

    def on_signal(signum: int) -> None:
        reason["why"] = signal.Signals(signum).name
        stop.set()

    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    hub = Hub(site, site_path=site_path)
    try:
        await hub.start()
        if ready is not None:
            result = ready(hub)
            if result is not None:
                await result
        await stop.wait()
    finally:
        try:
            await asyncio.wait_for(
                asyncio.shield(hub.stop(reason["why"])), timeout=site.hub.shutdown_timeout
            )
        except TimeoutError:
            logger.error("shutdown took longer than %.1f s", site.hub.shutdown_timeout)
        for signum in installed:
            loop.remove_signal_handler(signum)


def run(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to completion on uvloop."""
    import uvloop

    uvloop.run(coro)
