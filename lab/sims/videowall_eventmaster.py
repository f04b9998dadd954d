"""Barco Event Master simulator: JSON-RPC 2.0 over HTTP/1.1 (h11) with presets, sources, layers.

One screen destination (id 0) is the video wall; its layers are the wall's windows. The
processor's answers go through the fault injector byte for byte (delay, drop, garble).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import h11
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lab.registry import register
from lab.sims.streams import Session, SessionOutbox, StreamSimulator
from lab.simulator import SimState
from protocols import barco_eventmaster as em

NOT_FOUND = -1  # the guide documents only "non-zero"; this processor answers -1 with a reason
MAX_BODY = 1 << 20


class LayerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: int = Field(-1, ge=-1, description="LastSrcIdx, -1 = none")
    x: int = 0
    y: int = 0
    w: int = Field(1920, ge=1)
    h: int = Field(1080, ge=1)
    program: bool = False
    preview: bool = False


class PresetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    serial: float = Field(ge=0)
    layers: dict[int, LayerSpec] = Field({}, description="the wall's layers this preset sets")


def _on(source: int, x: int, y: int, w: int, h: int) -> LayerSpec:
    return LayerSpec(source=source, x=x, y=y, w=w, h=h, program=True, preview=True)


def _default_presets() -> list[PresetSpec]:
    return [
        PresetSpec(name="Overview", serial=1.0, layers={0: _on(4, 0, 0, 3840, 2160)}),
        PresetSpec(
            name="Cameras",
            serial=2.0,
            layers={
                0: _on(0, 0, 0, 1920, 1080),
                1: _on(1, 1920, 0, 1920, 1080),
                2: _on(2, 0, 1080, 1920, 1080),
                3: _on(3, 1920, 1080, 1920, 1080),
            },
        ),
        PresetSpec(
            name="Flood consult",
            serial=3.0,
            layers={0: _on(4, 0, 0, 2560, 2160), 1: _on(5, 2560, 0, 1280, 2160)},
        ),
    ]


class EventMasterState(SimState):
    frame: Literal["E2", "S3", "Ex"] = "E2"
    destination: str = "VideoWall"
    width: int = Field(3840, ge=1)
    height: int = Field(2160, ge=1)
    max_layers: int = Field(8, ge=1, le=64)
    sources: list[str] = Field(
        ["Camera 1", "Camera 2", "Camera 3", "Drone", "GIS map", "Video conference"],
        description="input sources; the id is the position",
    )
    presets: list[PresetSpec] = Field(default_factory=_default_presets)
    layers: dict[int, LayerSpec] = Field({}, description="the wall's layers now")

    @model_validator(mode="after")
    def _fits(self) -> EventMasterState:
        for preset in self.presets:
            for index, layer in {**preset.layers, **self.layers}.items():
                if not 0 <= index < self.max_layers or layer.source >= len(self.sources):
                    raise ValueError(f"layer {index} (source {layer.source}) does not fit")
        return self


class _Refused(Exception):
    def __init__(self, success: int, reason: str) -> None:
        self.success = success
        self.reason = reason


def _get_int(params: dict[str, Any], key: str) -> int:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise em.EventMasterError(
            str(em.INVALID_PARAMS), f"Invalid params: {key!r} must be a number"
        )
    return value


class EventMasterProcessor:
    """The JSON-RPC methods over the simulator's state: ``call(request) -> response``."""

    def __init__(self, state: EventMasterState) -> None:
        self.state = state

    def call(self, request: em.Request) -> Any:
        handler: Callable[[dict[str, Any]], Any] | None = getattr(self, f"_{request.method}", None)
        if handler is None:
            raise em.EventMasterError(str(em.METHOD_NOT_FOUND), "Method not found")
        return handler(dict(request.params))

    def _listPresets(self, params: dict[str, Any]) -> Any:  # the JSON-RPC method's name
        return [
            {"id": i, "Name": p.name, "LockMode": 0, "presetSno": p.serial}
            for i, p in enumerate(self.state.presets)
        ]

    def _activatePreset(self, params: dict[str, Any]) -> Any:
        presets = self.state.presets
        if "id" in params:
            index = _get_int(params, "id")
            found = index if 0 <= index < len(presets) else None
        elif "presetSno" in params:
            serial = params["presetSno"]
            found = next((i for i, p in enumerate(presets) if p.serial == serial), None)
        elif "presetName" in params:
            name = params["presetName"]
            found = next((i for i, p in enumerate(presets) if p.name == name), None)
        else:
            raise em.EventMasterError(str(em.INVALID_PARAMS), "Invalid params: no preset given")
        if found is None:
            raise _Refused(NOT_FOUND, "Preset not found")
        recall = params.get("type", em.RECALL_PREVIEW)
        if recall not in (em.RECALL_PREVIEW, em.RECALL_PROGRAM):
            raise _Refused(NOT_FOUND, f"Invalid recall type {recall!r}")
        if recall == em.RECALL_PROGRAM:
            # this processor keeps one layer set; a preview recall leaves program alone
            self.state.layers = dict(presets[found].layers)
        return None

    def _listDestinations(self, params: dict[str, Any]) -> Any:
        kind = params.get("type", 0)
        s = self.state
        screen = {
            "id": 0,
            "Name": s.destination,
            "HSize": s.width,
            "VSize": s.height,
            "Layers": s.max_layers,
            "DestOutMapColl": [
                {
                    "id": 0,
                    "DestOutMap": [
                        {
                            "id": 0,
                            "Name": "Out1",
                            "HPos": 0,
                            "VPos": 0,
                            "HSize": s.width,
                            "VSize": s.height,
                            "Freeze": 0,
                        }
                    ],
                }
            ],
        }
        return {
            "ScreenDestination": [screen] if kind in (0, 1) else [],
            "AuxDestination": [],
        }

    def _listSources(self, params: dict[str, Any]) -> Any:
        return [
            {
                "id": i,
                "Name": name,
                "HSize": 1920,
                "VSize": 1080,
                "SrcType": 0,
                "InputCfgIndex": i,
                "StillIndex": -1,
                "DestIndex": -1,
                "UserKeyIndex": -1,
                "Mode3D": 0,
                "Freeze": 0,
                "Capacity": 1,
                "InputCfgVideoStatus": 4,
            }
            for i, name in enumerate(self.state.sources)
        ]

    def _destination(self, params: dict[str, Any]) -> None:
        if _get_int(params, "id") != 0:
            raise _Refused(NOT_FOUND, f"No screen destination {params['id']}")

    def _listContent(self, params: dict[str, Any]) -> Any:
        self._destination(params)
        s = self.state
        layers = []
        for index in range(s.max_layers):
            layer = s.layers.get(index, LayerSpec())
            layers.append(
                {
                    "id": index,
                    "LastSrcIdx": layer.source,
                    "HPos": layer.x,
                    "VPos": layer.y,
                    "HSize": layer.w,
                    "VSize": layer.h,
                    "PvwMode": int(layer.preview),
                    "PgmMode": int(layer.program),
                    "Freeze": 0,
                    "FlexZOrder": index,
                    "LayerTrans": [{"id": 0, "TransTime": 30, "TransPos": 0}],
                }
            )
        background = {
            "id": 0,
            "LastBGSourceIndex": -1,
            "BGShowMatte": 0,
            "BGColor": [{"id": 0, "Red": 0, "Green": 0, "Blue": 0}],
        }
        return {"id": 0, "Name": s.destination, "BGLyr": [background], "Layers": layers}

    def _changeContent(self, params: dict[str, Any]) -> Any:
        self._destination(params)
        items = params.get("Layers", [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise em.EventMasterError(str(em.INVALID_PARAMS), "Invalid params: Layers")
        layers = dict(self.state.layers)
        for item in items:
            index = _get_int(item, "id")
            if not 0 <= index < self.state.max_layers:
                raise _Refused(NOT_FOUND, f"No layer {index}")
            layer = layers.get(index, LayerSpec())
            changes: dict[str, Any] = {}
            if "LastSrcIdx" in item:
                source = _get_int(item, "LastSrcIdx")
                if not -1 <= source < len(self.state.sources):
                    raise _Refused(NOT_FOUND, f"No source {source}")
                changes["source"] = source
            window = item.get("Window")
            if isinstance(window, dict):
                geometry = {
                    k: _get_int(window, f)
                    for k, f in (("x", "HPos"), ("y", "VPos"), ("w", "HSize"), ("h", "VSize"))
                }
                if geometry["w"] < 1 or geometry["h"] < 1:
                    raise _Refused(NOT_FOUND, "Window size must be positive")
                changes.update(geometry)
            for mode, key in (("PgmMode", "program"), ("PvwMode", "preview")):
                if mode in item:
                    changes[key] = _get_int(item, mode) == 1
            layers[index] = layer.model_copy(update=changes)
        self.state.layers = layers
        return None


class _HttpSession(Session):
    """One HTTP/1.1 connection (keep-alive), parsed with h11."""

    def __init__(self, sim: EventMasterSimulator, outbox: SessionOutbox) -> None:
        super().__init__(sim, outbox)
        self.processor = sim
        self.http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BODY)
        self._target = b""
        self._method = b""
        self._body = b""

    def received(self, data: bytes) -> None:
        if self.http.their_state in (h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            return  # we said "close": the rest is ignored until the peer hangs up
        self.http.receive_data(data)
        while True:
            try:
                event = self.http.next_event()
            except h11.RemoteProtocolError as err:
                self._reply(400, f"bad request: {err}".encode(), "text/plain")
                self.hang_up()
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.ConnectionClosed):
                self.hang_up()
                return
            if isinstance(event, h11.Request):
                self._target, self._method, self._body = event.target, event.method, b""
            elif isinstance(event, h11.Data):
                self._body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self._respond()
                if self.http.our_state is h11.MUST_CLOSE:
                    self.hang_up()
                    return
                self.http.start_next_cycle()

    def _respond(self) -> None:
        if self._target.split(b"?")[0] not in (b"/", em.PATH.encode()):
            self._reply(404, b"not found", "text/plain")
        elif self._method != b"POST":
            self._reply(405, b"POST a JSON-RPC call", "text/plain")
        else:
            self._reply(200, self.processor.rpc(self._body), "application/json")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        data = self.http.send(h11.Response(status_code=status, headers=headers)) or b""
        data += self.http.send(h11.Data(data=body)) or b""
        data += self.http.send(h11.EndOfMessage()) or b""
        self.send(data)


@register("barco-eventmaster")
class EventMasterSimulator(StreamSimulator):
    """The processor's web server on a TCP port; the hub reaches it as ``http://host:port``."""

    resource_kinds = ("tcp",)
    state_model = EventMasterState
    state: EventMasterState

    def new_session(self, outbox: SessionOutbox) -> Session:
        return _HttpSession(self, outbox)

    def site_transport(self) -> dict[str, Any]:
        return {"kind": "http", "url": f"http://{self.host}:{self.port}"}

    def rpc(self, body: bytes) -> bytes:
        """One JSON-RPC call in, the reply body out."""
        self.check_crash()
        request_id: str | None = None
        try:
            request = em.Request.parse(body)
            request_id = request.id
            code = self.faults.error_code(str(NOT_FOUND))
            if code is not None:
                success = int(code) if code.lstrip("-").isdigit() else NOT_FOUND
                return em.answer(request_id, "fault injected", success or NOT_FOUND)
            response = EventMasterProcessor(self.state).call(request)
        except em.EventMasterError as err:
            return em.rpc_error(request_id, int(err.code), err.reason)
        except _Refused as refused:
            return em.answer(request_id, refused.reason, refused.success)
        return em.answer(request_id, response)


__all__ = ["EventMasterProcessor", "EventMasterSimulator", "EventMasterState", "LayerSpec"]
