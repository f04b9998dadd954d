"""Simulator registry: each simulator registers under the site-file ``type:`` of its device."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from lab.simulator import Simulator

S = TypeVar("S", bound="type[Simulator]")

_SIMULATORS: dict[str, type[Simulator]] = {}


def register(type_name: str) -> Callable[[S], S]:
    """Class decorator: the simulator answers for devices of ``type: <type_name>``."""

    def wrap(cls: S) -> S:
        existing = _SIMULATORS.get(type_name)
        if existing is not None and existing is not cls:
            raise TypeError(f"simulator type {type_name!r} already registered by {existing!r}")
        cls.type_name = type_name
        _SIMULATORS[type_name] = cls
        return cls

    return wrap


def _load_builtin() -> None:
    import lab.sims  # noqa: F401


def simulator_types() -> list[str]:
    _load_builtin()
    return sorted(_SIMULATORS)


def simulator_for(type_name: str) -> type[Simulator]:
    _load_builtin()
    try:
        return _SIMULATORS[type_name]
    except KeyError:
        legal = ", ".join(sorted(_SIMULATORS))
        raise KeyError(f"unknown simulator type {type_name!r} (legal types: {legal})") from None
