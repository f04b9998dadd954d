"""The UAC side of the stack: ``OutgoingInvite``, an INVITE or re-INVITE in progress
(see ``SipStack.invite`` and ``SipStack.reinvite``)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING

from sip.dialog import Dialog, DialogState
from sip.digest import Credentials, DigestClient, replace_credentials
from sip.errors import SipError, SipOverloadError, SipStateError, SipTransportError
from sip.headers import CSeq
from sip.hops import Address
from sip.message import Header, SipRequest, SipResponse, create_response
from sip.transaction import cancel_for
from sip.transport import Origin, SipConnection

if TYPE_CHECKING:
    from sip.stack import SipStack, _Entry

logger = logging.getLogger(__name__)

ResponseCallback = Callable[[SipResponse], None]
Destination = Address | Origin


class OutgoingInvite:
    """An INVITE (or re-INVITE) in progress. ``async for response in invite`` yields the
    provisional responses and then the final one; ``await invite.final()`` waits for the
    final; ``cancel()`` sends CANCEL (after the first provisional, section 9.1).

    A 2xx creates ``dialog`` and is ACKed at once when ``auto_ack`` (else call ``ack``);
    retransmitted 2xx are re-ACKed. A 401/407 is answered once when credentials were
    given. A 2xx from a second fork, or one that arrives after ``cancel()``, is ACKed and
    ended with BYE. Timeouts and transport errors give a local 408/503 final response.
    """

    _AUTH_ATTEMPTS = 2

    def __init__(
        self,
        stack: SipStack,
        template: SipRequest,
        *,
        credentials: Credentials | None,
        destination: Destination | None,
        auto_ack: bool,
        on_response: ResponseCallback | None,
        dialog: Dialog | None = None,
    ) -> None:
        self._stack = stack
        self.request = template
        self.sent: SipRequest | None = None
        self.dialog = dialog
        self.early_dialogs: dict[str, Dialog] = {}
        self.on_response = on_response
        self._reinvite = dialog is not None
        self._destination = destination
        self._auto_ack = auto_ack
        self._digest = DigestClient(credentials) if credentials is not None else None
        self._auth_attempts = 0
        self._entry: _Entry | None = None
        self._responses: deque[SipResponse] = deque(maxlen=32)
        self._wakeup = asyncio.Event()
        self._final: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        self._provisional_seen = False
        self._cancel_requested = False
        self._cancel_sent = False
        self._acks: dict[str, tuple[bytes, Address, SipConnection | None]] = {}
        self._ack_pending: set[str] = set()

    @property
    def done(self) -> bool:
        return self._final.done()

    @property
    def cancelled(self) -> bool:
        return self._cancel_requested

    async def final(self) -> SipResponse:
        return await asyncio.shield(self._final)

    def __aiter__(self) -> AsyncIterator[SipResponse]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[SipResponse]:
        while True:
            while self._responses:
                response = self._responses.popleft()
                yield response
                if response.status >= 200:
                    return
            if self._final.done():
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    def cancel(self) -> None:
        """Cancel the INVITE: CANCEL now when a provisional came, else on the first one."""
        if self._final.done() or self._cancel_requested or self._reinvite:
            return
        self._cancel_requested = True
        if self._provisional_seen:
            self._send_cancel()

    def ack(
        self, *, headers: Iterable[Header] = (), body: bytes = b"", content_type: str | None = None
    ) -> None:
        """ACK the 2xx (only needed with ``auto_ack=False``; the body is a late answer)."""
        if self.dialog is None or self.sent is None:
            raise SipStateError("no 2xx to acknowledge yet")
        self._send_ack(self.dialog, headers, body, content_type)

    # -- internals ------------------------------------------------------------------------

    async def _start(self) -> None:
        self._provisional_seen = False
        try:
            self._entry = await self._stack._start_client(
                self.request, self._route_for(), self._on_response, self._on_failed
            )
        except (SipTransportError, SipOverloadError) as err:
            self._on_failed(503, f"Service Unavailable ({err})")
            return
        self.sent = self._entry.machine.request

    def _route_for(self) -> Destination | None:
        if self._destination is not None:
            return self._destination
        if self.dialog is not None:
            return self._stack._dialog_routes.get(self.dialog.id)
        return None

    def _push(self, response: SipResponse) -> None:
        self._responses.append(response)
        self._wakeup.set()
        if self.on_response is not None:
            try:
                self.on_response(response)
            except Exception:
                logger.exception("on_response callback failed")

    def _finish(self, response: SipResponse) -> None:
        if self._final.done():
            return
        self._final.set_result(response)
        self._push(response)

    def _on_failed(self, status: int, reason: str) -> None:
        request = self.sent or self.request
        self._end_early_dialogs()
        if self.dialog is not None and self._reinvite:
            self.dialog.end_local_invite()
        self._finish(create_response(request, status, reason))

    def _on_response(self, response: SipResponse) -> None:
        status = response.status
        if status < 200:
            self._provisional_seen = True
            if status > 100 and response.to.tag and not self._reinvite:
                self._early_dialog(response)
            self._push(response)
            if self._cancel_requested and not self._cancel_sent:
                self._send_cancel()
        elif status < 300:
            self._on_2xx(response)
        else:
            if self._retry_with_credentials(response):
                return
            self._end_early_dialogs()
            if self.dialog is not None and self._reinvite:
                assert self.sent is not None
                self.dialog.receive_response(self.sent, response)
                self.dialog.end_local_invite()
            self._finish(response)

    def _retry_with_credentials(self, response: SipResponse) -> bool:
        if response.status not in (401, 407) or self._digest is None or self._cancel_requested:
            return False
        if self._auth_attempts >= self._AUTH_ATTEMPTS:
            return False
        authorization = self._digest.answer(self.request, response)
        if not authorization:
            return False
        self._auth_attempts += 1
        if self.dialog is not None:
            self.dialog.local_seq += 1
            seq = self.dialog.local_seq
        else:
            seq = self.request.cseq.seq + 1
        self.request = replace_credentials(_with_cseq(self.request, seq), authorization)
        self._stack._spawn(self._start(), "sip-invite-auth")
        return True

    def _early_dialog(self, response: SipResponse) -> None:
        assert self.sent is not None
        tag = response.to.tag or ""
        dialog = self.early_dialogs.get(tag)
        if dialog is None:
            dialog = Dialog.from_uac(self.sent, response)
            self.early_dialogs[tag] = dialog
            self._stack._add_dialog(dialog, self._destination)
        else:
            dialog.receive_response(self.sent, response)

    def _end_early_dialogs(self, keep: Dialog | None = None) -> None:
        for dialog in self.early_dialogs.values():
            if dialog is not keep and dialog.state is DialogState.EARLY:
                dialog.terminate()

    def _on_2xx(self, response: SipResponse) -> None:
        assert self.sent is not None
        tag = response.to.tag or ""
        if self._reinvite:
            assert self.dialog is not None
            if not self._final.done():
                self.dialog.receive_response(self.sent, response)
                self.dialog.end_local_invite()
                if self._auto_ack:
                    self._send_ack(self.dialog)
                self._finish(response)
            else:
                self._resend_ack(tag)
            return
        if self.dialog is not None and tag == self.dialog.id.remote_tag:
            self._resend_ack(tag)
            return
        dialog = self.early_dialogs.get(tag)
        if dialog is not None and dialog.state is DialogState.EARLY:
            dialog.receive_response(self.sent, response)
        elif dialog is None or dialog.terminated:
            if response.to.tag is None:
                logger.warning("2xx to INVITE %s without To tag: no dialog", self.sent.call_id)
                self._finish(response)
                return
            dialog = Dialog.from_uac(self.sent, response)
            self._stack._add_dialog(dialog, self._destination)
        if self.dialog is None:
            self.dialog = dialog
            self._end_early_dialogs(keep=dialog)
            if self._auto_ack or self._cancel_requested:
                self._send_ack(dialog)
            if self._cancel_requested:
                logger.info("INVITE %s answered after CANCEL: sending BYE", self.sent.call_id)
                self._stack._spawn(self._stack.request("BYE", dialog=dialog), "sip-bye-late")
            self._finish(response)
        else:
            # Another fork answered too: we keep one dialog, so ACK and end this one.
            self._send_ack(dialog)
            self._stack._spawn(self._stack.request("BYE", dialog=dialog), "sip-bye-fork")

    def _send_ack(
        self,
        dialog: Dialog,
        headers: Iterable[Header] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> None:
        assert self.sent is not None
        ack = dialog.create_ack(self.sent, headers=headers, body=body, content_type=content_type)
        tag = dialog.id.remote_tag
        self._ack_pending.add(tag)
        self._stack._spawn(self._deliver_ack(tag, ack), "sip-ack")

    async def _deliver_ack(self, tag: str, ack: SipRequest) -> None:
        try:
            sent = await self._stack._send_stateless(ack, self._route_for())
        except SipError as err:
            logger.warning("cannot send ACK for %s: %s", ack.call_id, err)
            return
        finally:
            self._ack_pending.discard(tag)
        self._acks[tag] = sent

    def _resend_ack(self, tag: str) -> None:
        sent = self._acks.get(tag)
        if sent is not None:
            self._stack._transport.send(*sent)
            self._stack.counters.retransmissions += 1

    def _send_cancel(self) -> None:
        if self._entry is None or self._cancel_sent or self._final.done():
            return
        self._cancel_sent = True
        cancel = cancel_for(self._entry.machine.request)
        self._stack._run_client(
            cancel,
            self._entry.address,
            self._entry.connection,
            lambda response: logger.debug("CANCEL answered %d", response.status),
            lambda status, reason: logger.debug("CANCEL failed: %s", reason),
        )


def _with_cseq(request: SipRequest, seq: int) -> SipRequest:
    headers = tuple(
        Header("CSeq", str(CSeq(seq, request.method))) if h.name == "CSeq" else h
        for h in request.headers
    )
    return SipRequest(request.method, request.uri, headers, request.body)
