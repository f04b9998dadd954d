"""Benchmark: the warning core's evaluation cost and its sample-to-alarm-event latency.

Run:  .venv/bin/python bench/warning_core.py          (figures beside the targets of issue 7
                                                        and bench/warning_core_reference.json)
      .venv/bin/python bench/warning_core.py --save   (makes this run the new reference)

1. Load: ``--metrics`` series (threshold with hysteresis, consecutive breaches, staleness,
   flap detection; 1 % of them crossing their threshold each second) fed once per simulated
   second, plus one ``tick()``; the CPU time per simulated second is the share of one core.
2. Latency: a sample that raises or clears an alarm, from ``submit()`` to the moment a bus
   subscriber holds the ``alarm.state`` event (through the hub's AlarmService, a real
   SQLite store and the event bus), p50/p99 over ``--transitions`` transitions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.alarms import AlarmService  # noqa: E402
from hub.bus import EventBus  # noqa: E402
from hub.config import SiteConfig  # noqa: E402
from hub.events import AlarmStateChanged  # noqa: E402
from hub.store import SqliteStore  # noqa: E402
from monitoring.actions import ActionRegistry, ActionRunner  # noqa: E402
from monitoring.config import AlarmPolicy, Rule  # noqa: E402
from monitoring.warning import WarningCore  # noqa: E402

REFERENCE = ROOT / "bench" / "warning_core_reference.json"
TARGETS = {"load_core_percent": 20.0, "latency_p99_ms": 5.0}
RULES = [
    {"id": "hot", "metric": "room.temperature", "above": 35, "clear": 30, "unit": "C",
     "consecutive": 2, "stale_after": 30},
    {"id": "hot-rate", "metric": "room.temperature", "of": "rate", "above": 5, "unit": "C"},
]  # fmt: skip


class Quiet:
    """A sink that only counts (the load test measures the core, not the store)."""

    def __init__(self) -> None:
        self.transitions = 0
        self.updates = 0

    def transition(self, transition: Any) -> None:
        self.transitions += 1

    def updated(self, alarm: Any) -> None:
        self.updates += 1

    def action_result(self, result: Any) -> None:
        pass


async def notify(request: Any) -> str:
    return "counted"


async def load(metrics: int, seconds: int) -> dict[str, float]:
    now = [1_800_000_000.0]
    sink = Quiet()
    registry = ActionRegistry()
    registry.register("notify", notify)
    runner = ActionRunner(registry, sink.action_result, clock=lambda: now[0])
    core = WarningCore(
        [Rule.model_validate(r) for r in RULES],
        AlarmPolicy(),
        sink=sink,
        actions=runner,
        clock=lambda: now[0],
    )
    sources = [f"sensor-{i}" for i in range(metrics)]
    hot_every = 100  # 1 % of the series are above their threshold in any second
    cpu: list[float] = []
    for second in range(seconds + 1):
        started = time.process_time()
        for i, source in enumerate(sources):
            value = 40.0 if (i + second) % hot_every == 0 else 22.0 + (i % 5)
            core.submit("room.temperature", source, value, now[0], "C")
        core.tick()
        elapsed = time.process_time() - started
        if second:  # the first second builds the series
            cpu.append(elapsed)
        now[0] += 1.0
        await asyncio.sleep(0)
    await runner.drain()
    await runner.close()
    return {
        "load_metrics": float(metrics),
        "load_core_percent": 100.0 * statistics.mean(cpu),
        "load_core_percent_max": 100.0 * max(cpu),
        "load_samples_per_s_one_core": metrics / statistics.mean(cpu),
        "load_transitions": float(sink.transitions),
    }


async def latency(transitions: int) -> dict[str, float]:
    rule = {"id": "on-battery", "metric": "ups.on_battery", "above": 1, "actions": []}
    # toggling on purpose: keep flap detection out of the way of the measurement
    site = SiteConfig.model_validate(
        {"rules": [rule], "alarm": {"flap": {"changes": 1_000_000, "window": 1}}}
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db", synchronous="NORMAL")
        bus = EventBus(sink=store)
        await store.open()
        service = AlarmService(site, bus, store)
        await service.start()
        subscription = bus.subscribe("bench", maxsize=transitions + 10)
        samples: list[float] = []
        try:
            for i in range(transitions):
                started = time.perf_counter()
                service.core.submit("ups.on_battery", "ups-1", i % 2 == 0, time.time())
                while True:
                    event = await subscription.get()
                    if isinstance(event, AlarmStateChanged) and event.cause in (
                        "activate",
                        "clear",
                    ):
                        break
                samples.append((time.perf_counter() - started) * 1000.0)
                if i % 2 == 1:  # acknowledge each cleared alarm so that it can start over
                    await service.ack("on-battery@ups-1", "bench", "")
        finally:
            subscription.close()
            await service.stop()
            bus.close_all()
            await store.close()
    samples.sort()
    return {
        "latency_p50_ms": samples[len(samples) // 2],
        "latency_p99_ms": samples[int(len(samples) * 0.99) - 1],
        "latency_max_ms": samples[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--transitions", type=int, default=2000)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(load(args.metrics, args.seconds))
    figures |= asyncio.run(latency(args.transitions))
    reference = json.loads(REFERENCE.read_text())["figures"] if REFERENCE.exists() else {}
    print(f"warning core on {platform.python_implementation()} {platform.python_version()}")
    print(f"{'figure':32} {'this run':>12} {'target':>10} {'reference':>10}")
    for name, value in figures.items():
        target = TARGETS.get(name)
        ref = reference.get(name)
        verdict = "" if target is None else (" ok" if value <= target else " OVER")
        print(
            f"{name:32} {value:12.3f} {'' if target is None else f'<= {target:g}':>10}"
            f" {'' if ref is None else f'{ref:.3f}':>10}{verdict}"
        )
    if args.save:
        REFERENCE.write_text(
            json.dumps(
                {"when": time.strftime("%Y-%m-%d"), "args": vars(args), "figures": figures},
                indent=2,
            )
            + "\n"
        )
        print(f"saved as the reference: {REFERENCE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
