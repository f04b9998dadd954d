"""The UAS side of the stack: ``IncomingRequest``, a request handed to the application
with its server transaction (answer with ``respond``; see ``SipStack.set_handler``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from sip.dialog import Dialog
from sip.message import Header, SipRequest, SipResponse, create_response, new_tag, reason_phrase
from sip.transport import Origin

if TYPE_CHECKING:
    from sip.stack import SipStack, _Entry


class IncomingRequest:
    """A request for the application, with its server transaction: answer it with
    ``respond`` (any number of provisionals, one final). ``dialog`` is the dialog it
    belongs to (in-dialog requests) or creates (an INVITE answered 1xx/2xx)."""

    def __init__(self, stack: SipStack, entry: _Entry, request: SipRequest, origin: Origin) -> None:
        self._stack = stack
        self._entry = entry
        self.request = request
        self.origin = origin
        self.dialog: Dialog | None = None
        self.in_dialog = request.to.tag is not None
        self.to_tag = request.to.tag or new_tag()
        self.final: SipResponse | None = None
        self.cancelled = False
        self.on_cancel: Callable[[IncomingRequest], None] | None = None
        self._ack: asyncio.Future[SipRequest | None] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def answered(self) -> bool:
        """True once a final response was sent."""
        return self.final is not None

    def response(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[Header] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipResponse:
        """Build (not send) a response: our To tag, and for an INVITE's 101-299 the
        Contact and Record-Route a dialog-creating response needs (section 12.1.1)."""
        extra = list(headers)
        request = self.request
        if request.method == "INVITE" and 101 <= status < 300:
            if not any(h.name == "Contact" for h in extra):
                extra.append(Header("Contact", str(self._stack._contact_for(self.origin))))
            extra.extend(h for h in request.headers if h.name == "Record-Route")
        if body and content_type is not None:
            extra.append(Header("Content-Type", content_type))
        return create_response(
            request,
            status,
            reason or reason_phrase(status),
            to_tag=self.to_tag if status > 100 else None,
            headers=tuple(extra),
            body=body,
        )

    def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[Header] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipResponse:
        """Build and send a response; raises ``SipStateError`` after a final response."""
        response = self.response(
            status, reason, headers=headers, body=body, content_type=content_type
        )
        self.send(response)
        return response

    def send(self, response: SipResponse) -> None:
        """Send a response built elsewhere (e.g. by the registrar)."""
        self._stack._respond(self, response)

    async def wait_ack(self) -> SipRequest | None:
        """The ACK for our 2xx to this INVITE (it may carry the SDP answer); None when it
        never came within 64*T1 (the stack then ends the call with BYE)."""
        if self._ack is None:
            self._ack = asyncio.get_running_loop().create_future()
        return await asyncio.shield(self._ack)

    def _acked(self, ack: SipRequest | None) -> None:
        if self._ack is None:
            self._ack = asyncio.get_running_loop().create_future()
        if not self._ack.done():
            self._ack.set_result(ack)

    def __repr__(self) -> str:
        return f"<IncomingRequest {self.method} from {self.origin.remote}>"
