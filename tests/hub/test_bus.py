"""The event bus: ids, fan-out, and dropping a slow subscriber without blocking."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hub.bus import EventBus, SubscriberDropped
from hub.events import DutyNoteAdded, HubStarted


def note(text: str) -> DutyNoteAdded:
    return DutyNoteAdded(author="tester", text=text)


async def test_ids_are_monotonic_and_stamped() -> None:
    bus = EventBus()
    bus.continue_from(41)
    first = bus.publish(note("a"))
    second = bus.publish(HubStarted(version="1", site="s"))
    assert (first.id, second.id) == (42, 43)
    assert 0 < first.ts <= second.ts
    assert bus.last_id == 43
    with pytest.raises(RuntimeError):
        bus.continue_from(100)


async def test_subscribers_get_events_in_order_with_filter() -> None:
    bus = EventBus()
    everything = bus.subscribe("all")
    notes = bus.subscribe("notes", accept=lambda e: e.kind.startswith("duty."))
    bus.publish(note("1"))
    bus.publish(HubStarted(version="1", site="s"))
    bus.publish(note("2"))
    assert [e.id for e in [await everything.get() for _ in range(3)]] == [1, 2, 3]
    got = [await notes.get(), await notes.get()]
    assert [e.text for e in got if isinstance(e, DutyNoteAdded)] == ["1", "2"]
    assert notes.get_nowait() is None


async def test_slow_subscriber_is_dropped_and_others_unaffected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    slow = bus.subscribe("slow", maxsize=5)
    fast = bus.subscribe("fast", maxsize=1000)
    received: list[int] = []

    async def consume() -> None:
        async for event in fast:
            received.append(event.id)
            if event.id == 50:
                return

    consumer = asyncio.create_task(consume())
    with caplog.at_level(logging.WARNING, logger="hub.bus"):
        for i in range(50):
            bus.publish(note(str(i)))  # never blocks, even with a stuck subscriber
    await asyncio.wait_for(consumer, 2)
    assert received == list(range(1, 51))
    assert bus.subscriber_count == 1
    assert bus.dropped_subscribers == 1
    assert any("dropping slow subscriber slow" in r.getMessage() for r in caplog.records)
    # The dropped subscriber still gets what it had queued, then learns where to resume.
    delivered = [(await slow.get()).id for _ in range(5)]
    assert delivered == [1, 2, 3, 4, 5]
    with pytest.raises(SubscriberDropped) as dropped:
        await slow.get()
    assert dropped.value.last_id == 5


async def test_closed_subscription_ends_iteration() -> None:
    bus = EventBus()
    sub = bus.subscribe("x")

    async def drain() -> list[int]:
        return [e.id async for e in sub]

    task = asyncio.create_task(drain())
    bus.publish(note("a"))
    await asyncio.sleep(0)
    sub.close()
    assert await asyncio.wait_for(task, 1) == [1]
    assert bus.subscriber_count == 0
