"""An owner for background tasks: keeps each one referenced, logs crashes, reaps them on close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TaskOwner:
    """Creates named tasks, keeps them alive, and cancels and awaits them all on :meth:`close`."""

    def __init__(self, log: logging.LoggerAdapter[logging.Logger] | logging.Logger) -> None:
        self._log = log
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._log.error("task %s crashed", task.get_name(), exc_info=error)

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
