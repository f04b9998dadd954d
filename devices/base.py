"""The device coordinator: connect with back-off, poll, one command in flight, publish snapshots.

Drivers subclass :class:`Device` (or :class:`devices.stream.StreamDevice`) and implement
``_connect``/``_disconnect``/``_fetch``/``_prepare``/``_execute``; everything else lives here.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import logging
import random
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import ConfigDict, Field, ValidationError

from devices.capabilities import Capability, validate_command
from devices.config import DeviceConfig, Model
from devices.errors import (
    DeviceBusy,
    DeviceCommandError,
    DeviceConfigError,
    DeviceError,
    DeviceUnavailable,
    InvalidCommand,
)
from devices.snapshot import DeviceSnapshot
from devices.tasks import TaskOwner

logger = logging.getLogger(__name__)

C = TypeVar("C")
Listener = Callable[[DeviceSnapshot], None]


class DeviceLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every record with ``[dev=<id>]``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return f"[dev={self.extra['dev'] if self.extra else '?'}] {msg}", kwargs


class LinkState(enum.Enum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"


class DeviceOptions(Model):
    """Options every driver accepts under ``options:`` (drivers extend this model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retries: int = Field(1, ge=0, le=10, description="resends after a timeout")
    queue_size: int = Field(16, ge=1, le=1024, description="commands waiting at most")
    reconnect_initial: float = Field(0.5, gt=0, description="first reconnect delay, s")
    reconnect_max: float = Field(30.0, gt=0, description="longest reconnect delay, s")


@dataclass(frozen=True)
class RetryPolicy:
    """How often an unanswered request is sent (``attempts`` = 1 + retries)."""

    attempts: int = 2


@dataclass(frozen=True)
class Backoff:
    """Exponential reconnect back-off with jitter (each delay drawn from [d/2, d])."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, failures: int, rng: random.Random) -> float:
        ceiling = min(self.maximum, self.initial * self.factor ** min(failures, 32))
        return rng.uniform(ceiling / 2, ceiling)


@dataclass
class _Pending(Generic[C]):
    command: C | None  # None = refresh
    future: asyncio.Future[dict[str, Any]]


class Device(abc.ABC, Generic[C]):
    """One coordinator per device; async-context-manageable (``async with driver: ...``)."""

    Options: ClassVar[type[DeviceOptions]] = DeviceOptions
    # what the device is (Matrix, Display...): fixes its command vocabulary and state keys
    capabilities: ClassVar[tuple[type[Capability], ...]] = ()

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.id = config.id
        self.log = DeviceLog(logging.getLogger(type(self).__module__), {"dev": config.id})
        try:
            self.options = self.Options.model_validate(config.options)
        except ValidationError as err:
            problems = "; ".join(
                f"options.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
            )
            raise DeviceConfigError(f"device {config.id!r} ({config.type}): {problems}") from None
        self.retry = RetryPolicy(attempts=self.options.retries + 1)
        self.backoff = Backoff(self.options.reconnect_initial, self.options.reconnect_max)
        self._rng = random.Random()
        self._tasks = TaskOwner(self.log)
        self._queue: asyncio.Queue[_Pending[C]] = asyncio.Queue(self.options.queue_size)
        self._current: _Pending[C] | None = None
        self._io_lock = asyncio.Lock()
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._state = LinkState.STOPPED
        self._outage_since: float | None = None
        self._listeners: list[Listener] = []
        self._snapshot = DeviceSnapshot(config.id, config.type, False, {}, "not started", 0.0)

    # --- what drivers implement ---------------------------------------------------------

    @abc.abstractmethod
    async def _connect(self) -> None:
        """Open the transport; raise :class:`DeviceUnavailable` on failure."""

    @abc.abstractmethod
    async def _disconnect(self) -> None:
        """Close the transport (idempotent, never raises)."""

    @abc.abstractmethod
    async def _fetch(self) -> Mapping[str, Any]:
        """Read the device's full state (called with the I/O lock held)."""

    def _prepare(self, command: Mapping[str, Any]) -> C:
        """Validate a command dict into a typed command; raise :class:`InvalidCommand`.

        The default validates through the declared ``capabilities`` (the command model is
        the typed command); drivers override it to add device limits, calling ``super()``.
        A device without capabilities accepts nothing but ``refresh``.
        """
        if self.capabilities:
            return cast(C, validate_command(self.capabilities, command, self.config.type))
        raise InvalidCommand(
            f"unknown command {command.get('command')!r} for {self.config.type} (legal: refresh)"
        )

    async def _execute(self, command: C) -> dict[str, Any]:
        """Carry out a prepared command (called with the I/O lock held)."""
        raise InvalidCommand(f"{self.config.type} has no command {command!r}")

    # --- public API -------------------------------------------------------------------

    @property
    def snapshot(self) -> DeviceSnapshot:
        return self._snapshot

    @property
    def link_state(self) -> LinkState:
        return self._state

    def add_listener(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback`` with each new snapshot; returns a function that removes it."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    async def start(self) -> None:
        """Start connecting and polling in the background; never fails for a dead device."""
        if self._state is not LinkState.STOPPED:
            return
        self._set_state(LinkState.CONNECTING)
        self._tasks.spawn(self._supervise(), f"{self.id}-supervisor")
        self._tasks.spawn(self._serve_commands(), f"{self.id}-commands")

    async def stop(self) -> None:
        """Stop polling, fail queued commands with :class:`DeviceUnavailable`, close the link."""
        if self._state is LinkState.STOPPED:
            return
        self._state = LinkState.STOPPED
        current = self._current  # the worker forgets it when cancelled
        await self._tasks.close()
        stopped = DeviceUnavailable(f"device {self.id} stopped")
        if current is not None:
            self._settle(current, error=stopped)
        while not self._queue.empty():
            self._settle(self._queue.get_nowait(), error=stopped)
        await self._disconnect()
        self.log.debug("stopped")
        self._publish(online=False, error="stopped")

    async def __aenter__(self) -> Device[C]:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def command(self, command: Mapping[str, Any]) -> dict[str, Any]:
        """Queue a typed command dict and wait for its result.

        ``{"command": "refresh"}`` is understood by every device: poll now, return the state.
        Raises :class:`InvalidCommand`, :class:`DeviceUnavailable`, :class:`DeviceBusy`
        or :class:`DeviceCommandError` carrying the device's own code.
        """
        prepared = None if command.get("command") == "refresh" else self._prepare(command)
        if self._state is not LinkState.ONLINE:
            reason = self._snapshot.error or self._state.value
            raise DeviceUnavailable(f"device {self.id} is offline: {reason}")
        pending: _Pending[C] = _Pending(prepared, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise DeviceBusy(
                f"device {self.id}: {self._queue.maxsize} commands already queued"
            ) from None
        return await pending.future

    # --- for drivers --------------------------------------------------------------------

    def _merge_state(self, changes: Mapping[str, Any]) -> None:
        """Apply a partial state change (e.g. from an unsolicited message) to the snapshot."""
        state = {**self._snapshot.state, **changes}
        self._publish(state=state)

    def _link_lost(self, reason: str) -> None:
        """The transport is gone or unusable: the supervisor reconnects."""
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()

    # --- internals ----------------------------------------------------------------------

    def _set_state(self, new: LinkState) -> None:
        old, self._state = self._state, new
        if old is not new:
            self.log.debug("%s -> %s", old.value, new.value)

    def _publish(
        self,
        *,
        online: bool | None = None,
        state: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        old = self._snapshot
        new = DeviceSnapshot(
            old.id,
            old.type,
            old.online if online is None else online,
            old.state if state is None else state,
            old.error if error is None else error,
            time.time(),
        )
        if new.same_as(old):
            return
        self._snapshot = new
        for callback in list(self._listeners):
            try:
                callback(new)
            except Exception:
                self.log.exception("snapshot listener %r failed", callback)

    def _went_offline(self, reason: str) -> None:
        self._set_state(LinkState.OFFLINE)
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self.log.warning("unavailable: %s", reason)
        else:
            self.log.debug("still unavailable: %s", reason)
        self._publish(online=False, error=reason)

    def _came_online(self, state: Mapping[str, Any]) -> None:
        self._set_state(LinkState.ONLINE)
        if self._outage_since is not None:
            self.log.info("recovered after %.1f s", time.monotonic() - self._outage_since)
            self._outage_since = None
        else:
            self.log.info("online")
        self._publish(online=True, state=state, error="")

    async def _locked_fetch(self) -> Mapping[str, Any]:
        async with self._io_lock:
            return await self._fetch()

    async def _supervise(self) -> None:
        failures = 0
        while True:
            self._set_state(LinkState.CONNECTING)
            self._lost.clear()
            self._lost_reason = ""
            try:
                await self._connect()
                state = await self._locked_fetch()
            except DeviceError as err:
                await self._disconnect()
                self._went_offline(self._lost_reason or str(err))
            except Exception as err:
                self.log.exception("unexpected failure while connecting")
                await self._disconnect()
                self._went_offline(f"driver failure: {err}")
            else:
                failures = 0
                self._came_online(state)
                reason = await self._poll_until_lost()
                await self._disconnect()
                self._went_offline(reason)
            delay = self.backoff.delay(failures, self._rng)
            failures += 1
            self.log.debug("reconnecting in %.2f s", delay)
            await asyncio.sleep(delay)

    async def _poll_until_lost(self) -> str:
        interval = self.config.poll_interval
        while True:
            try:
                async with asyncio.timeout(interval * self._rng.uniform(0.9, 1.1)):
                    await self._lost.wait()
                return self._lost_reason or "link lost"
            except TimeoutError:
                pass
            try:
                state = await self._locked_fetch()
            except DeviceUnavailable as err:
                return self._lost_reason or str(err)
            except DeviceCommandError as err:
                self.log.debug("poll rejected: %s", err)
                self._publish(error=str(err))
                continue
            except Exception as err:
                self.log.exception("unexpected failure while polling")
                return f"driver failure: {err}"
            self._publish(online=True, state=state, error="")

    async def _serve_commands(self) -> None:
        while True:
            pending = await self._queue.get()
            if pending.future.done():
                continue  # the caller gave up while it was queued
            if self._state is not LinkState.ONLINE:
                self._settle(pending, error=DeviceUnavailable(f"device {self.id} went offline"))
                continue
            self._current = pending
            try:
                async with self._io_lock:
                    if pending.command is None:
                        state = await self._fetch()
                        self._publish(state=state)
                        result: dict[str, Any] = dict(self._snapshot.as_dict()["state"])
                    else:
                        result = await self._execute(pending.command)
            except DeviceError as err:
                self._settle(pending, error=err)
            except Exception as err:
                self.log.exception("command %r failed unexpectedly", pending.command)
                self._settle(pending, error=DeviceError(f"driver failure: {err}"))
            else:
                self._settle(pending, result=result)
            finally:
                self._current = None

    @staticmethod
    def _settle(
        pending: _Pending[C],
        *,
        result: dict[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> None:
        if pending.future.done():
            return
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(result or {})
