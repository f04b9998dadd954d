"""MQTT sensor feeds: subscribe to a broker, map topics to metrics, validate each message.

Messages go through a bounded inbox (a flood drops the newest and counts them, it never
grows memory or stalls the loop) to a worker that decodes them: a plain number or
``true``/``false``, or a field of a JSON object; the unit and the timestamp may come from
the payload and are checked. Every refusal has a reason (``not_json``, ``missing_field``,
``not_a_number``, ``wrong_unit``, ``bad_timestamp``, and the intake's own) and is counted.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiomqtt

from devices.tasks import TaskOwner
from monitoring.ingest import Intake
from monitoring.targets import MqttFeed, MqttSubscription

logger = logging.getLogger(__name__)

CHANNEL = "mqtt"
BATCH = 500  # messages handled before the worker yields to the loop
MAX_PAYLOAD = 65_536
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
T = TypeVar("T")


class Inbox(Generic[T]):
    """A bounded FIFO: ``offer`` never blocks; when full the new item is dropped, counted."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: collections.deque[T] = collections.deque()
        self._ready = asyncio.Event()
        self.dropped = 0
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: T) -> bool:
        if len(self._items) >= self.maxsize:
            self.dropped += 1
            return False
        self._items.append(item)
        self.high_water = max(self.high_water, len(self._items))
        self._ready.set()
        return True

    async def take(self, limit: int) -> list[T]:
        """Wait for at least one item; return up to ``limit`` of them, oldest first."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        out: list[T] = []
        while self._items and len(out) < limit:
            out.append(self._items.popleft())
        return out


@dataclass(frozen=True)
class Record:
    """A message decoded into sample fields (checked further by the intake)."""

    metric: str
    source: str
    value: Any
    ts: Any
    unit: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Refusal:
    source: str
    reason: str
    detail: str


class Route:
    """A compiled subscription: topic matching with wildcard captures, then decoding."""

    def __init__(self, subscription: MqttSubscription) -> None:
        self.sub = subscription
        self.levels = subscription.topic.split("/")

    def match(self, topic: str) -> list[str] | None:
        """The levels matched by ``+``/``#`` (``#`` as one text), or None when no match."""
        parts = topic.split("/")
        captures: list[str] = []
        for i, level in enumerate(self.levels):
            if level == "#":
                if i == 0 and parts and parts[0].startswith("$"):
                    return None  # $SYS topics do not match a leading wildcard
                captures.append("/".join(parts[i:]))
                return captures
            if i >= len(parts):
                return None
            if level == "+":
                if i == 0 and parts[0].startswith("$"):
                    return None
                captures.append(parts[i])
            elif level != parts[i]:
                return None
        return captures if len(parts) == len(self.levels) else None

    def fill(self, template: str, topic: str, captures: list[str]) -> str:
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            return topic if name == "topic" else captures[int(name) - 1]

        return _PLACEHOLDER.sub(sub, template)

    def decode(
        self, topic: str, captures: list[str], payload: bytes, arrival: float
    ) -> Record | Refusal:
        sub = self.sub
        source = self.fill(sub.source, topic, captures)
        if len(payload) > MAX_PAYLOAD:
            return Refusal(source, "too_large", f"{topic}: payload of {len(payload)} bytes")
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            return Refusal(source, "not_text", f"{topic}: payload is not UTF-8 (byte {err.start})")
        document: Any = None
        if sub.field is not None or sub.unit_field is not None or sub.ts_field is not None:
            try:
                document = json.loads(text)
            except ValueError as err:
                return Refusal(source, "not_json", f"{topic}: payload is not JSON: {err}")
            if not isinstance(document, dict):
                return Refusal(source, "not_json", f"{topic}: payload is not a JSON object")
        if sub.field is not None:
            found, value = _lookup(document, sub.field)
            if not found:
                return Refusal(source, "missing_field", f"{topic}: no field {sub.field!r}")
        else:
            value = _plain(text)
            if value is None:
                return Refusal(
                    source, "not_a_number", f"{topic}: payload {text[:40]!r} is not a number"
                )
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = value * sub.scale + sub.offset
        if sub.unit_field is not None:
            found, unit = _lookup(document, sub.unit_field)
            if not found:
                return Refusal(source, "missing_field", f"{topic}: no field {sub.unit_field!r}")
            if unit != sub.unit:
                return Refusal(
                    source,
                    "wrong_unit",
                    f"{topic}: unit {unit!r} but the subscription expects {sub.unit!r}",
                )
        ts: Any = arrival
        if sub.ts_field is not None:
            found, raw = _lookup(document, sub.ts_field)
            if not found:
                return Refusal(source, "missing_field", f"{topic}: no field {sub.ts_field!r}")
            ts = parse_timestamp(raw)
            if isinstance(ts, str):
                return Refusal(source, "bad_timestamp", f"{topic}: {ts}")
        labels = {k: self.fill(v, topic, captures) for k, v in sub.labels.items()}
        metric = self.fill(sub.metric, topic, captures)
        return Record(metric, source, value, ts, sub.unit, labels)


def _lookup(document: Any, path: str) -> tuple[bool, Any]:
    node = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _plain(text: str) -> float | bool | None:
    lowered = text.lower()
    if lowered in ("true", "on"):
        return True
    if lowered in ("false", "off"):
        return False
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_timestamp(raw: Any) -> float | str:
    """UNIX seconds, or ISO 8601 with a zone; a string result says what is wrong."""
    if isinstance(raw, bool):
        return f"timestamp must be UNIX seconds or ISO 8601, not {raw!r}"
    if isinstance(raw, int | float):
        if not math.isfinite(raw) or raw <= 0:
            return f"timestamp {raw!r} is not a time"
        if raw > 1e11:
            return f"timestamp {raw!r} looks like milliseconds (UNIX seconds expected)"
        return float(raw)
    if isinstance(raw, str):
        try:
            moment = datetime.datetime.fromisoformat(raw)
        except ValueError:
            return f"timestamp {raw[:40]!r} is not ISO 8601"
        if moment.tzinfo is None:
            return f"timestamp {raw[:40]!r} has no time zone"
        return moment.timestamp()
    return f"timestamp must be UNIX seconds or ISO 8601, not {type(raw).__name__}"


@dataclass
class MqttStats:
    received: int = 0
    unrouted: int = 0
    connects: int = 0
    connected: bool = False
    last_error: str = ""


class MqttIngest:
    """One broker connection (reconnected with back-off) feeding the intake."""

    def __init__(
        self,
        config: MqttFeed,
        intake: Intake,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.intake = intake
        self._clock = clock
        self._rng = rng or random.Random()
        self.routes = [Route(s) for s in config.subscriptions]
        self.inbox: Inbox[tuple[str, bytes, float]] = Inbox(config.queue)
        self.stats = MqttStats()
        self._tasks = TaskOwner(logger)
        self._subscribed = asyncio.Event()
        self.where = f"mqtt://{config.host}:{config.port}"

    async def start(self) -> None:
        self._tasks.spawn(self._connection(), "mqtt-connection")
        self._tasks.spawn(self._worker(), "mqtt-worker")

    async def stop(self) -> None:
        await self._tasks.close()
        self.stats.connected = False

    async def __aenter__(self) -> MqttIngest:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def subscribed(self, within: float) -> None:
        """Wait until the subscriptions are in place (tests, start-up checks)."""
        async with asyncio.timeout(within):
            await self._subscribed.wait()

    # -- connection --------------------------------------------------------------------------

    async def _connection(self) -> None:
        failures = 0
        down_since: float | None = None
        cfg = self.config
        while True:
            try:
                async with aiomqtt.Client(
                    cfg.host,
                    cfg.port,
                    username=cfg.username,
                    password=cfg.password.get_secret_value() if cfg.password else None,
                    identifier=cfg.client_id,
                    keepalive=cfg.keepalive,
                    timeout=10.0,
                    logger=logging.getLogger("monitoring.mqtt.client"),
                ) as client:
                    for sub in cfg.subscriptions:
                        await client.subscribe(sub.topic, qos=sub.qos)
                    self.stats.connects += 1
                    self.stats.connected = True
                    self.stats.last_error = ""
                    failures = 0
                    if down_since is not None:
                        logger.info(
                            "%s: subscribed again after %.0f s",
                            self.where,
                            time.monotonic() - down_since,
                        )
                        down_since = None
                    else:
                        logger.info(
                            "%s: subscribed to %d topic filter(s)",
                            self.where,
                            len(cfg.subscriptions),
                        )
                    self._subscribed.set()
                    async for message in client.messages:
                        self.stats.received += 1
                        payload = message.payload
                        data = payload if isinstance(payload, bytes) else str(payload).encode()
                        self.inbox.offer((message.topic.value, data, self._clock()))
            except aiomqtt.MqttError as err:
                self.stats.last_error = str(err)
            self.stats.connected = False
            self._subscribed.clear()
            if down_since is None:
                down_since = time.monotonic()
                logger.warning(
                    "%s: no connection (%s); retrying",
                    self.where,
                    self.stats.last_error or "closed",
                )
            failures += 1
            delay = min(cfg.backoff_max, 0.5 * 2 ** min(failures, 16))
            await asyncio.sleep(self._rng.uniform(delay / 2, delay))

    # -- decoding ----------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            for topic, payload, arrival in await self.inbox.take(BATCH):
                self.handle(topic, payload, arrival)
            await asyncio.sleep(0)  # a flood must not starve the rest of the hub

    def handle(self, topic: str, payload: bytes, arrival: float) -> bool:
        """One message: every matching subscription makes a record (True: one accepted)."""
        accepted = False
        routed = False
        for route in self.routes:
            captures = route.match(topic)
            if captures is None:
                continue
            routed = True
            result = route.decode(topic, captures, payload, arrival)
            if isinstance(result, Refusal):
                self.intake.refuse(CHANNEL, result.source, result.reason, result.detail)
                continue
            verdict = self.intake.record(
                result.metric,
                result.source,
                result.value,
                result.ts,
                result.unit,
                result.labels,
                channel=CHANNEL,
            )
            accepted = accepted or verdict.accepted
        if not routed:
            self.stats.unrouted += 1
        return accepted
