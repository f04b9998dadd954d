"""The SIP user-agent core on asyncio: the sans-IO transactions, dialogs and digest wired to
the transports. The registrar, trunks and call legs are built on ``SipStack``.

    stack = SipStack(StackConfig(transport=TransportConfig(port=5060)))
    stack.set_handler("MESSAGE", on_message)          # handler(IncomingRequest)
    async with stack:
        response = await stack.request("OPTIONS", "sip:gw@192.0.2.1")
        call = await stack.invite("sip:100@192.0.2.1", body=sdp)
        async for response in call: ...                # provisionals, then the final
        await stack.request("BYE", dialog=call.dialog)

Without a handler the stack answers OPTIONS (200 with Allow/Accept/Supported), unknown
methods (405 with Allow), requests for unknown dialogs (481), malformed requests (400 whose
reason phrase and Warning say what is wrong) and BYE in a known dialog (200); malformed
responses are dropped. Floods are bounded by a per-source token bucket and a cap on
transactions; counters for metrics are in ``stack.counters``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from sip.dialog import AnswerRetransmission, Dialog, DialogId, DialogState
from sip.digest import Credentials, DigestClient, replace_credentials
from sip.errors import SipOverloadError, SipParseError, SipStateError, SipTransportError
from sip.headers import CSeq, NameAddr, Param, Via, quote
from sip.hops import Address, format_host, is_ip, next_hop, response_address, stamp, stamp_via
from sip.limits import RateLimiter
from sip.message import (
    Header,
    SipRequest,
    SipResponse,
    bad_request_response,
    create_response,
    new_tag,
    parse_message,
    reason_phrase,
)
from sip.transaction import (
    MAGIC_COOKIE,
    Action,
    CancelTimer,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Deliver,
    Failed,
    Send,
    ServerInviteState,
    ServerInviteTransaction,
    ServerNonInviteState,
    ServerNonInviteTransaction,
    StartTimer,
    Terminated,
    TimerName,
    Timers,
    Transaction,
    TransactionKey,
    client_key,
    invite_key_for_cancel,
    new_branch,
    server_key,
)
from sip.transport import (
    LogThrottle,
    Origin,
    SipConnection,
    SipCounters,
    TransportConfig,
    TransportLayer,
)
from sip.uac import OutgoingInvite, ResponseCallback, _with_cseq
from sip.uas import IncomingRequest
from sip.uri import SipUri, TelUri, Uri, UriParam, parse_uri

logger = logging.getLogger(__name__)

RequestHandler = Callable[[IncomingRequest], Awaitable[None] | None]
Destination = Address | Origin
_WILDCARDS = ("0.0.0.0", "::")
_DIALOG_CREATING = frozenset(("INVITE", "SUBSCRIBE", "REFER"))


@dataclass(frozen=True)
class StackConfig:
    """Everything ``SipStack`` needs; every bound has a default.

    ``advertised_host`` is written in Via and Contact (required when listening on a
    wildcard address). ``force_rport`` answers every request to its source address and
    port (RFC 3581 behaviour for peers behind NAT that do not ask for it). ``rate_limit``
    is messages per second per source IP (None: off), ``rate_burst`` the bucket size;
    sources in ``rate_limit_exempt`` (trunk peers, the benchmark) are not limited.
    ``max_transactions`` caps the transactions still waiting for a final response, client
    and server (503 beyond it); ``max_live_transactions`` caps all transactions kept with
    their full state (pending, or in a wait state such as Timer L or D); ``max_answered``
    bounds the answered non-INVITE server transactions kept compactly (response bytes)
    until Timer J, to answer retransmissions (the oldest are dropped beyond it).
    A non-INVITE the application leaves unanswered gets 500 after ``answer_timeout``
    seconds, an INVITE 408 after ``invite_answer_timeout``.
    """

    transport: TransportConfig = field(default_factory=TransportConfig)
    timers: Timers = field(default_factory=Timers)
    domain: str = "cchub.local"
    advertised_host: str | None = None
    user_agent: str = "cchub"
    force_rport: bool = False
    rate_limit: float | None = 200.0
    rate_burst: int = 400
    rate_limit_exempt: frozenset[str] = frozenset()
    max_rate_sources: int = 10_000
    max_transactions: int = 5000
    max_live_transactions: int = 20_000
    max_answered: int = 100_000
    retry_after: int = 5
    answer_timeout: float = 30.0
    invite_answer_timeout: float = 180.0
    accept: tuple[str, ...] = ("application/sdp",)
    supported: tuple[str, ...] = ()


_NO_KEY = TransactionKey("", "", "")  # the 2xx retransmission is not a transaction


class _Entry:
    """A running sans-IO machine with its asyncio timers and where it sends."""

    __slots__ = (
        "address",
        "connection",
        "incoming",
        "key",
        "local",
        "machine",
        "on_deliver",
        "on_end",
        "on_failed",
        "pending",
        "timers",
    )

    def __init__(
        self,
        machine: Transaction,
        address: Address,
        connection: SipConnection | None,
        on_deliver: Callable[[Any], None],
        on_failed: Callable[[int, str], None],
        on_end: Callable[[_Entry], object] | None = None,
        key: TransactionKey = _NO_KEY,
    ) -> None:
        self.machine = machine
        self.key = key
        self.address = address
        self.connection = connection
        self.on_deliver = on_deliver
        self.on_failed = on_failed
        self.on_end = on_end
        self.timers: dict[TimerName, asyncio.TimerHandle] = {}
        self.incoming: IncomingRequest | None = None
        self.local: Address | None = None  # for server transactions: where the request came
        self.pending = False  # counted against max_transactions until its final response


@dataclass(slots=True)
class _Answered:
    """An answered non-INVITE server transaction over UDP in its Completed state, kept as
    the final response's bytes until Timer J (a few hundred bytes instead of the parsed
    request, response and machine)."""

    data: bytes
    address: Address
    local: Address | None
    expires: float


def _name_addr(value: NameAddr | str | Uri | None, what: str) -> NameAddr | None:
    if value is None or isinstance(value, NameAddr):
        return value
    if isinstance(value, str):
        return NameAddr.parse(value, what)
    return NameAddr(value)


class SipStack:
    """The SIP user agent core: transports, transactions, dialogs, default answers."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config if config is not None else StackConfig()
        self.counters = SipCounters()
        self._transport = TransportLayer(self.config.transport, self._on_message, self.counters)
        self._handlers: dict[str, RequestHandler] = {}
        self._server: dict[TransactionKey, _Entry] = {}
        self._client: dict[TransactionKey, _Entry] = {}
        self._answers: dict[tuple[DialogId, int], tuple[_Entry, IncomingRequest]] = {}
        self._dialogs: dict[DialogId, Dialog] = {}
        self._dialog_handlers: dict[DialogId, RequestHandler] = {}
        self._dialog_routes: dict[DialogId, Destination] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._throttle = LogThrottle(logger)
        self._limiter = (
            RateLimiter(
                self.config.rate_limit,
                self.config.rate_burst,
                max_keys=self.config.max_rate_sources,
            )
            if self.config.rate_limit is not None
            else None
        )
        self._flood_replies: dict[str, float] = {}
        self._pending = 0
        self._answered: dict[TransactionKey, _Answered] = {}
        self._answered_order: deque[tuple[float, TransactionKey]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the transports; raises ``SipTransportError`` when that fails."""
        hosts = self.config.transport.hosts
        if any(h in _WILDCARDS for h in hosts) and self.config.advertised_host is None:
            raise SipTransportError("listening on a wildcard address needs advertised_host")
        self._loop = asyncio.get_running_loop()
        await self._transport.start()
        self._running = True

    async def close(self) -> None:
        """Stop: fail pending requests with a local 503, cancel timers and tasks, close
        the transports."""
        if not self._running:
            return
        self._running = False
        for entry in [*self._client.values(), *self._server.values()]:
            for handle in entry.timers.values():
                handle.cancel()
            entry.timers.clear()
        for entry in list(self._client.values()):
            entry.on_failed(503, "Service Unavailable (stack closed)")
        for answer, _ in self._answers.values():
            for handle in answer.timers.values():
                handle.cancel()
        self._client.clear()
        self._server.clear()
        self._answers.clear()
        self._answered.clear()
        self._answered_order.clear()
        self._pending = 0
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        await self._transport.close()
        self.counters.transactions_active = 0

    async def __aenter__(self) -> SipStack:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def addresses(self) -> list[Address]:
        """The bound addresses (real ports when the configured port was 0)."""
        return self._transport.addresses

    def address(self, transport: str = "UDP", *, ipv6: bool = False) -> Address:
        """Our listening address for one transport and address family."""
        return self._transport.local_address(transport, ipv6)

    @property
    def dialogs(self) -> list[Dialog]:
        return list(self._dialogs.values())

    def find_dialog(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    # -- application hooks ----------------------------------------------------------------

    def set_handler(self, method: str, handler: RequestHandler | None) -> None:
        """Route requests of ``method`` (out of dialog, and in dialogs without their own
        handler) to ``handler``; None removes it. The handler may answer at once or
        later, and may be a coroutine function; it must not block."""
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"{method} is handled by the stack (see IncomingRequest)")
        if handler is None:
            self._handlers.pop(method, None)
        else:
            self._handlers[method] = handler

    def bind_dialog(self, dialog: Dialog, handler: RequestHandler | None) -> None:
        """Route the requests of one dialog (BYE, re-INVITE, INFO...) to ``handler``."""
        if handler is None:
            self._dialog_handlers.pop(dialog.id, None)
        elif dialog.id in self._dialogs:
            self._dialog_handlers[dialog.id] = handler
        else:
            raise SipStateError(f"dialog {dialog.id} is not known to this stack")

    @property
    def allowed_methods(self) -> list[str]:
        return sorted({"ACK", "BYE", "CANCEL", "OPTIONS", *self._handlers})

    def contact(
        self, user: str | None = None, transport: str = "UDP", ipv6: bool = False
    ) -> NameAddr:
        """Our Contact for ``transport``: ``<sip:user@host:port;transport=tcp>``."""
        local = self._transport.local_address(transport, ipv6)
        return self._contact_at(local, user)

    def _contact_at(self, local: Address, user: str | None) -> NameAddr:
        params = () if local.transport == "UDP" else (f"transport={local.transport.lower()}",)
        uri = SipUri(
            self._advertised(local),
            user=user,
            port=local.port,
            params=tuple(_uri_param(p) for p in params),
            scheme="sips" if local.transport == "TLS" else "sip",
        )
        return NameAddr(uri)

    def _contact_for(self, origin: Origin) -> NameAddr:
        try:
            local = self._transport.local_address(origin.local.transport, origin.local.is_ipv6)
        except SipTransportError:
            local = origin.local
        return self._contact_at(local, None)

    def _advertised(self, local: Address) -> str:
        if self.config.advertised_host is not None:
            return format_host(self.config.advertised_host)
        return format_host(local.host)

    # -- building requests ----------------------------------------------------------------

    def build_request(
        self,
        method: str,
        uri: Uri | str,
        *,
        from_: NameAddr | str | None = None,
        to: NameAddr | str | None = None,
        call_id: str | None = None,
        cseq: int = 1,
        headers: Iterable[Header] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """An out-of-dialog request (no Via: added when sent). From defaults to
        ``sip:cchub@<domain>`` with a new tag, To to the Request-URI."""
        request_uri = parse_uri(uri) if isinstance(uri, str) else uri
        sender = _name_addr(from_, "From") or NameAddr(SipUri(self.config.domain, user="cchub"))
        if sender.tag is None:
            sender = sender.with_param("tag", new_tag())
        target = _name_addr(to, "To") or NameAddr(_plain(request_uri))
        out = [
            Header("Max-Forwards", "70"),
            Header("From", str(sender)),
            Header("To", str(target)),
            Header("Call-ID", call_id or f"{new_tag()}{new_tag()}@{self.config.domain}"),
            Header("CSeq", str(CSeq(cseq, method))),
            Header("User-Agent", self.config.user_agent),
            *headers,
        ]
        if body and content_type is not None:
            out.append(Header("Content-Type", content_type))
        return SipRequest(method, request_uri, tuple(out), body)

    async def request(
        self,
        method: str,
        uri: Uri | str | None = None,
        *,
        dialog: Dialog | None = None,
        from_: NameAddr | str | None = None,
        to: NameAddr | str | None = None,
        call_id: str | None = None,
        cseq: int = 1,
        headers: Iterable[Header] = (),
        body: bytes = b"",
        content_type: str | None = None,
        credentials: Credentials | None = None,
        destination: Destination | None = None,
    ) -> SipResponse:
        """Send a non-INVITE request (in ``dialog`` when given) and return its final
        response; a 401/407 is answered when ``credentials`` are given. Timeouts and
        transport errors come back as a local 408 / 503 response, never as exceptions.
        A BYE (any final response) or a 408/481 ends the dialog."""
        if method in ("INVITE", "ACK", "CANCEL"):
            raise ValueError(f"use invite()/reinvite() or OutgoingInvite for {method}")
        if dialog is not None:
            template = dialog.create_request(
                method, headers=headers, body=body, content_type=content_type
            )
            destination = destination or self._dialog_routes.get(dialog.id)
        else:
            if uri is None:
                raise ValueError("a request outside a dialog needs a uri")
            template = self.build_request(
                method,
                uri,
                from_=from_,
                to=to,
                call_id=call_id,
                cseq=cseq,
                headers=headers,
                body=body,
                content_type=content_type,
            )
        digest = DigestClient(credentials) if credentials is not None else None
        response = await self._transact(template, destination)
        for _ in range(2):
            if response.status not in (401, 407) or digest is None:
                break
            authorization = digest.answer(template, response)
            if not authorization:
                break
            if dialog is not None:
                dialog.local_seq += 1
                seq = dialog.local_seq
            else:
                seq = template.cseq.seq + 1
            template = replace_credentials(_with_cseq(template, seq), authorization)
            response = await self._transact(template, destination)
        if dialog is not None:
            dialog.receive_response(template, response)
            if method == "BYE":
                dialog.terminate()
        return response

    async def invite(
        self,
        uri: Uri | str,
        *,
        from_: NameAddr | str | None = None,
        to: NameAddr | str | None = None,
        call_id: str | None = None,
        headers: Iterable[Header] = (),
        body: bytes = b"",
        content_type: str = "application/sdp",
        credentials: Credentials | None = None,
        destination: Destination | None = None,
        auto_ack: bool = True,
        on_response: ResponseCallback | None = None,
    ) -> OutgoingInvite:
        """Send an INVITE and return its handle once it is on the wire (a Contact for the
        chosen transport is added unless ``headers`` carry one)."""
        template = self.build_request(
            "INVITE",
            uri,
            from_=from_,
            to=to,
            call_id=call_id,
            headers=headers,
            body=body,
            content_type=content_type if body else None,
        )
        call = OutgoingInvite(
            self,
            template,
            credentials=credentials,
            destination=destination,
            auto_ack=auto_ack,
            on_response=on_response,
        )
        await call._start()
        return call

    async def reinvite(
        self,
        dialog: Dialog,
        *,
        headers: Iterable[Header] = (),
        body: bytes = b"",
        content_type: str = "application/sdp",
        credentials: Credentials | None = None,
        auto_ack: bool = True,
        on_response: ResponseCallback | None = None,
    ) -> OutgoingInvite:
        """A re-INVITE in ``dialog`` (hold, resume, new media); raises ``SipStateError``
        while another re-INVITE is pending. A 491 answer means glare: retry after
        ``dialog.glare_retry_delay()``."""
        dialog.begin_local_invite()
        template = dialog.create_request(
            "INVITE", headers=headers, body=body, content_type=content_type if body else None
        )
        call = OutgoingInvite(
            self,
            template,
            credentials=credentials,
            destination=None,
            auto_ack=auto_ack,
            on_response=on_response,
            dialog=dialog,
        )
        await call._start()
        return call

    # -- client side internals ------------------------------------------------------------

    async def _transact(self, template: SipRequest, destination: Destination | None) -> SipResponse:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SipResponse] = loop.create_future()
        sent: list[SipRequest] = [template]

        def deliver(response: SipResponse) -> None:
            if response.status >= 200 and not future.done():
                future.set_result(response)

        def failed(status: int, reason: str) -> None:
            if not future.done():
                future.set_result(create_response(sent[-1], status, reason))

        try:
            entry = await self._start_client(template, destination, deliver, failed)
        except (SipTransportError, SipOverloadError) as err:
            return create_response(template, 503, f"Service Unavailable ({err})")
        sent.append(entry.machine.request)
        return await future

    async def _route(
        self, request: SipRequest, destination: Destination | None
    ) -> tuple[Address, SipConnection | None, str | None]:
        if isinstance(destination, Origin):
            connection = destination.connection
            if connection is not None and not connection.closed:
                return destination.remote, connection, None
            if not destination.remote.reliable:
                return destination.remote, None, None
            destination = None  # the peer's connection is gone: route by the request
        if isinstance(destination, Address):
            return destination, None, None
        hop = next_hop(request)
        if not self._transport.supports(hop.transport):
            raise SipTransportError(f"cannot reach {hop.host}: {hop.transport} is not enabled")
        if is_ip(hop.host):
            return Address(hop.transport, hop.host, hop.port), None, hop.server_name
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(hop.host, hop.port, type=socket.SOCK_DGRAM)
        except OSError as err:
            raise SipTransportError(f"cannot resolve {hop.host}: {err}") from err
        families = {a.is_ipv6 for a in self._transport.addresses}
        for family, _, _, _, sockaddr in infos:
            if (family == socket.AF_INET6) in families:
                return Address(hop.transport, str(sockaddr[0]), hop.port), None, hop.server_name
        raise SipTransportError(f"no usable address for {hop.host}")

    def _stamp_outgoing(
        self, template: SipRequest, address: Address, connection: SipConnection | None
    ) -> SipRequest:
        try:
            local = self._transport.local_address(address.transport, address.is_ipv6)
        except SipTransportError:
            if connection is None:
                raise
            local = connection.local
        via = Via(
            address.transport,
            self._advertised(local),
            local.port,
            (Param("branch", new_branch()), Param("rport")),
        )
        headers = [Header("Via", str(via)), *template.headers]
        if template.method in _DIALOG_CREATING and template.get("Contact") is None:
            user = template.from_.uri.user if isinstance(template.from_.uri, SipUri) else None
            headers.append(Header("Contact", str(self._contact_at(local, user))))
        return SipRequest(template.method, template.uri, tuple(headers), template.body)

    async def _start_client(
        self,
        template: SipRequest,
        destination: Destination | None,
        on_deliver: Callable[[SipResponse], None],
        on_failed: Callable[[int, str], None],
    ) -> _Entry:
        if not self._running:
            raise SipTransportError("the SIP stack is not running")
        self._check_capacity()
        address, connection, server_name = await self._route(template, destination)
        if address.reliable and connection is None:
            connection = await self._transport.connect(address, server_name)
        request = self._stamp_outgoing(template, address, connection)
        return self._run_client(request, address, connection, on_deliver, on_failed)

    def _full(self) -> bool:
        config = self.config
        return (
            self._pending >= config.max_transactions
            or len(self._client) + len(self._server) >= config.max_live_transactions
        )

    def _check_capacity(self) -> None:
        if self._full():
            self.counters.overload_rejected += 1
            raise SipOverloadError(f"{self.config.max_transactions} transactions in progress")

    def _run_client(
        self,
        request: SipRequest,
        address: Address,
        connection: SipConnection | None,
        on_deliver: Callable[[SipResponse], None],
        on_failed: Callable[[int, str], None],
    ) -> _Entry:
        timers = self.config.timers
        machine: ClientInviteTransaction | ClientNonInviteTransaction
        if request.method == "INVITE":
            machine = ClientInviteTransaction(request, reliable=address.reliable, timers=timers)
        else:
            machine = ClientNonInviteTransaction(request, reliable=address.reliable, timers=timers)
        entry = _Entry(
            machine, address, connection, on_deliver, on_failed, self._client_ended, machine.key
        )
        self._client[machine.key] = entry
        entry.pending = True
        self._pending += 1
        self._count_transactions()
        self._execute(entry, machine.start(self._now()))
        return entry

    def _client_ended(self, entry: _Entry) -> None:
        if self._client.get(entry.key) is entry:
            del self._client[entry.key]
        self._settle(entry)
        self._count_transactions()

    def _settle(self, entry: _Entry) -> None:
        """The transaction has its final response: it no longer counts as pending."""
        if entry.pending:
            entry.pending = False
            self._pending -= 1
            self.counters.transactions_pending = self._pending

    async def _send_stateless(
        self, request: SipRequest, destination: Destination | None
    ) -> tuple[bytes, Address, SipConnection | None]:
        """Send a request outside any transaction (the ACK for a 2xx)."""
        address, connection, server_name = await self._route(request, destination)
        if address.reliable and connection is None:
            connection = await self._transport.connect(address, server_name)
        data = bytes(self._stamp_outgoing(request, address, connection))
        self._transport.send(data, address, connection)
        return data, address, connection

    # -- the action executor --------------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _execute(self, entry: _Entry, actions: list[Action]) -> None:
        loop = self._loop
        assert loop is not None
        for action in actions:
            if isinstance(action, Send):
                if action.retransmission:
                    self.counters.retransmissions += 1
                self._transport.send(
                    bytes(action.message),
                    entry.address,
                    entry.connection,
                    partial(self._send_error, entry),
                    local=entry.local,
                )
            elif isinstance(action, StartTimer):
                old = entry.timers.pop(action.timer, None)
                if old is not None:
                    old.cancel()
                entry.timers[action.timer] = loop.call_at(
                    action.at, self._timer_fired, entry, action.timer, action.at
                )
            elif isinstance(action, CancelTimer):
                handle = entry.timers.pop(action.timer, None)
                if handle is not None:
                    handle.cancel()
            elif isinstance(action, Deliver):
                message = action.message
                if entry.pending and isinstance(message, SipResponse) and message.status >= 200:
                    self._settle(entry)
                entry.on_deliver(message)
            elif isinstance(action, Failed):
                self._settle(entry)
                entry.on_failed(action.status, action.reason)
            elif isinstance(action, Terminated):
                for handle in entry.timers.values():
                    handle.cancel()
                entry.timers.clear()
                if entry.on_end is not None:
                    entry.on_end(entry)

    def _timer_fired(self, entry: _Entry, timer: TimerName, at: float) -> None:
        entry.timers.pop(timer, None)
        # call_at may run a little early (clock resolution): the machine sees the deadline.
        self._execute(entry, entry.machine.on_timer(timer, max(self._now(), at)))

    def _send_error(self, entry: _Entry, reason: str) -> None:
        assert self._loop is not None
        self._loop.call_soon(self._transport_failed, entry, reason)

    def _transport_failed(self, entry: _Entry, reason: str) -> None:
        logger.debug("transport error for %s: %s", entry.machine.request.method, reason)
        self._execute(entry, entry.machine.transport_error(self._now()))

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s crashed", task.get_name(), exc_info=task.exception())

    def _count_transactions(self) -> None:
        counters = self.counters
        counters.transactions_active = len(self._client) + len(self._server) + len(self._answered)
        counters.transactions_pending = self._pending

    # -- receiving ------------------------------------------------------------------------

    def _on_message(self, data: bytes, origin: Origin) -> None:
        if not self._running:
            return
        if self._answered_order:
            self._prune_answered(self._now())
        host = origin.remote.host
        limiter = self._limiter
        if (
            limiter is not None
            and host not in self.config.rate_limit_exempt
            and not limiter.allow(host, self._now())
        ):
            self.counters.rate_limited += 1
            self._refuse_flood(data, origin)
            return
        try:
            message = parse_message(data)
        except SipParseError as err:
            self._malformed(data, origin, err)
            return
        if isinstance(message, SipResponse):
            self._on_response(message, origin)
        else:
            try:
                self._on_request(message, origin)
            except SipParseError as err:  # a header the parser let through lazily
                self._malformed(data, origin, err)

    def _refuse_flood(self, data: bytes, origin: Origin) -> None:
        host = origin.remote.host
        now = self._now()
        self._throttle.warning(
            f"rate:{host}", "rate limit: dropping messages from %s", origin.remote
        )
        if now - self._flood_replies.get(host, -1e9) < 1.0:
            return
        if len(self._flood_replies) > 1024:
            self._flood_replies.clear()
        self._flood_replies[host] = now
        try:
            message = parse_message(data)
        except SipParseError:
            return
        if isinstance(message, SipRequest) and message.method != "ACK":
            retry = Header("Retry-After", str(self.config.retry_after))
            self._reply_stateless(message, origin, 503, "Service Unavailable (rate limit)", retry)

    def _malformed(self, data: bytes, origin: Origin, err: SipParseError) -> None:
        self.counters.parse_errors += 1
        logger.debug("malformed message from %s: %s", origin.remote, err.reason)
        response = bad_request_response(data, err)
        if response is None:
            return
        warning = Header("Warning", f"399 {self._advertised(origin.local)} {quote(err.reason)}")
        self._send_reply(response.with_headers(warning), origin)

    def _reply_stateless(
        self, request: SipRequest, origin: Origin, status: int, reason: str, *headers: Header
    ) -> None:
        self._send_reply(create_response(request, status, reason, to_tag=new_tag(),
                                         headers=headers), origin)  # fmt: skip

    def _send_reply(self, response: SipResponse, origin: Origin) -> None:
        if origin.connection is not None:
            self._transport.send(bytes(response), origin.remote, origin.connection)
            return
        try:
            via = stamp(response.top_via, origin.remote, force_rport=self.config.force_rport)
            address = response_address(via)
        except SipParseError:
            address = origin.remote
        if address.transport != origin.remote.transport:
            address = Address(origin.remote.transport, address.host, address.port)
        self._transport.send(bytes(response), address, local=origin.local)

    def _on_response(self, response: SipResponse, origin: Origin) -> None:
        if len(response.vias) != 1:
            logger.debug("dropping response with %d Vias (section 8.1.3.3)", len(response.vias))
            return
        entry = self._client.get(client_key(response))
        if entry is None:
            logger.debug(
                "no transaction for %d %s from %s", response.status, response.cseq, origin.remote
            )
            return
        machine = entry.machine
        assert isinstance(machine, ClientInviteTransaction | ClientNonInviteTransaction)
        self._execute(entry, machine.receive(response, self._now()))

    def _on_request(self, request: SipRequest, origin: Origin) -> None:
        request = stamp_via(request, origin.remote, force_rport=self.config.force_rport)
        key = server_key(request)
        if request.method == "ACK":
            self._on_ack(request, key)
            return
        answered = self._answered.get(key)
        if answered is not None:
            self.counters.retransmissions += 1
            self._transport.send(answered.data, answered.address, local=answered.local)
            return
        entry = self._server.get(key)
        if entry is not None:
            current = entry.machine
            assert isinstance(current, ServerInviteTransaction | ServerNonInviteTransaction)
            self._execute(entry, current.receive(request, self._now()))
            return
        if self._full():
            self.counters.overload_rejected += 1
            self._throttle.warning("overload", "transaction limit reached: answering 503")
            retry = Header("Retry-After", str(self.config.retry_after))
            self._reply_stateless(request, origin, 503, "Service Unavailable (overload)", retry)
            return
        address = response_address(request.top_via)
        if address.transport != origin.remote.transport:
            address = Address(origin.remote.transport, address.host, address.port)
        reliable = origin.connection is not None
        machine: ServerInviteTransaction | ServerNonInviteTransaction
        timers = self.config.timers
        if request.method == "INVITE":
            machine = ServerInviteTransaction(request, reliable=reliable, timers=timers)
        else:
            machine = ServerNonInviteTransaction(request, reliable=reliable, timers=timers)
        entry = _Entry(
            machine, address, origin.connection, _ignore, _ignore, self._server_ended, key
        )
        incoming = IncomingRequest(self, entry, request, origin)
        entry.incoming = incoming
        entry.local = origin.local
        entry.on_deliver = lambda _message: self._dispatch(incoming)
        entry.on_failed = partial(self._server_failed, incoming)
        self._server[key] = entry
        entry.pending = True
        self._pending += 1
        self._count_transactions()
        self._execute(entry, machine.start(self._now()))

    def _server_ended(self, entry: _Entry) -> None:
        if self._server.get(entry.key) is entry:
            del self._server[entry.key]
        incoming = entry.incoming
        if incoming is not None and incoming._deadline is not None:
            incoming._deadline.cancel()
        self._settle(entry)
        self._count_transactions()

    def _retire(self, entry: _Entry, response: SipResponse) -> None:
        """Keep an answered UDP non-INVITE transaction as bytes until Timer J."""
        deadline = entry.machine.pending_timers.get(TimerName.J)
        for handle in entry.timers.values():
            handle.cancel()
        entry.timers.clear()
        if self._server.get(entry.key) is entry:
            del self._server[entry.key]
        if deadline is None:
            self._count_transactions()
            return
        self._answered[entry.key] = _Answered(bytes(response), entry.address, entry.local, deadline)
        self._answered_order.append((deadline, entry.key))
        self._prune_answered(self._now())
        self._count_transactions()

    def _prune_answered(self, now: float) -> None:
        """Forget answered transactions past Timer J (FIFO: J is the same for all), and
        the oldest beyond ``max_answered``."""
        order, table = self._answered_order, self._answered
        limit = self.config.max_answered
        while order and (order[0][0] <= now or len(table) > limit):
            deadline, key = order.popleft()
            answered = table.get(key)
            if answered is not None and answered.expires == deadline:
                del table[key]

    def _server_failed(self, incoming: IncomingRequest, status: int, reason: str) -> None:
        logger.debug("%s from %s: %s", incoming.method, incoming.origin.remote, reason)
        if status == 408 and incoming.method == "INVITE":
            incoming._acked(None)

    def _on_ack(self, ack: SipRequest, key: Any) -> None:
        entry = self._server.get(key)
        machine = entry.machine if entry is not None else None
        if (
            entry is not None
            and isinstance(machine, ServerInviteTransaction)
            and machine.state in (ServerInviteState.COMPLETED, ServerInviteState.CONFIRMED)
            and (key.branch.startswith(MAGIC_COOKIE) or _same_to_tag(ack, machine))
        ):
            self._execute(entry, machine.receive(ack, self._now()))
            return
        dialog = self._dialogs.get(DialogId(ack.call_id, ack.to.tag or "", ack.from_.tag or ""))
        if dialog is None:
            logger.debug("ACK for no dialog or transaction (%s)", ack.call_id)
            return
        answer = self._answers.get((dialog.id, ack.cseq.seq))
        if answer is None:
            return  # a retransmitted ACK
        answer_entry, incoming = answer
        assert isinstance(answer_entry.machine, AnswerRetransmission)
        self._execute(answer_entry, answer_entry.machine.acknowledge(self._now()))
        incoming._acked(ack)

    # -- dispatching requests to the application ------------------------------------------

    def _dispatch(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        method = request.method
        if method == "CANCEL":
            self._on_cancel(incoming)
            return
        if not isinstance(request.uri, SipUri | TelUri):
            incoming.respond(416, f"Unsupported URI Scheme ({str(request.uri).split(':')[0]})")
            return
        required = [t for v in request.get_all("Require") for t in _tokens(v)]
        unsupported = [t for t in required if t not in self.config.supported]
        if unsupported:
            incoming.respond(420, headers=[Header("Unsupported", ", ".join(unsupported))])
            return
        handler: RequestHandler | None = None
        if incoming.in_dialog:
            dialog = self._dialogs.get(
                DialogId(request.call_id, incoming.to_tag, request.from_.tag or "")
            )
            if dialog is None:
                if method != "REGISTER":
                    incoming.respond(481)
                    return
            else:
                refusal = dialog.receive_request(request)
                if refusal is not None:
                    incoming.respond(refusal.status, refusal.reason, headers=refusal.headers)
                    return
                incoming.dialog = dialog
                handler = self._dialog_handlers.get(dialog.id)
        if method == "INVITE" and request.body and request.content_type not in self.config.accept:
            accept = Header("Accept", ", ".join(self.config.accept))
            incoming.respond(415, headers=[accept])
            if incoming.dialog is not None:
                incoming.dialog.end_remote_invite()
            return
        handler = handler or self._handlers.get(method)
        if handler is None:
            self._default_answer(incoming)
            return
        self._invoke(handler, incoming)

    def _default_answer(self, incoming: IncomingRequest) -> None:
        method = incoming.method
        allow = Header("Allow", ", ".join(self.allowed_methods))
        if method == "OPTIONS":
            incoming.respond(
                200,
                headers=[
                    allow,
                    Header("Accept", ", ".join(self.config.accept)),
                    Header("Supported", ", ".join(self.config.supported)),
                ],
            )
        elif method == "BYE" and incoming.dialog is not None:
            incoming.respond(200)
        else:
            if incoming.dialog is not None and method == "INVITE":
                incoming.dialog.end_remote_invite()
            incoming.respond(405, headers=[allow])

    def _invoke(self, handler: RequestHandler, incoming: IncomingRequest) -> None:
        assert self._loop is not None
        timeout = (
            self.config.invite_answer_timeout
            if incoming.method == "INVITE"
            else self.config.answer_timeout
        )
        try:
            result = handler(incoming)
        except Exception:
            logger.exception("handler for %s failed", incoming.method)
            self._answer_if_pending(incoming, 500, "Server Internal Error")
            return
        if inspect.isawaitable(result):
            self._spawn(self._await_handler(result, incoming), f"sip-{incoming.method}")
        if not incoming.answered:  # most handlers answer at once: no timer for them
            incoming._deadline = self._loop.call_later(timeout, self._unanswered, incoming)

    async def _await_handler(self, result: Awaitable[None], incoming: IncomingRequest) -> None:
        try:
            await result
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("handler for %s failed", incoming.method)
            self._answer_if_pending(incoming, 500, "Server Internal Error")

    def _unanswered(self, incoming: IncomingRequest) -> None:
        if not incoming.answered:
            logger.warning(
                "%s from %s not answered in time", incoming.method, incoming.origin.remote
            )
            status = 408 if incoming.method == "INVITE" else 500
            self._answer_if_pending(incoming, status, f"{reason_phrase(status)} (no answer)")

    def _answer_if_pending(self, incoming: IncomingRequest, status: int, reason: str) -> None:
        if not incoming.answered and not incoming._entry.machine.terminated:
            with contextlib.suppress(SipStateError):
                incoming.respond(status, reason)

    def _on_cancel(self, incoming: IncomingRequest) -> None:
        target = self._server.get(invite_key_for_cancel(incoming.request))
        invite = target.incoming if target is not None else None
        if invite is None or invite.method != "INVITE":
            incoming.respond(481)
            return
        incoming.respond(200)
        if invite.answered:
            return  # too late: the final response stands (section 9.2)
        invite.cancelled = True
        invite.respond(487)
        if invite.on_cancel is not None:
            try:
                invite.on_cancel(invite)
            except Exception:
                logger.exception("on_cancel callback failed")

    # -- answering ------------------------------------------------------------------------

    def _respond(self, incoming: IncomingRequest, response: SipResponse) -> None:
        entry = incoming._entry
        machine = entry.machine
        assert isinstance(machine, ServerInviteTransaction | ServerNonInviteTransaction)
        actions = machine.respond(response, self._now())
        status = response.status
        if status >= 200 and incoming.final is None:
            incoming.final = response
            if incoming._deadline is not None:
                incoming._deadline.cancel()
            self._settle(entry)
        self._execute(entry, actions)
        if (
            isinstance(machine, ServerNonInviteTransaction)
            and machine.state is ServerNonInviteState.COMPLETED
            and not machine.reliable
        ):
            self._retire(entry, response)
        if incoming.method == "INVITE":
            self._after_invite_response(incoming, response)
        elif incoming.method == "BYE" and 200 <= status < 300 and incoming.dialog is not None:
            incoming.dialog.terminate()

    def _after_invite_response(self, incoming: IncomingRequest, response: SipResponse) -> None:
        status = response.status
        dialog = incoming.dialog
        request = incoming.request
        if dialog is None and 101 <= status < 300 and response.to.tag is not None:
            contacts = response.contacts
            dialog = Dialog.from_uas(
                request, incoming.to_tag, contacts[0] if contacts else None, early=status < 200
            )
            route: Destination | None = None
            if incoming.origin.connection is not None or self.config.force_rport:
                route = incoming.origin
            self._add_dialog(dialog, route)
            incoming.dialog = dialog
        if dialog is None or status < 200:
            return
        if incoming.in_dialog:
            dialog.end_remote_invite()
        if status >= 300:
            if dialog.state is DialogState.EARLY:
                dialog.terminate()
            return
        dialog.confirm()
        machine = AnswerRetransmission(
            request, response, reliable=incoming._entry.machine.reliable, timers=self.config.timers
        )
        key = (dialog.id, request.cseq.seq)
        answer = _Entry(
            machine,
            incoming._entry.address,
            incoming._entry.connection,
            _ignore,
            partial(self._answer_unacked, incoming),
            lambda _e: self._answers.pop(key, None),
        )
        answer.local = incoming._entry.local
        self._answers[key] = (answer, incoming)
        self._execute(answer, machine.start(self._now()))

    def _answer_unacked(self, incoming: IncomingRequest, status: int, reason: str) -> None:
        incoming._acked(None)
        dialog = incoming.dialog
        logger.warning("no ACK for the 2xx to INVITE %s: ending the call", incoming.request.call_id)
        if dialog is not None and not dialog.terminated:
            self._spawn(self.request("BYE", dialog=dialog), "sip-bye-noack")

    # -- dialogs --------------------------------------------------------------------------

    def _add_dialog(self, dialog: Dialog, route: Destination | None) -> None:
        self._dialogs[dialog.id] = dialog
        if route is not None:
            self._dialog_routes[dialog.id] = route
        dialog.add_listener(self._dialog_changed)
        self.counters.dialogs_active = len(self._dialogs)

    def _dialog_changed(self, dialog: Dialog, old: DialogState, new: DialogState) -> None:
        if new is not DialogState.TERMINATED:
            return
        if self._dialogs.get(dialog.id) is dialog:
            del self._dialogs[dialog.id]
            self._dialog_handlers.pop(dialog.id, None)
            self._dialog_routes.pop(dialog.id, None)
        for key in [k for k in self._answers if k[0] == dialog.id]:
            entry, _ = self._answers[key]
            assert isinstance(entry.machine, AnswerRetransmission)
            self._execute(entry, entry.machine.acknowledge(self._now()))
        self.counters.dialogs_active = len(self._dialogs)


def _ignore(*_args: object) -> None:
    return None


def _tokens(value: str) -> list[str]:
    return [t.strip().lower() for t in value.split(",") if t.strip()]


def _same_to_tag(ack: SipRequest, machine: ServerInviteTransaction) -> bool:
    last = machine.last_response
    return last is not None and last.to.tag == ack.to.tag


def _plain(uri: Uri) -> Uri:
    """A URI fit for a To header: no URI headers, no ``method``/``maddr``/``transport``."""
    if not isinstance(uri, SipUri):
        return uri
    kept = tuple(p for p in uri.params if p.name.lower() not in ("method", "maddr", "transport"))
    return replace(uri, params=kept, headers=())


def _uri_param(text: str) -> UriParam:
    name, _, value = text.partition("=")
    return UriParam(name, value or None)
