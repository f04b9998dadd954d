"""Barco Event Master video wall (``type: barco-eventmaster``): JSON-RPC over HTTP, port 9999.

The wall is one screen destination (``options.destination``); layouts are the processor's
presets and windows are that destination's layers (those on program). ``layout`` is the
preset last recalled through the hub: the JSON-RPC API does not report which one is live.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import Field

from devices.base import Device, DeviceOptions
from devices.capabilities import (
    CapabilityCommand,
    CloseWindow,
    MoveWindow,
    OpenWindow,
    RecallLayout,
    SetSource,
    VideoWall,
    validate_command,
)
from devices.config import DeviceConfig, HttpTransport, TcpTransport
from devices.errors import (
    DeviceCommandError,
    DeviceConfigError,
    DeviceTimeout,
    DeviceUnavailable,
    InvalidCommand,
)
from devices.registry import register
from devices.snapshot import thaw
from protocols import barco_eventmaster as em

Call = tuple[str, dict[str, Any]]


class EventMasterOptions(DeviceOptions):
    destination: int = Field(0, ge=0, le=999, description="the screen destination of the wall")
    recall_to: Literal["program", "preview"] = Field(
        "program", description="where recall_layout puts a preset"
    )


@dataclass(frozen=True)
class WallCall:
    """A validated command and the JSON-RPC call that carries it out."""

    command: CapabilityCommand
    call: Call


def endpoint(config: DeviceConfig) -> str:
    """The JSON-RPC URL: ``http://host:9999/jsonrpc`` from an http URL or a tcp host/port."""
    transport = config.transport
    if isinstance(transport, TcpTransport):
        return f"http://{transport.host}:{transport.port}{em.PATH}"
    if isinstance(transport, HttpTransport):
        parts = urlsplit(transport.url)
        if parts.path in ("", "/"):
            return f"{parts.scheme}://{parts.netloc}{em.PATH}"
        return transport.url
    raise DeviceConfigError(
        f"device {config.id!r} (barco-eventmaster) needs an http (or tcp) transport,"
        f" not {transport.kind!r}"
    )


@register("barco-eventmaster")
class EventMasterWall(Device[WallCall]):
    """State: ``layout``, ``layouts`` (presets), ``windows`` (program layers), ``sources``."""

    Options = EventMasterOptions
    options: EventMasterOptions
    capabilities = (VideoWall,)

    def __init__(self, config: DeviceConfig) -> None:
        super().__init__(config)
        self.url = endpoint(config)
        self._http: httpx.AsyncClient | None = None
        self._ids = itertools.count(1)
        self._layout: str | None = None
        self._sources: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._destination: em.ScreenDestination | None = None

    # --- the link ------------------------------------------------------------------------

    async def _connect(self) -> None:
        # one keep-alive HTTP connection; the first poll proves the processor answers
        self._http = httpx.AsyncClient(timeout=self.config.timeout)
        self._destination = None

    async def _disconnect(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def _call(self, call: Call) -> Any:
        """One JSON-RPC call, resent after a timeout or a garbled answer (retry policy)."""
        method, params = call
        problem = ""
        for attempt in range(1, self.retry.attempts + 1):
            http = self._http
            if http is None or self._lost.is_set():
                raise DeviceUnavailable(self._lost_reason or f"device {self.id} is not connected")
            request = em.Request(method, params, str(next(self._ids)))
            try:
                reply = await http.post(
                    self.url, content=bytes(request), headers={"Content-Type": "application/json"}
                )
            except httpx.TimeoutException:
                problem = f"no answer to {method} within {self.config.timeout:g} s"
            except httpx.HTTPError as err:
                reason = f"{method}: {type(err).__name__}: {err}".rstrip(": ")
                self._link_lost(reason)
                raise DeviceUnavailable(f"device {self.id}: {reason}") from err
            else:
                if reply.status_code != 200:
                    reason = f"{method}: HTTP {reply.status_code} from {self.url}"
                    self._link_lost(reason)
                    raise DeviceUnavailable(f"device {self.id}: {reason}")
                try:
                    return em.parse_response(reply.content, request.id)
                except em.EventMasterError as err:
                    raise DeviceCommandError(err.code, f"{err.reason} ({method})") from None
                except ValueError as err:
                    problem = f"garbled answer to {method}: {err}"
            self.log.debug("%s (attempt %d/%d)", problem, attempt, self.retry.attempts)
        self._link_lost(problem)
        raise DeviceTimeout(f"device {self.id}: {problem}")

    async def _parsed(self, call: Call, parse: Any) -> Any:
        response = await self._call(call)
        try:
            return parse(response)
        except ValueError as err:
            self._link_lost(f"{call[0]}: {err}")
            raise DeviceUnavailable(
                f"device {self.id}: unexpected answer to {call[0]}: {err}"
            ) from err

    # --- state ---------------------------------------------------------------------------

    async def _fetch(self) -> Mapping[str, Any]:
        if self._destination is None:
            screens = await self._parsed(em.list_destinations(), em.parse_destinations)
            wanted = self.options.destination
            found = [s for s in screens if s.id == wanted]
            if not found:
                known = ", ".join(str(s.id) for s in screens) or "none"
                raise DeviceUnavailable(
                    f"device {self.id}: no screen destination {wanted} (the processor has: {known})"
                )
            self._destination = found[0]
        presets: list[em.Preset] = await self._parsed(em.list_presets(), em.parse_presets)
        sources: list[em.Source] = await self._parsed(em.list_sources(), em.parse_sources)
        self._names = {s.id: s.name or str(s.id) for s in sources}
        self._sources = {name: number for number, name in self._names.items()}
        layouts = [p.name for p in presets]
        if self._layout not in layouts:
            self._layout = None  # deleted or renamed on the processor
        destination = self._destination
        return {
            "layout": self._layout,
            "layouts": layouts,
            "windows": await self._windows(),
            "sources": list(self._sources),
            "destination": {
                "id": destination.id,
                "name": destination.name,
                "width": destination.width,
                "height": destination.height,
                "layers": destination.layers,
            },
        }

    async def _windows(self) -> dict[int, dict[str, Any]]:
        content = await self._parsed(em.list_content(self.options.destination), em.parse_content)
        return {
            layer.id: {
                "source": self._names.get(layer.source, layer.source),
                "x": layer.x,
                "y": layer.y,
                "w": layer.w,
                "h": layer.h,
            }
            for layer in content.layers
            if layer.program
        }

    # --- commands ------------------------------------------------------------------------

    def _prepare(self, command: Mapping[str, Any]) -> WallCall:
        parsed = validate_command(self.capabilities, command, self.config.type)
        destination = self.options.destination
        if isinstance(parsed, RecallLayout):
            program = self.options.recall_to == "program"
            return WallCall(parsed, em.activate_preset(parsed.layout, program=program))
        assert isinstance(parsed, OpenWindow | CloseWindow | MoveWindow | SetSource)
        layer = self._layer(parsed.window)
        if isinstance(parsed, CloseWindow):
            return WallCall(parsed, em.change_layer(destination, layer, shown=False))
        if isinstance(parsed, MoveWindow):
            window = (parsed.x, parsed.y, parsed.w, parsed.h)
            return WallCall(parsed, em.change_layer(destination, layer, window=window))
        source = self._source(parsed.source)
        if isinstance(parsed, SetSource):
            return WallCall(parsed, em.change_layer(destination, layer, source=source))
        window = (parsed.x, parsed.y, parsed.w, parsed.h)
        call = em.change_layer(destination, layer, source=source, window=window, shown=True)
        return WallCall(parsed, call)

    def _layer(self, window: str | int) -> int:
        """Windows are the destination's layer numbers (0..layers-1)."""
        layers = self._snapshot.state.get("destination", {}).get("layers")
        number = int(window) if isinstance(window, str) and window.isdigit() else window
        if not isinstance(number, int) or number < 0 or (layers and number >= layers):
            limit = f"0..{layers - 1}" if layers else "a layer number"
            raise InvalidCommand(f"'window' must be {limit} (a layer), got {window!r}")
        return number

    def _source(self, source: str | int) -> int:
        if isinstance(source, int):
            if self._names and source not in self._names:
                raise InvalidCommand(f"no source {source} (sources: {self._source_list()})")
            return source
        if source in self._sources:
            return self._sources[source]
        raise InvalidCommand(f"unknown source {source!r} (sources: {self._source_list()})")

    def _source_list(self) -> str:
        return ", ".join(f"{n}={name!r}" for n, name in self._names.items()) or "not read yet"

    async def _execute(self, command: WallCall) -> dict[str, Any]:
        await self._call(command.call)
        cmd = command.command
        if isinstance(cmd, RecallLayout):
            if self.options.recall_to == "program":
                self._layout = cmd.layout  # a preview recall leaves the wall as it is
            self._merge_state(await self._fetch())
            return {"layout": cmd.layout}
        assert isinstance(cmd, OpenWindow | CloseWindow | MoveWindow | SetSource)
        windows = await self._windows()
        self._merge_state({"windows": windows})
        layer = self._layer(cmd.window)
        shown = windows.get(layer)
        return {"window": layer, **(thaw(shown) if shown is not None else {"closed": True})}


__all__ = ["EventMasterWall", "endpoint"]
