"""Action steps of alarms: a registry of action kinds and a runner that carries them out.

The warning core only asks for a step (``ActionRequest``); handlers registered by kind do
the work. ``webhook`` is built in; ``notify`` and ``plan`` are registered by the hub (they
publish bus events); ``trap`` and ``sms`` are registered by their subsystems when present.
A step whose kind has no handler is reported as failed, never dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from devices.tasks import TaskOwner
from monitoring.alarms import AlarmSnapshot
from monitoring.config import ActionStep, WebhookPolicy
from monitoring.errors import ActionFailed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionRequest:
    """Step ``index`` of an alarm's steps is due."""

    alarm: AlarmSnapshot
    step: ActionStep
    index: int
    ts: float


@dataclass(frozen=True)
class ActionResult:
    request: ActionRequest
    ok: bool
    detail: str
    ts: float


class ActionHandler(Protocol):
    def __call__(self, request: ActionRequest) -> Awaitable[str]:
        """Carry out the step; return a short account, or raise ``ActionFailed``."""


class ActionRegistry:
    """Action kinds by name (``notify``, ``webhook``, ``trap``, ``plan``, ``sms``)."""

    def __init__(self) -> None:
        self._handlers: dict[str, ActionHandler] = {}

    def register(self, kind: str, handler: ActionHandler) -> None:
        if kind in self._handlers:
            raise ValueError(f"action kind {kind!r} is already registered")
        self._handlers[kind] = handler

    def get(self, kind: str) -> ActionHandler | None:
        return self._handlers.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._handlers)


class ActionRunner:
    """Runs requested steps as owned tasks and reports each result (never raises)."""

    def __init__(
        self,
        registry: ActionRegistry,
        on_result: Callable[[ActionResult], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self._on_result = on_result
        self._clock = clock
        self._tasks = TaskOwner(logger)
        self._inflight: set[asyncio.Task[None]] = set()
        self.done = 0
        self.failed = 0

    def submit(self, request: ActionRequest) -> None:
        handler = self.registry.get(request.step.do)
        if handler is None:
            legal = ", ".join(self.registry.kinds()) or "none"
            self._report(request, False, f"no handler for {request.step.do!r} (available: {legal})")
            return
        name = f"action-{request.step.do}-{request.alarm.id}"
        task = self._tasks.spawn(self._run(handler, request), name)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _run(self, handler: ActionHandler, request: ActionRequest) -> None:
        try:
            detail = await handler(request)
        except ActionFailed as err:
            self._report(request, False, str(err))
        except Exception as err:  # a handler bug must not take the core down
            logger.exception("action %s for %s crashed", request.step.do, request.alarm.id)
            self._report(request, False, f"handler error: {type(err).__name__}: {err}")
        else:
            self._report(request, True, detail)

    def _report(self, request: ActionRequest, ok: bool, detail: str) -> None:
        if ok:
            self.done += 1
        else:
            self.failed += 1
            logger.warning(
                "[alarm=%s] step %d (%s) failed: %s",
                request.alarm.id,
                request.index,
                request.step.do,
                detail,
            )
        try:
            self._on_result(ActionResult(request, ok, detail, self._clock()))
        except Exception:
            logger.exception("recording the result of an action failed")

    async def drain(self) -> None:
        """Wait until every step in flight has finished (tests, orderly shutdown)."""
        while self._inflight:
            await asyncio.wait(set(self._inflight))

    async def close(self) -> None:
        await self._tasks.close()


class WebhookAction:
    """POST the alarm as JSON; retry connection failures, timeouts and 5xx with back-off."""

    def __init__(self, policy: WebhookPolicy, *, origin: str = "cchub") -> None:
        self.policy = policy
        self.origin = origin
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.policy.timeout, follow_redirects=False, trust_env=False
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def body(self, request: ActionRequest) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "step": request.index,
            "requested": request.ts,
            "alarm": request.alarm.to_dict(),
        }

    async def __call__(self, request: ActionRequest) -> str:
        url = request.step.url
        if url is None:
            raise ActionFailed("webhook step without a url")
        body = self.body(request)
        delay = self.policy.backoff
        problem = ""
        for attempt in range(1, self.policy.attempts + 1):
            try:
                response = await self._http().post(url, json=body)
            except httpx.HTTPError as err:
                problem = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            else:
                if response.status_code < 300:
                    return f"HTTP {response.status_code} after {attempt} attempt(s)"
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    raise ActionFailed(f"{url}: {problem} (not retried)")
            if attempt < self.policy.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        raise ActionFailed(f"{url}: {problem} after {self.policy.attempts} attempt(s)")
