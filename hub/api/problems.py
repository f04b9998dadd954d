"""Errors as RFC 9457 problem+json, with a message a caller can act on."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from devices.errors import (
    DeviceBusy,
    DeviceCommandError,
    DeviceError,
    DeviceNotFound,
    DeviceTimeout,
    DeviceUnavailable,
    InvalidCommand,
)
from hub.errors import AuthFailed, HubError

logger = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, instance: str = "", **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer realm="cchub"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(HubError)
    async def hub_error(request: Request, exc: HubError) -> JSONResponse:
        if isinstance(exc, AuthFailed):
            request.state.auth_failed = True
        return problem(exc.status, exc.title, str(exc), request.url.path)

    @app.exception_handler(DeviceError)
    async def device_error(request: Request, exc: DeviceError) -> JSONResponse:
        status, title = _DEVICE_STATUS.get(type(exc), (502, "Device error"))
        return problem(status, title, str(exc), request.url.path, device_code=exc.code)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"where": _where(tuple(e["loc"])), "problem": e["msg"]} for e in exc.errors()]
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            detail = "the request body is not valid JSON: " + "; ".join(
                f"{e['msg']} at {e.get('ctx', {}).get('error', '')}".strip() for e in exc.errors()
            )
            return problem(400, "Malformed JSON", detail, request.url.path, errors=errors)
        detail = "; ".join(f"{e['where']}: {e['problem']}" for e in errors)
        return problem(422, "Invalid request", detail, request.url.path, errors=errors)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, _title(exc.status_code), str(exc.detail), request.url.path)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, "Internal error", "the hub hit an unexpected error; see its log")


_DEVICE_STATUS: dict[type[DeviceError], tuple[int, str]] = {
    DeviceNotFound: (404, "No such device"),
    InvalidCommand: (422, "Invalid device command"),
    DeviceBusy: (503, "Device busy"),
    DeviceTimeout: (504, "Device did not answer"),
    DeviceUnavailable: (503, "Device unavailable"),
    DeviceCommandError: (502, "Device refused the command"),
}


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
