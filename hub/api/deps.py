"""FastAPI dependencies: the hub, and the caller's identity and role."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.auth import Principal, check_role
from hub.config import Role

if TYPE_CHECKING:
    from hub.runtime import Hub

_bearer = HTTPBearer(auto_error=False, description="A token from the site file's users")


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def require(*roles: Role) -> Callable[..., Principal]:
    """Dependency: a valid bearer token (401 otherwise) whose role is allowed (403)."""

    def dependency(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        hub = get_hub(request)
        principal = hub.auth.authenticate(request.headers.get("authorization"))
        request.state.principal = principal
        check_role(principal, roles)
        return principal

    return dependency


ANY_ROLE = tuple(Role)
