"""A bench on its own event-loop thread, driven synchronously: for pytest and engineers' scripts.

``with BenchThread(load_bench(path)) as bench: bench.inject("ups-1", "delay", seconds=2)``
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from lab.bench import Bench
from lab.benchfile import BenchSpec
from lab.faults import FaultKind, FaultSpec

T = TypeVar("T")


class BenchThread:
    def __init__(self, spec: BenchSpec, *, seed: int | None = 0) -> None:
        self.spec = spec
        self._seed = seed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bench: Bench | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"bench-{spec.bench}", daemon=True)

    def __enter__(self) -> BenchThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 120.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"bench {self.spec.bench} did not come up in {timeout:.0f} s")
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with Bench(self.spec, seed=self._seed) as bench:
                self._bench = bench
                self._ready.set()
                await self._stop.wait()
        except BaseException as err:
            self._error = err
            self._ready.set()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the bench's loop and return its result."""
        assert self._loop is not None, "bench not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def bench(self) -> Bench:
        assert self._bench is not None, "bench not started"
        return self._bench

    # -- the bench's Python control API, thread-safe -------------------------------------

    def simulated(self, name: str) -> bool:
        return name in self.bench.sims

    def device_of_type(self, type_name: str) -> str | None:
        """The first device of the bench whose driver is ``type_name``."""
        for name, device in self.spec.devices.items():
            if device.driver.type == type_name:
                return name
        return None

    def site_transport(self, name: str) -> dict[str, Any]:
        return self.bench.site_transport(name)

    def describe(self, name: str | None = None) -> dict[str, Any]:
        async def get() -> dict[str, Any]:
            return self.bench.sim(name).describe() if name else self.bench.describe()

        return self.call(get())

    def state(self, name: str) -> dict[str, Any]:
        return dict(self.describe(name)["state"])

    def set_state(self, name: str, **values: Any) -> dict[str, Any]:
        return self.call(self.bench.set_state(name, values))

    def inject(self, name: str, kind: str | FaultKind, **params: Any) -> None:
        spec = FaultSpec(kind=FaultKind(kind), **params)

        async def go() -> None:
            self.bench.inject(name, spec)
            await asyncio.sleep(0.1)  # let the fault clock apply link changes

        self.call(go())

    def clear(self, name: str, kind: str | FaultKind | None = None) -> None:
        async def go() -> None:
            self.bench.clear(name, None if kind is None else FaultKind(kind))
            await asyncio.sleep(0.1)

        self.call(go())

    def reset(self) -> None:
        async def go() -> None:
            await self.bench.reset()
            await asyncio.sleep(0.1)

        self.call(go())
