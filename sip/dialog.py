"""SIP dialogs (RFC 3261 sections 12, 13.3.1.4 and 14), sans-IO.

``Dialog`` keeps the dialog state of section 12 (id, local/remote URI and CSeq, remote
target, route set) and builds in-dialog requests (BYE, re-INVITE, INFO, MESSAGE, the ACK
for a 2xx). ``AnswerRetransmission`` is the UAS core's 2xx retransmission until the ACK
arrives (section 13.3.1.4). Requests are built without a Via: the sender adds it.
"""

from __future__ import annotations

import enum
import logging
import random
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from sip.errors import SipStateError
from sip.headers import CSeq, NameAddr
from sip.message import Header, SipRequest, SipResponse
from sip.transaction import (
    Action,
    Failed,
    Send,
    TimerName,
    Timers,
    Transaction,
)
from sip.uri import SipUri, Uri

logger = logging.getLogger(__name__)

TARGET_REFRESH = frozenset(("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"))
# Parameters a URI may not carry as a Request-URI (section 19.1.1, table 1).
_NOT_IN_REQUEST_URI = frozenset(("method", "ttl"))


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogRole(enum.Enum):
    UAC = "uac"
    UAS = "uas"


@dataclass(frozen=True, slots=True)
class DialogId:
    """Call-ID plus local and remote tag (section 12)."""

    call_id: str
    local_tag: str
    remote_tag: str

    def __str__(self) -> str:
        return f"{self.call_id};local={self.local_tag};remote={self.remote_tag}"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an in-dialog request must be refused: the status, reason and extra headers."""

    status: int
    reason: str
    headers: tuple[Header, ...] = ()


def _contact_uri(message: SipRequest | SipResponse) -> Uri | None:
    contacts = message.contacts
    return contacts[0].uri if contacts else None


def _strip_for_request_uri(uri: Uri) -> Uri:
    if not isinstance(uri, SipUri):
        return uri
    params = tuple(p for p in uri.params if p.name.lower() not in _NOT_IN_REQUEST_URI)
    return replace(uri, params=params, headers=())


DialogListener = Callable[["Dialog", "DialogState", "DialogState"], None]


class Dialog:
    """One dialog, early or confirmed. Listeners added with ``add_listener`` are called as
    ``listener(dialog, old, new)`` on every state change (the call layer makes events)."""

    def __init__(
        self,
        *,
        dialog_id: DialogId,
        role: DialogRole,
        state: DialogState,
        local: NameAddr,
        remote: NameAddr,
        local_seq: int,
        remote_seq: int | None,
        remote_target: Uri,
        route_set: tuple[NameAddr, ...],
        local_contact: NameAddr | None,
        secure: bool = False,
    ) -> None:
        self.id = dialog_id
        self.role = role
        self.state = state
        self.local = local
        self.remote = remote
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_contact = local_contact
        self.secure = secure
        self._listeners: list[DialogListener] = []
        self._local_invite_pending = False
        self._remote_invite_pending = False
        self._acks: dict[int, SipRequest] = {}

    def __repr__(self) -> str:
        return f"<Dialog {self.role.value} {self.state.value} {self.id}>"

    # -- creation -------------------------------------------------------------------------

    @classmethod
    def from_uac(cls, request: SipRequest, response: SipResponse) -> Dialog:
        """The UAC's dialog from a 2xx (confirmed) or a 101-199 with a To tag (early) to
        ``request`` as it was sent (section 12.1.2)."""
        remote_tag = response.to.tag
        if remote_tag is None or not 101 <= response.status < 300:
            raise SipStateError(f"a {response.status} without To tag creates no dialog")
        local_tag = request.from_.tag or ""
        contact = _contact_uri(response)
        contacts = request.contacts
        return cls(
            dialog_id=DialogId(request.call_id, local_tag, remote_tag),
            role=DialogRole.UAC,
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local=request.from_,
            remote=response.to,
            local_seq=request.cseq.seq,
            remote_seq=None,
            remote_target=contact if contact is not None else request.uri,
            route_set=tuple(reversed(response.record_routes)),
            local_contact=contacts[0] if contacts else None,
            secure=isinstance(request.uri, SipUri) and request.uri.scheme == "sips",
        )

    @classmethod
    def from_uas(
        cls, request: SipRequest, to_tag: str, local_contact: NameAddr | None, *, early: bool
    ) -> Dialog:
        """The UAS's dialog for ``request`` answered with a 2xx (or a 1xx when ``early``)
        carrying ``to_tag`` (section 12.1.1)."""
        contact = _contact_uri(request)
        return cls(
            dialog_id=DialogId(request.call_id, to_tag, request.from_.tag or ""),
            role=DialogRole.UAS,
            state=DialogState.EARLY if early else DialogState.CONFIRMED,
            local=request.to.with_param("tag", to_tag),
            remote=request.from_,
            local_seq=secrets.randbelow(2**16) + 1,
            remote_seq=request.cseq.seq,
            remote_target=contact if contact is not None else request.from_.uri,
            route_set=request.record_routes,
            local_contact=local_contact,
            secure=isinstance(request.uri, SipUri) and request.uri.scheme == "sips",
        )

    # -- state ----------------------------------------------------------------------------

    def _set_state(self, new: DialogState) -> None:
        old = self.state
        if new is old:
            return
        logger.debug("dialog %s: %s -> %s", self.id, old.value, new.value)
        self.state = new
        for listener in list(self._listeners):
            listener(self, old, new)

    def add_listener(self, listener: DialogListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: DialogListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def confirm(self) -> None:
        if self.state is DialogState.EARLY:
            self._set_state(DialogState.CONFIRMED)

    def terminate(self) -> None:
        self._set_state(DialogState.TERMINATED)

    @property
    def terminated(self) -> bool:
        return self.state is DialogState.TERMINATED

    # -- building requests (section 12.2.1.1) ---------------------------------------------

    def _request_uri_and_routes(self) -> tuple[Uri, list[Header]]:
        routes = self.route_set
        if not routes:
            return self.remote_target, []
        first = routes[0].uri
        if isinstance(first, SipUri) and first.param("lr") is not None:
            return self.remote_target, [Header("Route", str(r)) for r in routes]
        # Strict router: its URI becomes the Request-URI, the remote target the last Route.
        headers = [Header("Route", str(r)) for r in routes[1:]]
        headers.append(Header("Route", str(NameAddr(self.remote_target))))
        return _strip_for_request_uri(first), headers

    def _build(
        self,
        method: str,
        seq: int,
        headers: Iterable[Header],
        body: bytes,
        content_type: str | None,
    ) -> SipRequest:
        if self.terminated:
            raise SipStateError(f"dialog {self.id} is terminated; cannot send {method}")
        uri, routes = self._request_uri_and_routes()
        out = [
            *routes,
            Header("Max-Forwards", "70"),
            Header("From", str(self.local)),
            Header("To", str(self.remote)),
            Header("Call-ID", self.id.call_id),
            Header("CSeq", str(CSeq(seq, method))),
        ]
        if method in TARGET_REFRESH and self.local_contact is not None:
            out.append(Header("Contact", str(self.local_contact)))
        out.extend(headers)
        if body and content_type is not None:
            out.append(Header("Content-Type", content_type))
        return SipRequest(method, uri, tuple(out), body)

    def create_request(
        self,
        method: str,
        *,
        headers: Iterable[Header] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """A new in-dialog request (BYE, INVITE, INFO, MESSAGE, UPDATE...) with the next
        local CSeq; ACK and CANCEL are built with ``create_ack`` / ``transaction.cancel_for``."""
        if method in ("ACK", "CANCEL"):
            raise SipStateError(f"{method} reuses its INVITE's CSeq: use create_ack/cancel_for")
        self.local_seq += 1
        return self._build(method, self.local_seq, headers, body, content_type)

    def create_ack(
        self,
        invite: SipRequest,
        *,
        headers: Iterable[Header] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """The ACK for a 2xx to ``invite`` (section 13.2.2.4): the INVITE's CSeq number and
        credentials; remembered so that a retransmitted 2xx gets the same ACK again."""
        creds = [h for h in invite.headers if h.name in ("Authorization", "Proxy-Authorization")]
        ack = self._build("ACK", invite.cseq.seq, [*creds, *headers], body, content_type)
        self._acks = {invite.cseq.seq: ack}
        return ack

    def ack_for_retransmission(self, response: SipResponse) -> SipRequest | None:
        """The ACK already sent for this 2xx's CSeq (the UAC re-ACKs retransmitted 2xx)."""
        return self._acks.get(response.cseq.seq)

    # -- receiving ------------------------------------------------------------------------

    def receive_request(self, request: SipRequest) -> Refusal | None:
        """Check and apply an in-dialog request (section 12.2.2): the remote CSeq must
        grow, a target refresh moves the remote target. Returns why to refuse it, if so."""
        if self.terminated:
            return Refusal(481, "Call/Transaction Does Not Exist")
        if request.method in ("ACK", "CANCEL"):
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return Refusal(500, f"Server Internal Error (CSeq {seq} < {self.remote_seq})")
        if request.method == "INVITE":
            refusal = self._begin_remote_invite()
            if refusal is not None:
                return refusal
        self.remote_seq = seq
        if request.method in TARGET_REFRESH:
            contact = _contact_uri(request)
            if contact is not None:
                self.remote_target = contact
        return None

    def receive_response(self, request: SipRequest, response: SipResponse) -> None:
        """Apply a response to a request this side sent in (or to create) the dialog."""
        status = response.status
        if request.method == "INVITE":
            if self.state is DialogState.EARLY and 200 <= status < 300:
                # Section 13.2.2.4: the 2xx recomputes the route set.
                self.route_set = tuple(reversed(response.record_routes))
                self.remote = response.to
                self.confirm()
            elif self.state is DialogState.EARLY and status >= 300:
                self.terminate()
            if status >= 200:
                self._local_invite_pending = False
        if request.method in TARGET_REFRESH and 101 <= status < 300:
            contact = _contact_uri(response)
            if contact is not None:
                self.remote_target = contact
        if status in (408, 481):  # section 12.2.1.2: the dialog is gone
            self.terminate()

    # -- re-INVITE glare (section 14) ------------------------------------------------------

    def begin_local_invite(self) -> None:
        """Mark a re-INVITE as sent; raises ``SipStateError`` while another is pending."""
        if self._local_invite_pending or self._remote_invite_pending:
            raise SipStateError(f"dialog {self.id}: a re-INVITE is already pending")
        self._local_invite_pending = True

    def end_local_invite(self) -> None:
        self._local_invite_pending = False

    def _begin_remote_invite(self) -> Refusal | None:
        if self._local_invite_pending:
            return Refusal(491, "Request Pending")
        if self._remote_invite_pending:
            retry = Header("Retry-After", str(random.randint(0, 10)))
            return Refusal(500, "Server Internal Error (re-INVITE pending)", (retry,))
        self._remote_invite_pending = True
        return None

    def end_remote_invite(self) -> None:
        """The incoming (re-)INVITE got its final response."""
        self._remote_invite_pending = False

    @property
    def invite_pending(self) -> bool:
        return self._local_invite_pending or self._remote_invite_pending

    def glare_retry_delay(self) -> float:
        """How long to wait before retrying a re-INVITE refused with 491 (section 14.1):
        2.1-4 s when this side owns the Call-ID (sent the initial INVITE), else 0-2 s."""
        if self.role is DialogRole.UAC:
            return random.uniform(2.1, 4.0)
        return random.uniform(0.0, 2.0)


class AnswerState(enum.Enum):
    WAITING_ACK = "waiting-ack"
    TERMINATED = "terminated"


class AnswerRetransmission(Transaction):
    """The UAS core re-sends a 2xx to INVITE from T1 doubling to T2 until the ACK arrives;
    after 64*T1 without ACK it reports ``Failed(408)`` (the TU should then send BYE).
    Over reliable transports only the 64*T1 wait runs (no retransmission)."""

    def __init__(
        self, invite: SipRequest, response: SipResponse, *, reliable: bool, timers: Timers
    ) -> None:
        super().__init__(invite, reliable=reliable, timers=timers)
        self.state: AnswerState = AnswerState.WAITING_ACK
        self.response = response
        self.acked = False
        self._interval = timers.t1

    def start(self, now: float) -> list[Action]:
        """Arm the timers; the first copy of the 2xx is sent by the server transaction."""
        actions: list[Action] = []
        if not self.reliable:
            self._start(actions, TimerName.ANSWER_RETRANSMIT, now + self._interval)
        self._start(actions, TimerName.ANSWER_TIMEOUT, now + self.timers.timeout)
        return actions

    def acknowledge(self, now: float) -> list[Action]:
        """The ACK arrived: stop."""
        if self.terminated:
            return []
        self.acked = True
        actions: list[Action] = []
        self._terminate(actions)
        return actions

    def on_timer(self, timer: TimerName, now: float) -> list[Action]:
        if self.terminated or not self._fire(timer, now):
            return []
        actions: list[Action] = []
        if timer is TimerName.ANSWER_RETRANSMIT:
            self._interval = min(2 * self._interval, self.timers.t2)
            actions.append(Send(self.response, retransmission=True))
            self._start(actions, TimerName.ANSWER_RETRANSMIT, now + self._interval)
        elif timer is TimerName.ANSWER_TIMEOUT:
            actions.append(Failed(408, "no ACK for the 2xx (section 13.3.1.4)"))
            self._terminate(actions)
        return actions
