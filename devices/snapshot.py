"""The immutable, typed state snapshot every device publishes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def freeze(value: Any) -> Any:
    """Deep-freeze plain containers: dicts become read-only mappings, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Inverse of :func:`freeze`: plain dicts and lists, ready for JSON."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class DeviceSnapshot:
    """What the hub knows about a device; a new object is published on every change.

    ``online`` is derived from the link (connected and answering); ``error`` is the reason
    of the last failure ("" when healthy); ``updated`` is the wall-clock time of the change.
    """

    id: str
    type: str
    online: bool
    state: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    error: str = ""
    updated: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", freeze(self.state))

    def same_as(self, other: DeviceSnapshot | None) -> bool:
        """Equal in everything but the ``updated`` time."""
        return (
            other is not None
            and self.online == other.online
            and self.error == other.error
            and self.type == other.type
            and self.id == other.id
            and thaw(self.state) == thaw(other.state)
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready plain dict."""
        return {
            "id": self.id,
            "type": self.type,
            "online": self.online,
            "state": thaw(self.state),
            "error": self.error,
            "updated": self.updated,
        }
