"""Splicing controllers for the declarative driver: one simulator, a hand-written dialect each.

The dialects (``declarative_ascii``, ``declarative_hex``) parse their vendor's frames
themselves, without the template engine, so the tests prove the engine against an
independent implementation. The bench picks the dialect from ``driver.options.profile``.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lab.registry import register
from lab.sims.streams import Session, SessionOutbox, StreamSimulator, _Conversation
from lab.simulator import SimState, SimStatus

MAX_SCENES = 64


class Window(BaseModel):
    """One window on the wall: the input it shows and where (wall pixels)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: int = Field(ge=1)
    x: int = Field(0, ge=0, le=65535)
    y: int = Field(0, ge=0, le=65535)
    w: int = Field(1920, ge=1, le=65535)
    h: int = Field(1080, ge=1, le=65535)


def _quad(*sources: int) -> dict[int, Window]:
    spots = [(0, 0), (1920, 0), (0, 1080), (1920, 1080)]
    return {
        i + 1: Window(source=s, x=x, y=y)
        for i, (s, (x, y)) in enumerate(zip(sources, spots, strict=False))
    }


def _default_scenes() -> dict[int, dict[int, Window]]:
    return {
        1: _quad(1, 2, 3, 4),  # day: four cameras
        2: {1: Window(source=5, w=3840, h=2160)},  # flood: the GIS map full wall
        3: {1: Window(source=6, w=3840, h=1080), 2: Window(source=7, y=1080, w=3840)},
    }


class WallState(SimState):
    model: str = "LCD splicing controller (2x2 of 1920x1080)"
    address: int = Field(1, ge=0, le=255, description="hex dialect: DIP-switch address")
    inputs: int = Field(16, ge=1, le=99)
    outputs: int = Field(4, ge=1, le=99, description="monitor outputs of the built-in matrix")
    max_windows: int = Field(16, ge=1, le=99)
    scenes: dict[int, dict[int, Window]] = Field(default_factory=_default_scenes)
    scene: int = Field(0, ge=0, le=MAX_SCENES, description="scene on the wall, 0 = none")
    windows: dict[int, Window] = {}
    ties: dict[int, int] = Field({}, description="output -> input, 0 = nothing")
    locked: bool = Field(False, description="front panel locked: changes are refused")

    @model_validator(mode="after")
    def _in_range(self) -> WallState:
        for number in self.scenes:
            if not 1 <= number <= MAX_SCENES:
                raise ValueError(f"scene {number} is outside 1..{MAX_SCENES}")
        if self.scene and self.scene not in self.scenes:
            raise ValueError(f"scene {self.scene} is not stored")
        for number, window in self.windows.items():
            if not 1 <= number <= self.max_windows or window.source > self.inputs:
                raise ValueError(f"window {number} (input {window.source}) does not fit")
        for output, source in self.ties.items():
            if not 1 <= output <= self.outputs or not 0 <= source <= self.inputs:
                raise ValueError(f"tie {source}->{output} is outside {self.inputs}x{self.outputs}")
        return self


class Refused(Exception):
    """The device refuses a command with its own error ``code``."""

    def __init__(self, code: str | int) -> None:
        super().__init__(code)
        self.code = code


class Dialect(abc.ABC):
    """One vendor's wire format; one instance per connection (it keeps the framing state)."""

    # the vendor's error codes for a window number outside the wall, and a closed window
    OUT_OF_RANGE: ClassVar[str | int]
    NOT_OPEN: ClassVar[str | int]

    def window_number(self, window: int, state: WallState) -> None:
        if not 1 <= window <= state.max_windows:
            raise Refused(self.OUT_OF_RANGE)

    def open_window(self, window: int, state: WallState) -> Window:
        self.window_number(window, state)
        shown = state.windows.get(window)
        if shown is None:
            raise Refused(self.NOT_OPEN)
        return shown

    @abc.abstractmethod
    def feed(self, data: bytes, state: WallState, error: str | None = None) -> list[bytes]:
        """Bytes from the host in, replies out; ``error`` answers every command with it."""

    @abc.abstractmethod
    def reports(self, state: WallState, old: WallState) -> list[bytes]:
        """Unsolicited frames for a front-panel change from ``old`` to ``state``."""


D = TypeVar("D", bound=type[Dialect])
_DIALECTS: dict[str, type[Dialect]] = {}


def dialect(profile: str) -> Callable[[D], D]:
    """Class decorator: the dialect that answers for devices using ``profile``."""

    def wrap(cls: D) -> D:
        _DIALECTS[profile] = cls
        return cls

    return wrap


def dialect_for(profile: str) -> type[Dialect]:
    name = Path(profile).name.removesuffix(".yaml")
    try:
        return _DIALECTS[name]
    except KeyError:
        legal = ", ".join(sorted(_DIALECTS))
        raise ValueError(f"no simulator speaks profile {profile!r} (simulated: {legal})") from None


class _WallSession(Session):
    """One conversation (a TCP client, the serial line, a UDP peer) in the device's dialect."""

    def __init__(self, sim: DeclarativeWallSimulator, outbox: SessionOutbox) -> None:
        super().__init__(sim, outbox)
        self.wall = sim
        self.dialect = sim.dialect_class()()

    def received(self, data: bytes) -> None:
        sim = self.wall
        sim.check_crash()
        old = sim.state.model_copy(deep=True)
        for reply in self.dialect.feed(data, sim.state, sim.faults.error_code("05")):
            self.send(reply)
        if sim.state.scene != old.scene:
            # a recall from one client shows on the others, as a front-panel one would
            for session in sim.wall_sessions():
                if session is not self:
                    for frame in session.dialect.reports(sim.state, old):
                        session.send(frame)


class _UdpWall(asyncio.DatagramProtocol):
    def __init__(self, sim: DeclarativeWallSimulator) -> None:
        self.sim = sim

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.sim.datagram(data, addr)
        except Exception as err:  # loop boundary: this controller crashes, the bench goes on
            self.sim.crashed(err)


@register("declarative")
class DeclarativeWallSimulator(StreamSimulator):
    """The controller on TCP (every client gets front-panel reports), a pty, or UDP."""

    resource_kinds = ("tcp", "pty", "udp")
    state_model = WallState
    state: WallState

    _udp: asyncio.DatagramTransport | None = None

    def dialect_class(self) -> type[Dialect]:
        return dialect_for(str(self.device.driver.options.get("profile", "")))

    def new_session(self, outbox: SessionOutbox) -> Session:
        return _WallSession(self, outbox)

    def wall_sessions(self) -> list[_WallSession]:
        return [s for s in self.sessions() if isinstance(s, _WallSession)]

    # -- UDP: one session per peer address ------------------------------------------------

    async def _open(self) -> None:
        self.dialect_class()  # fail the start (reported) for a profile nobody simulates
        if self.kind != "udp":
            await super()._open()
            return
        self._conversations = {}
        self.host = getattr(self.device.resource, "host", "127.0.0.1")
        self.port = getattr(self.device.resource, "port", 0)
        await self._bind()

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpWall(self), local_addr=(self.host, self.port)
        )
        self._udp = transport
        self.port = transport.get_extra_info("sockname")[1]

    async def _close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        await super()._close()

    async def _on_link(self, down: bool) -> None:
        if self.kind != "udp":
            await super()._on_link(down)
        elif down and self._udp is not None:
            self._udp.close()  # the port is closed: the hub gets ICMP unreachable
            self._udp = None
        elif not down and self._udp is None:
            await self._bind()

    def site_transport(self) -> dict[str, Any]:
        if self.kind == "udp":
            return {"kind": "udp", "host": self.host, "port": self.port}
        return super().site_transport()

    def datagram(self, data: bytes, addr: Any) -> None:
        udp = self._udp
        if self.faults.silent() or self.link_down or udp is None:
            return
        conversation = self._conversations.get(addr)
        if conversation is None:

            def send(datagram: bytes) -> None:
                if not udp.is_closing():
                    udp.sendto(datagram, addr)

            outbox = SessionOutbox(self, send, lambda: None)
            self.spawn(outbox.run(), f"udp writer {addr}")
            conversation = _Conversation(self.new_session(outbox), None, lambda: None)
            self._conversations[addr] = conversation
        conversation.session.received(data)

    # -- front panel ----------------------------------------------------------------------

    def set_state(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """As the base; a ``scene`` without ``windows`` is a front-panel recall of that scene."""
        snapshot = super().set_state(values)
        if values.get("scene") and "windows" not in values:
            self.state.windows = dict(self.state.scenes[self.state.scene])
            snapshot = self.snapshot()
        return snapshot

    def _state_changed(self, changed: set[str], old: SimState) -> None:
        if self.status is not SimStatus.RUNNING or not isinstance(old, WallState):
            return
        if self.faults.silent() or self.link_down:
            return
        for session in self.wall_sessions():
            for frame in session.dialect.reports(self.state, old):
                session.send(frame)


__all__ = ["DeclarativeWallSimulator", "Dialect", "WallState", "Window", "dialect", "dialect_for"]
