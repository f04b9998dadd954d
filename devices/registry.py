"""Device driver registry: drivers register under their site-file ``type:`` name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_DRIVERS: dict[str, type[Any]] = {}


def register(type_name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: make a driver available as ``type: <type_name>`` in the site file."""

    def wrap(cls: type[T]) -> type[T]:
        existing = _DRIVERS.get(type_name)
        if existing is not None and existing is not cls:
            raise TypeError(f"device type {type_name!r} already registered by {existing!r}")
        _DRIVERS[type_name] = cls
        return cls

    return wrap


def _load_builtin() -> None:
    """Import the packaged drivers so that they register (idempotent)."""
    import devices.drivers  # noqa: F401


def known_types() -> list[str]:
    _load_builtin()
    return sorted(_DRIVERS)


def driver_for(type_name: str) -> type[Any]:
    _load_builtin()
    try:
        return _DRIVERS[type_name]
    except KeyError:
        raise KeyError(
            f"unknown device type {type_name!r} (legal types: {', '.join(sorted(_DRIVERS))})"
        ) from None
