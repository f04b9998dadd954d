"""The SIP package's errors: one root, ``SipError``, and its kinds."""

from __future__ import annotations


class SipError(Exception):
    """Root of every error the ``sip`` package raises on purpose."""


class SipParseError(SipError, ValueError):
    """Malformed SIP or SDP input; ``reason`` says exactly what is wrong.

    ``status`` is the response code RFC 3261 asks for (400, or 505 for a bad
    SIP version); ``method`` is set when the request line itself parsed, so a
    transport knows a response can be built (see ``bad_request_response``).
    """

    def __init__(
        self,
        reason: str,
        *,
        status: int = 400,
        method: str | None = None,
        is_response: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.method = method
        self.is_response = is_response


class SipStateError(SipError):
    """An operation that the current transaction or dialog state does not allow
    (a second final response, a request on a terminated dialog, ...)."""


class SipTransportError(SipError):
    """A message could not be sent: no listener for the transport, connect failed, closed."""


class SipOverloadError(SipError):
    """A configured bound (transactions, connections) is reached; retry later."""
