"""Bearer-token authentication and role checks for the API."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from hub.config import Role, User
from hub.errors import AuthFailed, Forbidden


@dataclass(frozen=True)
class Principal:
    """Who is calling: a site-file user and their role."""

    name: str
    role: Role


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenAuth:
    """Maps bearer tokens to users. Tokens are held only as SHA-256 digests."""

    def __init__(self, users: Iterable[User]) -> None:
        self._by_digest = {
            _digest(u.token.get_secret_value()): Principal(u.name, u.role) for u in users
        }

    def authenticate(self, authorization: str | None, query_token: str | None = None) -> Principal:
        token = query_token
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise AuthFailed("the Authorization header must be 'Bearer <token>'")
            token = value.strip()
        if not token:
            raise AuthFailed("a bearer token is required")
        wanted = _digest(token)
        for digest, principal in self._by_digest.items():
            if hmac.compare_digest(digest, wanted):
                return principal
        raise AuthFailed("the token is not valid")


def check_role(principal: Principal, allowed: Iterable[Role]) -> None:
    """Admins may do everything; anyone else needs one of ``allowed``."""
    allowed = frozenset(allowed)
    if principal.role is Role.ADMIN or principal.role in allowed:
        return
    names = ", ".join(sorted(r.value for r in allowed | {Role.ADMIN}))
    raise Forbidden(f"role {principal.role.value!r} may not do this (needs one of: {names})")
