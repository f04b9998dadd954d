"""Fault injection shared by every simulator: what is injected, and the pure rules that apply it.

No I/O here: a simulator asks the ``FaultInjector`` what to do with each reply and link state.
"""

from __future__ import annotations

import enum
import logging
import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)


class FaultKind(enum.StrEnum):
    DISCONNECT = "disconnect"  # drop live connections; serial/UDP: the cable is pulled (silent)
    REFUSE = "refuse"  # listener closed / port unreachable / radio in standby
    DELAY = "delay"  # every reply waits ``seconds``
    DROP = "drop"  # each outgoing byte (datagram for UDP) lost with probability ``rate``
    GARBLE = "garble"  # each outgoing byte bit-flipped with probability ``rate``
    ERROR = "error"  # every command answered with the device's error ``code``
    FLAP = "flap"  # link alternates down ``down`` s / up ``up`` s (down = refuse + disconnect)
    CRASH = "crash"  # the simulator raises on its next request (tests crash reporting)


class FaultSpec(BaseModel):
    """One fault as written in a scenario file or sent to the control API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    seconds: float = Field(0.5, ge=0, le=60, description="delay: added to each reply")
    rate: float = Field(1.0, ge=0, le=1, description="drop/garble: probability per byte")
    code: str | None = Field(None, description="error: device error code, e.g. E13 or ?")
    up: float = Field(1.0, gt=0, le=3600, description="flap: seconds the link stays up")
    down: float = Field(1.0, gt=0, le=3600, description="flap: seconds the link stays down")
    duration: float | None = Field(None, gt=0, description="clear by itself after this")


@dataclass(frozen=True)
class ActiveFault:
    spec: FaultSpec
    since: float
    expires: float | None


class FaultInjector:
    """Active faults of one simulator; callers pass ``now`` (monotonic seconds)."""

    def __init__(self, name: str, seed: int | None = None) -> None:
        self.name = name
        self._active: dict[FaultKind, ActiveFault] = {}
        self._rng = random.Random(seed)

    def inject(self, spec: FaultSpec, now: float) -> None:
        expires = now + spec.duration if spec.duration is not None else None
        self._active[spec.kind] = ActiveFault(spec, now, expires)
        logger.info("[sim=%s] fault injected: %s", self.name, spec.model_dump(exclude_none=True))

    def clear(self, kind: FaultKind | None = None) -> None:
        kinds = list(self._active) if kind is None else [kind]
        for k in kinds:
            if self._active.pop(k, None) is not None:
                logger.info("[sim=%s] fault cleared: %s", self.name, k.value)

    def expire(self, now: float) -> list[FaultKind]:
        """Drop faults whose duration is over; return their kinds."""
        gone = [k for k, f in self._active.items() if f.expires is not None and now >= f.expires]
        for kind in gone:
            self.clear(kind)
        return gone

    def get(self, kind: FaultKind) -> FaultSpec | None:
        fault = self._active.get(kind)
        return fault.spec if fault else None

    def active(self) -> list[FaultSpec]:
        return [f.spec for f in self._active.values()]

    def link_down(self, now: float) -> bool:
        """True while ``refuse`` is active or a ``flap`` is in its down phase."""
        if FaultKind.REFUSE in self._active:
            return True
        flap = self._active.get(FaultKind.FLAP)
        if flap is None:
            return False
        period = flap.spec.up + flap.spec.down
        return (now - flap.since) % period < flap.spec.down

    def silent(self) -> bool:
        """``disconnect`` on a connectionless link: nothing goes in or out."""
        return FaultKind.DISCONNECT in self._active

    def reply_delay(self) -> float:
        delay = self._active.get(FaultKind.DELAY)
        return delay.spec.seconds if delay else 0.0

    def error_code(self, default: str) -> str | None:
        error = self._active.get(FaultKind.ERROR)
        if error is None:
            return None
        return error.spec.code or default

    def crash_pending(self) -> bool:
        return FaultKind.CRASH in self._active

    def mangle(self, data: bytes, *, per_datagram: bool = False) -> bytes:
        """Apply ``drop`` and ``garble`` to outgoing bytes (or to a whole datagram)."""
        drop = self._active.get(FaultKind.DROP)
        if drop is not None:
            rate = drop.spec.rate
            if per_datagram:
                if self._rng.random() < rate:
                    return b""
            else:
                data = bytes(b for b in data if self._rng.random() >= rate)
        garble = self._active.get(FaultKind.GARBLE)
        if garble is not None and data:
            rate = garble.spec.rate
            out = bytearray(data)
            for i in range(len(out)):
                if self._rng.random() < rate:
                    out[i] ^= 1 << self._rng.randrange(8)
            data = bytes(out)
        return data
