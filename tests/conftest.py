"""Shared pytest configuration: the ``--bench`` option and the lab bench fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.benchfile import BenchSpec, load_bench
from lab.harness import BenchThread

DEFAULT_BENCH = Path(__file__).resolve().parent.parent / "lab" / "benches" / "default.yaml"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench",
        type=Path,
        default=None,
        help="bench file for the lab scenario tests (default: lab/benches/default.yaml);"
        " devices marked 'simulated: false' are real hardware",
    )


@pytest.fixture(scope="session")
def bench_spec(request: pytest.FixtureRequest) -> BenchSpec:
    path: Path = request.config.getoption("--bench") or DEFAULT_BENCH
    if not path.exists():
        pytest.skip(f"bench file {path} is absent")
    return load_bench(path)


@pytest.fixture(scope="session")
def lab_bench(bench_spec: BenchSpec) -> Iterator[BenchThread]:
    """The bench, up for the whole session (simulators start once)."""
    with BenchThread(bench_spec, seed=1) as bench:
        yield bench


@pytest.fixture
def bench(lab_bench: BenchThread) -> Iterator[BenchThread]:
    """The session's bench, back to its initial state and fault-free after each test."""
    yield lab_bench
    lab_bench.reset()
