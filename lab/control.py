"""The bench's local HTTP control endpoint (JSON over HTTP/1.1 on asyncio streams, no framework).

``GET /sims``, ``GET /sims/{name}``, ``PATCH /sims/{name}/state``, ``POST /sims/{name}/faults``,
``DELETE /sims/{name}/faults[/{kind}]``, ``POST /reset``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lab.faults import FaultKind, FaultSpec

if TYPE_CHECKING:
    from lab.bench import Bench

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


class HttpProblem(Exception):
    def __init__(self, status: HTTPStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class ControlServer:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> str:
        self._server = await asyncio.start_server(self._serve, host, port)
        bound = self._server.sockets[0].getsockname()
        return f"http://{bound[0]}:{bound[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                method, path, body = await asyncio.wait_for(_read_request(reader), 10)
            except json.JSONDecodeError as err:
                await _respond(writer, HTTPStatus.BAD_REQUEST, {"detail": f"bad JSON: {err}"})
                return
            try:
                status, payload = await self.route(method, path, body)
            except HttpProblem as err:
                status, payload = err.status, {"title": err.status.phrase, "detail": err.detail}
            await _respond(writer, status, payload)
        except (TimeoutError, ConnectionError, ValueError) as err:
            logger.debug("control connection dropped: %s", err)
        except Exception:  # loop boundary: one bad request never takes the bench down
            logger.exception("control request failed")
            await _respond(writer, HTTPStatus.INTERNAL_SERVER_ERROR, {"title": "error"})
        finally:
            writer.close()

    async def route(self, method: str, path: str, body: Any) -> tuple[HTTPStatus, Any]:
        parts = [p for p in path.split("?")[0].split("/") if p]
        bench = self.bench
        if parts == ["sims"] and method == "GET":
            return HTTPStatus.OK, bench.describe()
        if parts == ["reset"] and method == "POST":
            await bench.reset()
            return HTTPStatus.OK, bench.describe()
        if len(parts) < 2 or parts[0] != "sims":
            raise HttpProblem(HTTPStatus.NOT_FOUND, f"no route {method} {path}")
        name = parts[1]
        if name not in bench.sims:
            raise HttpProblem(HTTPStatus.NOT_FOUND, f"no simulator {name!r}")
        sim = bench.sims[name]
        rest = parts[2:]
        if rest == [] and method == "GET":
            return HTTPStatus.OK, sim.describe()
        if rest == ["state"] and method in ("PATCH", "PUT", "POST"):
            if not isinstance(body, dict):
                raise HttpProblem(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
            try:
                return HTTPStatus.OK, await bench.set_state(name, body)
            except ValueError as err:
                raise HttpProblem(HTTPStatus.UNPROCESSABLE_ENTITY, str(err)) from None
        if rest == ["faults"] and method == "POST":
            try:
                spec = FaultSpec.model_validate(body)
            except ValidationError as err:
                raise HttpProblem(HTTPStatus.UNPROCESSABLE_ENTITY, _first(err)) from None
            bench.inject(name, spec)
            return HTTPStatus.OK, sim.describe()
        if rest[:1] == ["faults"] and method == "DELETE" and len(rest) <= 2:
            kind = None
            if len(rest) == 2:
                try:
                    kind = FaultKind(rest[1])
                except ValueError:
                    legal = ", ".join(k.value for k in FaultKind)
                    raise HttpProblem(
                        HTTPStatus.NOT_FOUND, f"unknown fault {rest[1]!r} (legal: {legal})"
                    ) from None
            bench.clear(name, kind)
            return HTTPStatus.OK, sim.describe()
        raise HttpProblem(HTTPStatus.NOT_FOUND, f"no route {method} {path}")


def _first(err: ValidationError) -> str:
    first = err.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}"


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, Any]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length > MAX_BODY:
        raise ValueError("body too large")
    raw = await reader.readexactly(length) if length else b""
    body = json.loads(raw) if raw.strip() else None
    return method.upper(), path, body


async def _respond(writer: asyncio.StreamWriter, status: HTTPStatus, payload: Any) -> None:
    body = json.dumps(payload, indent=1).encode()
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"Content-Type: {'application/json' if status < 400 else 'application/problem+json'}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    await writer.drain()
