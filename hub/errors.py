"""The hub's error hierarchy; the API maps each to problem+json."""

from __future__ import annotations


class HubError(Exception):
    """Root of every error the hub raises on purpose."""

    status = 500
    title = "Internal error"


class ConfigError(HubError):
    """The site file is invalid; ``problems`` lists every finding."""

    status = 422
    title = "Invalid configuration"

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(problems))


class InvalidStateError(HubError):
    status = 409
    title = "Invalid state"


class NotFound(HubError):
    status = 404
    title = "Not found"


class AuthFailed(HubError):
    status = 401
    title = "Unauthorized"


class Forbidden(HubError):
    status = 403
    title = "Forbidden"


class StoreError(HubError):
    status = 503
    title = "Store unavailable"
