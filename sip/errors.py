"""The one error the SIP message layer raises for malformed input."""

from __future__ import annotations


class SipParseError(ValueError):
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
