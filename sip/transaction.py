"""SIP transactions (RFC 3261 section 17, with the RFC 6026 Accepted states), sans-IO.

Four explicit state machines: client INVITE, client non-INVITE, server INVITE and server
non-INVITE. Each event method takes the current time ``now`` (seconds, any monotonic clock)
and returns a list of actions for the caller to carry out: ``Send`` a message, ``StartTimer``
(an absolute deadline; replaces a running timer of the same name), ``CancelTimer``,
``Deliver`` a message to the transaction user (TU), ``Failed`` (the TU must treat it as the
given final status) and ``Terminated``. Nothing here does I/O or reads a clock. Timers are
only armed for retransmission over unreliable transports, as section 17 says.
"""

from __future__ import annotations

import abc
import enum
import logging
import secrets
from dataclasses import dataclass, replace

from sip.errors import SipStateError
from sip.headers import Param, Via
from sip.message import Header, SipMessage, SipRequest, SipResponse, create_response

logger = logging.getLogger(__name__)

MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True, slots=True)
class Timers:
    """RFC 3261 timer base values (seconds); ``trying_delay`` is how long a server INVITE
    transaction waits for the TU's own provisional before sending 100 Trying (0: at once)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    trying_delay: float = 0.2

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J, L and M."""
        return 64 * self.t1


class TimerName(enum.Enum):
    """Timers by their RFC 3261 / RFC 6026 letter; TRYING is the 200 ms 100-Trying delay,
    ANSWER_RETRANSMIT / ANSWER_TIMEOUT the UAS 2xx retransmission of section 13.3.1.4."""

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 (the RFC's name)
    J = "J"
    K = "K"
    L = "L"
    M = "M"
    TRYING = "100-trying"
    ANSWER_RETRANSMIT = "2xx-retransmit"
    ANSWER_TIMEOUT = "2xx-timeout"


@dataclass(frozen=True, slots=True)
class Send:
    """Pass ``message`` to the transport (to the transaction's peer)."""

    message: SipMessage
    retransmission: bool = False


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Fire ``on_timer(timer, at)`` at time ``at``; replaces a running timer of that name."""

    timer: TimerName
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: TimerName


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand ``message`` to the TU (a response for client, a request for server machines)."""

    message: SipMessage


@dataclass(frozen=True, slots=True)
class Failed:
    """The transaction failed without a response; the TU treats it as ``status`` (408 on a
    timeout, 503 on a transport error, RFC 3261 section 8.1.3.1)."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction is over: cancel its timers and forget it."""


Action = Send | StartTimer | CancelTimer | Deliver | Failed | Terminated


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """What matches a message to a transaction (sections 17.1.3 and 17.2.3).

    ``branch`` is the Via branch, or for RFC 2543 peers (no magic cookie) a composite of
    Request-URI, From tag, Call-ID, CSeq number and top Via; ``sent_by`` is the top Via's
    host:port on the server side and empty on the client side; ``method`` is the request
    method, INVITE for an ACK.
    """

    branch: str
    sent_by: str
    method: str


def server_key(request: SipRequest) -> TransactionKey:
    """The server-transaction key of a request (ACK maps to its INVITE's key)."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    sent_by = f"{via.host.lower()}:{via.port or 5060}"
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return TransactionKey(branch, sent_by, method)
    # RFC 2543 peer (section 17.2.3): the To tag is left out so that the ACK, which
    # carries the tag of our response, finds the INVITE; the caller checks that tag.
    composite = "|".join(
        ("2543", str(request.uri), request.from_.tag or "", request.call_id,
         str(request.cseq.seq), str(via))
    )  # fmt: skip
    return TransactionKey(composite, sent_by, method)


def client_key(message: SipMessage) -> TransactionKey:
    """The client-transaction key: top Via branch and CSeq method (section 17.1.3)."""
    return TransactionKey(message.top_via.branch or "", "", message.cseq.method)


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie plus 64 random bits)."""
    return MAGIC_COOKIE + secrets.token_hex(8)


def ack_for_non_2xx(request: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK a client INVITE transaction sends for a 300-699 (section 17.1.1.3)."""
    headers = [Header("Via", str(request.top_via))]
    for name in ("Max-Forwards", "From", "Call-ID"):
        value = request.get(name)
        if value is not None:
            headers.append(Header(name, value))
    headers.append(Header("To", response.get("To") or request.get("To") or ""))
    headers.append(Header("CSeq", f"{request.cseq.seq} ACK"))
    headers.extend(h for h in request.headers if h.name == "Route")
    return SipRequest("ACK", request.uri, tuple(headers))


def cancel_for(request: SipRequest) -> SipRequest:
    """The CANCEL of a pending INVITE (section 9.1): same Request-URI, top Via (so the
    same branch), From, To, Call-ID, CSeq number and Route."""
    headers = [Header("Via", str(request.top_via))]
    for name in ("Max-Forwards", "From", "To", "Call-ID"):
        value = request.get(name)
        if value is not None:
            headers.append(Header(name, value))
    headers.append(Header("CSeq", f"{request.cseq.seq} CANCEL"))
    headers.extend(h for h in request.headers if h.name == "Route")
    return SipRequest("CANCEL", request.uri, tuple(headers))


def trying_response(request: SipRequest) -> SipResponse:
    """100 Trying, with the request's Timestamp copied (section 8.2.6.1)."""
    stamp = request.get("Timestamp")
    extra = (Header("Timestamp", stamp),) if stamp is not None else ()
    return create_response(request, 100, "Trying", headers=extra)


class ClientInviteState(enum.Enum):
    CALLING = "calling"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class ClientNonInviteState(enum.Enum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class ServerInviteState(enum.Enum):
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class ServerNonInviteState(enum.Enum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class Transaction(abc.ABC):
    """What the four machines share: the request, the key, state changes and timers."""

    state: enum.Enum  # each machine narrows it to its own enum, whose last value is terminated

    def __init__(self, request: SipRequest, *, reliable: bool, timers: Timers) -> None:
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self._deadlines: dict[TimerName, float] = {}

    @property
    def terminated(self) -> bool:
        return self.state.value == "terminated"

    @property
    def pending_timers(self) -> dict[TimerName, float]:
        """Running timers and their deadlines (a copy)."""
        return dict(self._deadlines)

    def _set_state(self, new: enum.Enum) -> None:
        if new is not self.state:
            logger.debug(
                "%s %s %s: %s -> %s", type(self).__name__, self.request.method,
                self.request.top_via.branch, self.state.value, new.value,
            )  # fmt: skip
            self.state = new

    def _start(self, actions: list[Action], timer: TimerName, at: float) -> None:
        self._deadlines[timer] = at
        actions.append(StartTimer(timer, at))

    def _cancel(self, actions: list[Action], *timers: TimerName) -> None:
        for timer in timers:
            if self._deadlines.pop(timer, None) is not None:
                actions.append(CancelTimer(timer))

    def _terminate(self, actions: list[Action]) -> None:
        self._cancel(actions, *list(self._deadlines))
        self._set_state(self.state.__class__("terminated"))
        actions.append(Terminated())

    def _fire(self, timer: TimerName, now: float) -> bool:
        """True when ``timer`` is running and due; it is then no longer running."""
        deadline = self._deadlines.get(timer)
        if deadline is None or now < deadline:
            return False
        del self._deadlines[timer]
        return True

    def _invalid(self, event: str) -> list[Action]:
        logger.debug("%s in state %s: %s ignored", type(self).__name__, self.state.value, event)
        return []

    @abc.abstractmethod
    def on_timer(self, timer: TimerName, now: float) -> list[Action]:
        """``timer`` fired at ``now``: the machine's actions (none when it is not due)."""

    def transport_error(self, now: float) -> list[Action]:
        """The transport could not send (section 17.1.4 / 17.2.4): fail and terminate."""
        if self.terminated:
            return []
        actions: list[Action] = [Failed(503, "Service Unavailable (transport error)")]
        self._terminate(actions)
        return actions


class ClientInviteTransaction(Transaction):
    """Client INVITE transaction (Figure 5, with RFC 6026's Accepted state): timers A, B,
    D and M; builds and re-sends the ACK for 300-699 itself."""

    def __init__(self, request: SipRequest, *, reliable: bool, timers: Timers) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        self.state: ClientInviteState = ClientInviteState.CALLING
        self.key = client_key(request)
        self._interval = timers.t1
        self._ack: SipRequest | None = None

    def start(self, now: float) -> list[Action]:
        actions: list[Action] = [Send(self.request)]
        if not self.reliable:
            self._start(actions, TimerName.A, now + self._interval)
        self._start(actions, TimerName.B, now + self.timers.timeout)
        return actions

    def receive(self, response: SipResponse, now: float) -> list[Action]:
        status = response.status
        actions: list[Action] = []
        match self.state:
            case ClientInviteState.CALLING | ClientInviteState.PROCEEDING:
                self._cancel(actions, TimerName.A)
                if status < 200:
                    # Section 17.1.1.2: no more retransmissions; Timer B only governs Calling.
                    self._cancel(actions, TimerName.B)
                    self._set_state(ClientInviteState.PROCEEDING)
                    actions.append(Deliver(response))
                elif status < 300:
                    self._cancel(actions, TimerName.B)
                    self._set_state(ClientInviteState.ACCEPTED)
                    actions.append(Deliver(response))
                    self._start(actions, TimerName.M, now + self.timers.timeout)
                else:
                    self._cancel(actions, TimerName.B)
                    self._ack = ack_for_non_2xx(self.request, response)
                    self._set_state(ClientInviteState.COMPLETED)
                    actions.append(Send(self._ack))
                    actions.append(Deliver(response))
                    wait = 0.0 if self.reliable else max(32.0, self.timers.timeout)
                    self._start(actions, TimerName.D, now + wait)
            case ClientInviteState.ACCEPTED:
                # RFC 6026: every 2xx (retransmission or another fork) goes to the TU,
                # which ACKs it; anything else is absorbed.
                if 200 <= status < 300:
                    actions.append(Deliver(response))
            case ClientInviteState.COMPLETED:
                if status >= 300 and self._ack is not None:
                    actions.append(Send(self._ack, retransmission=True))
            case ClientInviteState.TERMINATED:
                return self._invalid(f"response {status}")
        return actions

    def on_timer(self, timer: TimerName, now: float) -> list[Action]:
        if not self._fire(timer, now):
            return []
        actions: list[Action] = []
        match (self.state, timer):
            case (ClientInviteState.CALLING, TimerName.A):
                # Section 17.1.1.2: INVITE retransmissions double without the T2 cap.
                self._interval *= 2
                actions.append(Send(self.request, retransmission=True))
                self._start(actions, TimerName.A, now + self._interval)
            case (ClientInviteState.CALLING, TimerName.B):
                actions.append(Failed(408, "Request Timeout (no response, Timer B)"))
                self._terminate(actions)
            case (ClientInviteState.COMPLETED, TimerName.D) | (
                ClientInviteState.ACCEPTED,
                TimerName.M,
            ):
                self._terminate(actions)
            case _:
                return self._invalid(f"timer {timer.value}")
        return actions


class ClientNonInviteTransaction(Transaction):
    """Client non-INVITE transaction (Figure 6): timers E (doubling to T2), F and K."""

    def __init__(self, request: SipRequest, *, reliable: bool, timers: Timers) -> None:
        if request.method in ("INVITE", "ACK"):
            raise SipStateError(f"{request.method} cannot start a non-INVITE transaction")
        super().__init__(request, reliable=reliable, timers=timers)
        self.state: ClientNonInviteState = ClientNonInviteState.TRYING
        self.key = client_key(request)
        self._interval = timers.t1

    def start(self, now: float) -> list[Action]:
        actions: list[Action] = [Send(self.request)]
        if not self.reliable:
            self._start(actions, TimerName.E, now + self._interval)
        self._start(actions, TimerName.F, now + self.timers.timeout)
        return actions

    def receive(self, response: SipResponse, now: float) -> list[Action]:
        actions: list[Action] = []
        match self.state:
            case ClientNonInviteState.TRYING | ClientNonInviteState.PROCEEDING:
                if response.status < 200:
                    self._set_state(ClientNonInviteState.PROCEEDING)
                    actions.append(Deliver(response))
                else:
                    self._cancel(actions, TimerName.E, TimerName.F)
                    self._set_state(ClientNonInviteState.COMPLETED)
                    actions.append(Deliver(response))
                    wait = 0.0 if self.reliable else self.timers.t4
                    self._start(actions, TimerName.K, now + wait)
            case ClientNonInviteState.COMPLETED:
                pass  # retransmitted final responses are absorbed
            case ClientNonInviteState.TERMINATED:
                return self._invalid(f"response {response.status}")
        return actions

    def on_timer(self, timer: TimerName, now: float) -> list[Action]:
        if not self._fire(timer, now):
            return []
        actions: list[Action] = []
        match (self.state, timer):
            case (ClientNonInviteState.TRYING, TimerName.E):
                self._interval = min(2 * self._interval, self.timers.t2)
                actions.append(Send(self.request, retransmission=True))
                self._start(actions, TimerName.E, now + self._interval)
            case (ClientNonInviteState.PROCEEDING, TimerName.E):
                self._interval = self.timers.t2
                actions.append(Send(self.request, retransmission=True))
                self._start(actions, TimerName.E, now + self._interval)
            case (ClientNonInviteState.TRYING | ClientNonInviteState.PROCEEDING, TimerName.F):
                actions.append(Failed(408, "Request Timeout (no response, Timer F)"))
                self._terminate(actions)
            case (ClientNonInviteState.COMPLETED, TimerName.K):
                self._terminate(actions)
            case _:
                return self._invalid(f"timer {timer.value}")
        return actions


class ServerInviteTransaction(Transaction):
    """Server INVITE transaction (Figure 7, with RFC 6026's Accepted state): 100 Trying,
    timers G, H, I and L; absorbs INVITE retransmissions and the ACK for a 300-699."""

    def __init__(self, request: SipRequest, *, reliable: bool, timers: Timers) -> None:
        if request.method != "INVITE":
            raise SipStateError(f"{request.method} cannot start a server INVITE transaction")
        super().__init__(request, reliable=reliable, timers=timers)
        self.state: ServerInviteState = ServerInviteState.PROCEEDING
        self.key = server_key(request)
        self.last_response: SipResponse | None = None
        self._interval = timers.t1

    def start(self, now: float) -> list[Action]:
        """Deliver the INVITE to the TU; 100 Trying now or after ``trying_delay``."""
        actions: list[Action] = []
        if self.timers.trying_delay <= 0:
            self.last_response = trying_response(self.request)
            actions.append(Send(self.last_response))
        else:
            self._start(actions, TimerName.TRYING, now + self.timers.trying_delay)
        actions.append(Deliver(self.request))
        return actions

    def receive(self, request: SipRequest, now: float) -> list[Action]:
        """A retransmitted INVITE or an ACK matching this transaction."""
        actions: list[Action] = []
        match (self.state, request.method):
            case (ServerInviteState.PROCEEDING, "INVITE"):
                if self.last_response is not None:
                    actions.append(Send(self.last_response, retransmission=True))
            case (ServerInviteState.COMPLETED, "INVITE"):
                assert self.last_response is not None
                actions.append(Send(self.last_response, retransmission=True))
            case (ServerInviteState.COMPLETED, "ACK"):
                self._cancel(actions, TimerName.G, TimerName.H)
                self._set_state(ServerInviteState.CONFIRMED)
                wait = 0.0 if self.reliable else self.timers.t4
                self._start(actions, TimerName.I, now + wait)
            case (ServerInviteState.ACCEPTED | ServerInviteState.CONFIRMED, _):
                pass  # absorbed (the ACK for a 2xx is not ours: the stack routes it to the TU)
            case _:
                return self._invalid(f"request {request.method}")
        return actions

    def respond(self, response: SipResponse, now: float) -> list[Action]:
        """The TU's response; raises ``SipStateError`` once a final response was sent
        (except further 2xx in Accepted, which RFC 6026 passes through)."""
        actions: list[Action] = []
        status = response.status
        if self.state is ServerInviteState.ACCEPTED and 200 <= status < 300:
            return [Send(response, retransmission=True)]
        if self.state is not ServerInviteState.PROCEEDING:
            raise SipStateError(
                f"cannot send {status} on an INVITE transaction in state {self.state.value}"
            )
        self._cancel(actions, TimerName.TRYING)
        self.last_response = response
        actions.append(Send(response))
        if status < 200:
            return actions
        if status < 300:
            self._set_state(ServerInviteState.ACCEPTED)
            self._start(actions, TimerName.L, now + self.timers.timeout)
        else:
            self._set_state(ServerInviteState.COMPLETED)
            if not self.reliable:
                self._start(actions, TimerName.G, now + self._interval)
            self._start(actions, TimerName.H, now + self.timers.timeout)
        return actions

    def on_timer(self, timer: TimerName, now: float) -> list[Action]:
        if not self._fire(timer, now):
            return []
        actions: list[Action] = []
        match (self.state, timer):
            case (ServerInviteState.PROCEEDING, TimerName.TRYING):
                self.last_response = trying_response(self.request)
                actions.append(Send(self.last_response))
            case (ServerInviteState.COMPLETED, TimerName.G):
                assert self.last_response is not None
                self._interval = min(2 * self._interval, self.timers.t2)
                actions.append(Send(self.last_response, retransmission=True))
                self._start(actions, TimerName.G, now + self._interval)
            case (ServerInviteState.COMPLETED, TimerName.H):
                actions.append(Failed(408, "no ACK for the final response (Timer H)"))
                self._terminate(actions)
            case (ServerInviteState.CONFIRMED, TimerName.I) | (
                ServerInviteState.ACCEPTED,
                TimerName.L,
            ):
                self._terminate(actions)
            case _:
                return self._invalid(f"timer {timer.value}")
        return actions


class ServerNonInviteTransaction(Transaction):
    """Server non-INVITE transaction (Figure 8): answers retransmissions, timer J."""

    def __init__(self, request: SipRequest, *, reliable: bool, timers: Timers) -> None:
        if request.method in ("INVITE", "ACK"):
            raise SipStateError(f"{request.method} cannot start a non-INVITE transaction")
        super().__init__(request, reliable=reliable, timers=timers)
        self.state: ServerNonInviteState = ServerNonInviteState.TRYING
        self.key = server_key(request)
        self.last_response: SipResponse | None = None

    def start(self, now: float) -> list[Action]:
        return [Deliver(self.request)]

    def receive(self, request: SipRequest, now: float) -> list[Action]:
        """A retransmission of the request."""
        if self.state is ServerNonInviteState.TERMINATED:
            return self._invalid(f"request {request.method}")
        if self.last_response is None:
            return []  # Trying: absorbed
        return [Send(self.last_response, retransmission=True)]

    def respond(self, response: SipResponse, now: float) -> list[Action]:
        if self.state not in (ServerNonInviteState.TRYING, ServerNonInviteState.PROCEEDING):
            raise SipStateError(
                f"cannot send {response.status} on a {self.request.method} transaction"
                f" in state {self.state.value}"
            )
        actions: list[Action] = [Send(response)]
        self.last_response = response
        if response.status < 200:
            self._set_state(ServerNonInviteState.PROCEEDING)
        else:
            self._set_state(ServerNonInviteState.COMPLETED)
            wait = 0.0 if self.reliable else self.timers.timeout
            self._start(actions, TimerName.J, now + wait)
        return actions

    def on_timer(self, timer: TimerName, now: float) -> list[Action]:
        if not self._fire(timer, now):
            return []
        if self.state is ServerNonInviteState.COMPLETED and timer is TimerName.J:
            actions: list[Action] = []
            self._terminate(actions)
            return actions
        return self._invalid(f"timer {timer.value}")


ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction
ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction


def invite_key_for_cancel(cancel: SipRequest) -> TransactionKey:
    """The key of the INVITE server transaction a CANCEL refers to (section 9.2)."""
    return replace(server_key(cancel), method="INVITE")


def via_with_branch(host: str, port: int | None, transport: str, branch: str) -> Via:
    """A Via for an outgoing request, asking for ``rport`` (RFC 3581)."""
    return Via(transport.upper(), host, port, (Param("branch", branch), Param("rport")))
