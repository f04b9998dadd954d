"""The event bus: stamp, persist and fan out events without ever blocking the publisher.

Each subscriber owns a bounded queue. A subscriber whose queue is full is dropped with a
logged warning and its iteration ends with ``SubscriberDropped``; it can resume from the
store using the id of the last event it saw. The durable sink (the store) is not a
subscriber: it is handed every event in publish order and acknowledges when committed.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol

from hub.events import Event

logger = logging.getLogger(__name__)


class SubscriberDropped(Exception):
    """The subscriber fell behind and was dropped; resume after ``last_id``."""

    def __init__(self, name: str, last_id: int) -> None:
        super().__init__(f"subscriber {name!r} fell behind and was dropped after event {last_id}")
        self.name = name
        self.last_id = last_id


class DurableSink(Protocol):
    def append_event(self, event: Event, *, ack: bool = False) -> asyncio.Future[None] | None:
        """Queue ``event`` for writing; with ``ack`` the future resolves once committed."""


class Subscription:
    """A bounded queue of events for one consumer. Use as an async iterator."""

    _ids = itertools.count(1)

    def __init__(
        self,
        bus: EventBus,
        name: str,
        maxsize: int,
        accept: Callable[[Event], bool] | None,
    ) -> None:
        self.name = f"{name}#{next(self._ids)}"
        self._bus = bus
        self._queue: collections.deque[Event] = collections.deque()
        self._maxsize = maxsize
        self._accept = accept
        self._waiter: asyncio.Future[None] | None = None
        self.dropped = False
        self.closed = False
        self.last_id = 0

    @property
    def depth(self) -> int:
        return len(self._queue)

    def _offer(self, event: Event) -> bool:
        """Called by the bus. Returns False when the subscriber must be dropped."""
        if self._accept is not None and not self._accept(event):
            return True
        if len(self._queue) >= self._maxsize:
            self.dropped = True
            self._wake()
            return False
        self._queue.append(event)
        self._wake()
        return True

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._remove(self)
            self._wake()

    def get_nowait(self) -> Event | None:
        if self._queue:
            event = self._queue.popleft()
            self.last_id = event.id
            return event
        if self.dropped:
            raise SubscriberDropped(self.name, self.last_id)
        return None

    async def get(self) -> Event:
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Publish/subscribe for typed events with monotonic ids and back-pressure by dropping."""

    def __init__(self, sink: DurableSink | None = None, first_id: int = 1) -> None:
        self._sink = sink
        self._next_id = first_id
        self._subscribers: list[Subscription] = []
        self.published = 0
        self.dropped_subscribers = 0

    def continue_from(self, last_id: int) -> None:
        """Number new events after ``last_id`` (the store's newest), before the first publish."""
        if self.published:
            raise RuntimeError("continue_from() must be called before the first publish")
        self._next_id = last_id + 1

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscriptions(self) -> Iterable[Subscription]:
        return tuple(self._subscribers)

    def subscribe(
        self,
        name: str,
        *,
        maxsize: int = 1000,
        accept: Callable[[Event], bool] | None = None,
    ) -> Subscription:
        sub = Subscription(self, name, maxsize, accept)
        self._subscribers.append(sub)
        return sub

    def close_all(self) -> None:
        """End every subscription (at shutdown): their iterations finish normally."""
        for sub in list(self._subscribers):
            sub.close()

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def publish(self, event: Event) -> Event:
        """Stamp ``event`` with id and time, hand it to the store and the subscribers."""
        stamped = self._stamp(event)
        if self._sink is not None:
            self._sink.append_event(stamped)
        self._fan_out(stamped)
        return stamped

    async def publish_durable(self, event: Event) -> Event:
        """Publish and wait until the store has committed the event (for API acks)."""
        stamped = self._stamp(event)
        committed = self._sink.append_event(stamped, ack=True) if self._sink is not None else None
        self._fan_out(stamped)
        if committed is not None:
            await asyncio.shield(committed)
        return stamped

    def _stamp(self, event: Event) -> Event:
        stamped = dataclasses.replace(event, id=self._next_id, ts=time.time())
        self._next_id += 1
        self.published += 1
        return stamped

    def _fan_out(self, event: Event) -> None:
        slow: list[Subscription] = []
        for sub in self._subscribers:
            if not sub._offer(event):
                slow.append(sub)
        for sub in slow:
            self._subscribers.remove(sub)
            self.dropped_subscribers += 1
            logger.warning(
                "dropping slow subscriber %s: %d events queued, last delivered id %d",
                sub.name,
                sub.depth,
                sub.last_id,
            )
