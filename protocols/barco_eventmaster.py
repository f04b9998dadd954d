"""Barco Event Master (E2, S3, Ex) JSON-RPC 2.0 over HTTP (port 9999), sans-IO.

Methods and fields as the JSON-RPC appendix of the Event Master user guide documents them:
``listPresets``, ``activatePreset``, ``listDestinations``, ``listSources``, ``listContent``,
``changeContent``. Every answer is ``{"result": {"success": 0, "response": ...}}``; the guide
says only "0 = success, anything else an error", so a non-zero ``success`` becomes an
:class:`EventMasterError` with that number as its code. JSON-RPC ``error`` objects (parse
error, unknown method) are errors too, with their JSON-RPC code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PORT = 9999
PATH = "/jsonrpc"

# JSON-RPC 2.0 error codes
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602

RECALL_PREVIEW, RECALL_PROGRAM = 0, 1  # activatePreset "type"
SCREEN_DESTINATIONS = 1  # listDestinations "type": only screen destinations


class EventMasterError(Exception):
    """The processor refused a call; ``code`` is ``success`` (or the JSON-RPC error code)."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}")


@dataclass(frozen=True)
class Request:
    """One JSON-RPC call, e.g. ``{"params": {"id": 0}, "method": "listContent", ...}``."""

    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    id: str = "1"

    def __bytes__(self) -> bytes:
        body = {"params": dict(self.params), "method": self.method, "id": self.id, "jsonrpc": "2.0"}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, data: bytes) -> Request:
        """Parse a call (as the processor receives it); raise :class:`EventMasterError`."""
        try:
            body = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            raise EventMasterError(str(PARSE_ERROR), "Parse error") from None
        if not isinstance(body, dict) or not isinstance(body.get("method"), str):
            raise EventMasterError(str(INVALID_REQUEST), "Invalid Request")
        params = body.get("params", {})
        if not isinstance(params, dict):
            raise EventMasterError(str(INVALID_PARAMS), "Invalid params: expected an object")
        return cls(body["method"], params, str(body.get("id", "")))


def answer(request_id: str | None, response: Any = None, success: int = 0) -> bytes:
    """The processor's reply body (``success`` 0 = done)."""
    body = {
        "jsonrpc": "2.0",
        "result": {"success": success, "response": response},
        "id": request_id,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def rpc_error(request_id: str | None, code: int, message: str) -> bytes:
    """A JSON-RPC error object reply (parse errors, unknown methods)."""
    body = {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": request_id}
    return json.dumps(body, separators=(",", ":")).encode()


def parse_response(data: bytes, request_id: str) -> Any:
    """The ``response`` of a reply to call ``request_id``.

    Raises :class:`EventMasterError` when the processor refused the call and ``ValueError``
    when the bytes are not a JSON-RPC reply to this call.
    """
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"reply is not JSON: {err}") from None
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0":
        raise ValueError(f"reply is not JSON-RPC 2.0: {data[:80]!r}")
    error = body.get("error")
    if error is not None:
        if not isinstance(error, dict) or not isinstance(error.get("code"), int):
            raise ValueError(f"malformed JSON-RPC error object: {error!r}")
        raise EventMasterError(str(error["code"]), str(error.get("message", "JSON-RPC error")))
    if str(body.get("id")) != request_id:
        raise ValueError(f"reply is for call {body.get('id')!r}, not {request_id!r}")
    result = body.get("result")
    if not isinstance(result, dict) or "success" not in result:
        raise ValueError(f"reply has no result.success: {data[:80]!r}")
    success = result["success"]
    if isinstance(success, bool) or not isinstance(success, int):
        raise ValueError(f"result.success is not a number: {success!r}")
    response = result.get("response")
    if success != 0:
        reason = response if isinstance(response, str) and response else "the processor refused"
        raise EventMasterError(str(success), reason)
    return response


# --- typed views of the responses -------------------------------------------------------------


def _int(item: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = item.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key!r} is not a number: {value!r}")
    return int(value)


def _objects(response: Any, what: str) -> list[Mapping[str, Any]]:
    if not isinstance(response, list) or not all(isinstance(i, dict) for i in response):
        raise ValueError(f"{what}: expected a list of objects, got {response!r:.80}")
    return response


@dataclass(frozen=True)
class Preset:
    id: int
    name: str
    serial: float


def parse_presets(response: Any) -> list[Preset]:
    """``listPresets``: ``[{"id": 0, "Name": "Preset3.00", "LockMode": 0, "presetSno": 3.00}]``."""
    presets = []
    for item in _objects(response, "listPresets"):
        serial = item.get("presetSno", 0)
        if isinstance(serial, bool) or not isinstance(serial, int | float):
            raise ValueError(f"presetSno is not a number: {serial!r}")
        presets.append(Preset(_int(item, "id"), str(item.get("Name", "")), float(serial)))
    return presets


@dataclass(frozen=True)
class Source:
    id: int
    name: str


def parse_sources(response: Any) -> list[Source]:
    """``listSources``: ``[{"id": 0, "Name": "InSource1", "HSize": 3840, ...}]``."""
    return [
        Source(_int(i, "id"), str(i.get("Name", ""))) for i in _objects(response, "listSources")
    ]


@dataclass(frozen=True)
class ScreenDestination:
    id: int
    name: str
    width: int
    height: int
    layers: int


def parse_destinations(response: Any) -> list[ScreenDestination]:
    """``listDestinations``: ``{"ScreenDestination": [{"id", "Name", "HSize", "Layers"...}]}``."""
    if not isinstance(response, dict):
        raise ValueError(f"listDestinations: expected an object, got {response!r:.80}")
    return [
        ScreenDestination(
            _int(i, "id"),
            str(i.get("Name", "")),
            _int(i, "HSize", 0),
            _int(i, "VSize", 0),
            _int(i, "Layers", 0),
        )
        for i in _objects(response.get("ScreenDestination", []), "ScreenDestination")
    ]


@dataclass(frozen=True)
class Layer:
    """A layer of a screen destination: a window on the wall when it is on program."""

    id: int
    source: int
    x: int
    y: int
    w: int
    h: int
    program: bool
    preview: bool


@dataclass(frozen=True)
class ScreenContent:
    id: int
    name: str
    layers: tuple[Layer, ...]


def parse_content(response: Any) -> ScreenContent:
    """``listContent``: ``{"id": 0, "Name": ..., "Layers": [{"id", "LastSrcIdx", "HPos"...}]}``."""
    if not isinstance(response, dict):
        raise ValueError(f"listContent: expected an object, got {response!r:.80}")
    layers = tuple(
        Layer(
            _int(i, "id"),
            _int(i, "LastSrcIdx", -1),
            _int(i, "HPos", 0),
            _int(i, "VPos", 0),
            _int(i, "HSize", 0),
            _int(i, "VSize", 0),
            _int(i, "PgmMode", 0) == 1,
            _int(i, "PvwMode", 0) == 1,
        )
        for i in _objects(response.get("Layers", []), "Layers")
    )
    return ScreenContent(_int(response, "id"), str(response.get("Name", "")), layers)


# --- the calls ---------------------------------------------------------------------------------


def list_presets() -> tuple[str, dict[str, Any]]:
    return "listPresets", {"ScreenDest": -1, "AuxDest": -1}


def activate_preset(name: str, *, program: bool = True) -> tuple[str, dict[str, Any]]:
    return "activatePreset", {
        "presetName": name,
        "type": RECALL_PROGRAM if program else RECALL_PREVIEW,
    }


def list_destinations() -> tuple[str, dict[str, Any]]:
    return "listDestinations", {"type": SCREEN_DESTINATIONS}


def list_sources() -> tuple[str, dict[str, Any]]:
    return "listSources", {"type": 0}


def list_content(destination: int) -> tuple[str, dict[str, Any]]:
    return "listContent", {"id": destination}


def change_layer(
    destination: int,
    layer: int,
    *,
    source: int | None = None,
    window: tuple[int, int, int, int] | None = None,
    shown: bool | None = None,
) -> tuple[str, dict[str, Any]]:
    """``changeContent`` for one layer: its source, its window, on (program+preview) or off."""
    item: dict[str, Any] = {"id": layer}
    if source is not None:
        item["LastSrcIdx"] = source
    if window is not None:
        x, y, w, h = window
        item["Window"] = {"HPos": x, "VPos": y, "HSize": w, "VSize": h}
    if shown is not None:
        item["PgmMode"] = item["PvwMode"] = 1 if shown else 0
    return "changeContent", {"id": destination, "Layers": [item]}


__all__ = [
    "DEFAULT_PORT",
    "PATH",
    "EventMasterError",
    "Layer",
    "Preset",
    "Request",
    "ScreenContent",
    "ScreenDestination",
    "Source",
    "activate_preset",
    "answer",
    "change_layer",
    "list_content",
    "list_destinations",
    "list_presets",
    "list_sources",
    "parse_content",
    "parse_destinations",
    "parse_presets",
    "parse_response",
    "parse_sources",
    "rpc_error",
]
