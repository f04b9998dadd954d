"""Helpers for the producer tests: a recording feed, an intake on a real warning core, and
waiting for things without sleeping blindly."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from monitoring.ingest import Intake
from monitoring.samples import Occurrence, Sample
from monitoring.series import SeriesStore
from monitoring.targets import SeriesPolicy
from tests.monitoring.harness import Rig


class Recorder:
    """A feed that keeps everything (a coordinator's output as it is)."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.occurrences: list[Occurrence] = []

    def sample(self, sample: Sample) -> bool:
        self.samples.append(sample)
        return True

    def occur(self, occurrence: Occurrence) -> None:
        self.occurrences.append(occurrence)

    def latest(self, metric: str, **labels: str) -> Sample:
        for sample in reversed(self.samples):
            if sample.metric == metric and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                return sample
        raise AssertionError(f"no sample of {metric} {labels} in {len(self.samples)} samples")

    def metrics(self) -> set[str]:
        return {s.metric for s in self.samples}


def wired(rules: Sequence[dict[str, Any]], **rig: Any) -> tuple[Rig, Intake]:
    """A warning core on the hand clock with the intake (and series) in front of it."""
    core = Rig(rules, **rig)
    series = SeriesStore(SeriesPolicy(), clock=core.clock)
    return core, Intake(core.core, series, clock=core.clock)


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], within: float = 10.0, every: float = 0.02
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(every)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def run(*argv: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    """Run a program to completion (bounded); its output, or an AssertionError."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(stdin), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{argv[0]} did not finish") from None
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{' '.join(argv)} failed ({proc.returncode}): {text}"
    return text
