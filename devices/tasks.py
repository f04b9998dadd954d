"""An owner for background tasks: keeps each one referenced, logs crashes, reaps them on close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TaskOwner:
    """Creates named tasks, keeps them alive, and cancels and awaits them all on :meth:`close`."""

    def __init__(
        self,
        log: logging.LoggerAdapter[logging.Logger] | logging.Logger,
        on_crash: Callable[[BaseException], None] | None = None,
    ) -> None:
        """``on_crash`` replaces the default (log it) for a task that ends with an error."""
        self._log = log
        self._on_crash = on_crash
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        return self.adopt(asyncio.get_running_loop().create_task(coro, name=name))

    def adopt(self, task: asyncio.Task[T]) -> asyncio.Task[T]:
        """Own a task created elsewhere (e.g. by ``asyncio.start_server`` for a client)."""
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        if self._on_crash is not None:
            self._on_crash(error)
        else:
            self._log.error("task %s crashed", task.get_name(), exc_info=error)

    def cancel_all(self) -> None:
        """Cancel every task without waiting (from a callback or a crash handler)."""
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    async def cancel(self, task: asyncio.Task[Any], grace: float = 1.0) -> None:
        """Cancel one task and wait (bounded) until it has finished."""
        if task is asyncio.current_task():
            return
        task.cancel()
        await asyncio.wait({task}, timeout=grace)

    async def close(self, grace: float = 1.5) -> None:
        """Cancel every task and wait (bounded) for all of them to finish."""
        current = asyncio.current_task()
        tasks = {t for t in self._tasks if t is not current}
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                self._log.warning("task %s did not stop within %.1f s", task.get_name(), grace)
