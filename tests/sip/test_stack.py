"""SipStack over real UDP/TCP sockets on loopback: default answers, Via stamping, flood
bounds, calls between two stacks (INVITE, CANCEL, BYE, re-INVITE glare, digest), the 2xx
retransmission rules, and every RFC 4475 torture message."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sip.digest import Credentials
from sip.errors import SipStateError
from sip.message import Header, SipMessage, SipRequest, SipResponse, parse_message
from sip.registrar import Registrar, SipUser
from sip.stack import SipStack, StackConfig
from sip.transaction import Timers
from sip.transport import TransportConfig
from sip.uas import IncomingRequest

TIMEOUT = 5.0
CALL_ID = re.compile(rb"^(?:call-id|i)[ \t]*:(.*)$", re.IGNORECASE | re.MULTILINE)
RFC4475 = Path(__file__).parent / "data" / "rfc4475"
FAST = Timers(t1=0.05, t2=0.2, t4=0.2, trying_delay=0.05)


def config(**changes: object) -> StackConfig:
    values: dict[str, object] = {"transport": TransportConfig(port=0), "timers": FAST}
    values.update(changes)
    return StackConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def stack() -> AsyncIterator[SipStack]:
    async with SipStack(config()) as running:
        yield running


@pytest.fixture
async def pair() -> AsyncIterator[tuple[SipStack, SipStack]]:
    async with SipStack(config()) as caller, SipStack(config()) as callee:
        yield caller, callee


class RawPeer(asyncio.DatagramProtocol):
    """A bare UDP socket speaking SIP by hand, to see exactly what the stack sends."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls) -> RawPeer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", 0))
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.inbox.put_nowait(data)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, stack: SipStack) -> None:
        assert self.transport is not None
        address = stack.address("UDP")
        self.transport.sendto(data, (address.host, address.port))

    async def raw(self) -> bytes:
        return await asyncio.wait_for(self.inbox.get(), TIMEOUT)

    async def receive(self) -> SipMessage:
        return parse_message(await self.raw())

    async def response(self) -> SipResponse:
        message = await self.receive()
        assert isinstance(message, SipResponse)
        return message

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@pytest.fixture
async def peer() -> AsyncIterator[RawPeer]:
    raw = await RawPeer.open()
    yield raw
    raw.close()


def sip(
    method: str,
    port: int,
    *,
    via_host: str = "127.0.0.1",
    rport: bool = False,
    branch: str = "z9hG4bKraw1",
    to_tag: str = "",
    cseq: int = 1,
    call_id: str = "raw-1",
    extra: str = "",
    body: str = "",
) -> bytes:
    to = "<sip:hub@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} sip:hub@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host}:{port};branch={branch}{';rport' if rport else ''}\r\n"
        f"To: {to}\r\nFrom: <sip:raw@127.0.0.1>;tag=r1\r\nCall-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
        f"Contact: <sip:raw@127.0.0.1:{port}>\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    return text.encode()


# -- default answers ----------------------------------------------------------------------


async def test_options_answered_with_allow_accept_supported(stack: SipStack, peer: RawPeer) -> None:
    stack.set_handler("MESSAGE", lambda incoming: None)
    peer.send(sip("OPTIONS", peer.port), stack)
    response = await peer.response()
    assert (response.status, response.reason) == (200, "OK")
    assert set(response.get_all("Allow")) == {"ACK", "BYE", "CANCEL", "MESSAGE", "OPTIONS"}
    assert response.get("Accept") == "application/sdp" and response.get("Supported") == ""
    assert response.to.tag and response.call_id == "raw-1"


@pytest.mark.parametrize(
    ("data", "status", "header"),
    [
        (sip("SUBSCRIBE", 9), 405, "Allow"),
        (sip("BYE", 9, to_tag="unknown"), 481, None),
        (sip("OPTIONS", 9, extra="Require: 100rel, timer\r\n"), 420, "Unsupported"),
        (sip("INVITE", 9, extra="Content-Type: text/plain\r\n", body="hi"), 415, "Accept"),
    ],
)
async def test_default_refusals(
    stack: SipStack, peer: RawPeer, data: bytes, status: int, header: str | None
) -> None:
    stack.set_handler("INVITE", lambda incoming: None)
    peer.send(data.replace(b":9;", f":{peer.port};".encode()), stack)
    response = await peer.response()
    assert response.status == status
    if header is not None:
        assert response.get(header)
    if status == 420:
        assert response.get_all("Unsupported") == ["100rel", "timer"]


async def test_malformed_request_gets_400_saying_why(stack: SipStack, peer: RawPeer) -> None:
    data = sip("OPTIONS", peer.port).replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    peer.send(data, stack)
    response = await peer.response()
    expected = "bad CSeq: method 'INVITE' does not match request method 'OPTIONS'"
    assert (response.status, response.reason) == (400, expected)
    assert response.get("Warning") == f'399 127.0.0.1 "{expected}"'
    assert stack.counters.parse_errors == 1


async def test_malformed_response_is_dropped(stack: SipStack, peer: RawPeer) -> None:
    peer.send(b"SIP/2.0 2000 Bad\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\n\r\n", stack)
    peer.send(sip("OPTIONS", peer.port, branch="z9hG4bKafter"), stack)
    response = await peer.response()  # the only answer is the OPTIONS' 200
    assert response.status == 200 and response.top_via.branch == "z9hG4bKafter"
    assert stack.counters.parse_errors == 1


# -- Via received / rport (RFC 3261 18.2, RFC 3581) ---------------------------------------


async def test_rport_answers_to_the_source_port(stack: SipStack, peer: RawPeer) -> None:
    peer.send(sip("OPTIONS", 5999, via_host="192.0.2.99", rport=True), stack)
    response = await peer.response()
    via = response.top_via
    assert (via.host, via.port) == ("192.0.2.99", 5999)
    assert via.received == "127.0.0.1" and via.rport == peer.port


async def test_received_without_rport_answers_to_sent_by_port(
    stack: SipStack, peer: RawPeer
) -> None:
    listener = await RawPeer.open()
    try:
        peer.send(sip("OPTIONS", listener.port, via_host="192.0.2.99"), stack)
        response = await listener.response()  # not to the source port: to sent-by's port
        assert response.top_via.received == "127.0.0.1" and not response.top_via.rport_requested
        peer.send(sip("OPTIONS", peer.port, branch="z9hG4bKown"), stack)
        own = await peer.response()  # sent-by is the source: no received added
        assert own.top_via.received is None
    finally:
        listener.close()


# -- flood bounds -------------------------------------------------------------------------


async def test_rate_limit_per_source(peer: RawPeer) -> None:
    async with SipStack(config(rate_limit=0.1, rate_burst=3)) as limited:
        for n in range(20):
            peer.send(sip("OPTIONS", peer.port, branch=f"z9hG4bKflood{n}"), limited)
        statuses = [(await peer.response()).status for _ in range(4)]
        assert statuses == [200, 200, 200, 503]
        counters = limited.counters
        await asyncio.wait_for(_until(lambda: counters.messages_in == 20), TIMEOUT)
        assert counters.rate_limited == 17  # one 503, the rest dropped
        assert limited.counters.transactions_active == 3


async def test_rate_limit_exempt_source(peer: RawPeer) -> None:
    exempt = frozenset({"127.0.0.1"})
    async with SipStack(config(rate_limit=1.0, rate_burst=1, rate_limit_exempt=exempt)) as s:
        for n in range(5):
            peer.send(sip("OPTIONS", peer.port, branch=f"z9hG4bKok{n}"), s)
        assert [(await peer.response()).status for _ in range(5)] == [200] * 5


async def test_transaction_cap_answers_503(peer: RawPeer) -> None:
    async with SipStack(config(max_transactions=2)) as capped:
        capped.set_handler("MESSAGE", lambda incoming: None)  # never answers
        for n in range(3):
            peer.send(sip("MESSAGE", peer.port, branch=f"z9hG4bKcap{n}", call_id=f"c{n}"), capped)
        response = await peer.response()
        assert response.status == 503 and response.get("Retry-After") == "5"
        assert response.call_id == "c2" and capped.counters.overload_rejected == 1


async def test_handler_errors_and_silence_get_500(peer: RawPeer) -> None:
    async with SipStack(config(answer_timeout=0.2)) as s:

        def broken(incoming: IncomingRequest) -> None:
            raise RuntimeError("boom")

        s.set_handler("MESSAGE", broken)
        s.set_handler("INFO", lambda incoming: None)
        peer.send(sip("MESSAGE", peer.port), s)
        assert (await peer.response()).status == 500
        peer.send(sip("INFO", peer.port, branch="z9hG4bKinfo"), s)
        late = await peer.response()
        assert (late.status, late.reason) == (500, "Server Internal Error (no answer)")


# -- calls between two stacks -------------------------------------------------------------


def target(stack: SipStack, transport: str = "UDP") -> str:
    address = stack.address(transport)
    suffix = ";transport=tcp" if transport == "TCP" else ""
    return f"sip:desk@{address.hostport}{suffix}"


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_call_setup_and_teardown(pair: tuple[SipStack, SipStack], transport: str) -> None:
    caller, callee = pair
    answered: list[IncomingRequest] = []
    acks: list[SipRequest | None] = []

    async def on_invite(incoming: IncomingRequest) -> None:
        incoming.respond(180)
        incoming.respond(200, body=b"v=0\r\n", content_type="application/sdp")
        answered.append(incoming)
        acks.append(await incoming.wait_ack())

    callee.set_handler("INVITE", on_invite)
    call = await caller.invite(target(callee, transport), body=b"v=0\r\n")
    statuses = [response.status async for response in call]
    assert statuses == [180, 200] or statuses == [100, 180, 200]
    final = await call.final()
    assert final.body == b"v=0\r\n" and call.dialog is not None
    assert call.dialog.state.value == "confirmed"
    await asyncio.wait_for(_until(lambda: bool(acks)), TIMEOUT)
    assert acks[0] is not None and acks[0].method == "ACK"
    uas_dialog = answered[0].dialog
    assert uas_dialog is not None and uas_dialog.id.remote_tag == call.dialog.id.local_tag
    assert callee.counters.dialogs_active == 1 == caller.counters.dialogs_active
    bye = await caller.request("BYE", dialog=call.dialog)
    assert bye.status == 200
    assert call.dialog.terminated and uas_dialog.terminated
    assert caller.dialogs == [] and callee.dialogs == []


async def test_in_dialog_requests_reach_the_dialog_handler(pair: tuple[SipStack, SipStack]) -> None:
    caller, callee = pair
    seen: list[tuple[str, bytes]] = []

    def on_dialog_request(incoming: IncomingRequest) -> None:
        seen.append((incoming.method, incoming.request.body))
        incoming.respond(200)

    def on_invite(incoming: IncomingRequest) -> None:
        incoming.respond(200)
        assert incoming.dialog is not None
        callee.bind_dialog(incoming.dialog, on_dialog_request)

    callee.set_handler("INVITE", on_invite)
    call = await caller.invite(target(callee))
    assert (await call.final()).status == 200 and call.dialog is not None
    dtmf = b"Signal=5\r\nDuration=160\r\n"
    info = await caller.request(
        "INFO", dialog=call.dialog, body=dtmf, content_type="application/dtmf-relay"
    )
    message = await caller.request(
        "MESSAGE", dialog=call.dialog, body=b"hello", content_type="text/plain"
    )
    assert info.status == message.status == 200
    assert seen == [("INFO", dtmf), ("MESSAGE", b"hello")]
    assert (await caller.request("BYE", dialog=call.dialog)).status == 200
    assert seen[-1][0] == "BYE"


async def test_cancel_before_answer(pair: tuple[SipStack, SipStack]) -> None:
    caller, callee = pair
    ringing: list[IncomingRequest] = []
    cancelled: list[IncomingRequest] = []

    def on_invite(incoming: IncomingRequest) -> None:
        incoming.on_cancel = cancelled.append
        incoming.respond(180)
        ringing.append(incoming)

    callee.set_handler("INVITE", on_invite)
    call = await caller.invite(target(callee))
    async for response in call:
        if response.status == 180:
            call.cancel()
    final = await call.final()
    assert (final.status, final.reason) == (487, "Request Terminated")
    assert ringing[0].cancelled and cancelled == ringing
    assert call.dialog is None and caller.dialogs == [] and callee.dialogs == []


async def test_failed_call_and_timeout(pair: tuple[SipStack, SipStack], peer: RawPeer) -> None:
    caller, callee = pair
    callee.set_handler("INVITE", lambda incoming: incoming.respond(486))
    busy = await caller.invite(target(callee))
    assert (await busy.final()).status == 486 and busy.dialog is None
    async with SipStack(config(timers=Timers(t1=0.01, t2=0.04))) as hasty:
        silent = await hasty.invite(f"sip:nobody@127.0.0.1:{peer.port}")
        final = await silent.final()  # Timer B = 64*T1 = 0.64 s here
        assert (final.status, final.reason) == (408, "Request Timeout (no response, Timer B)")
        assert hasty.counters.retransmissions == 6  # Timer A: 7 transmissions in all
    invites = [peer.inbox.get_nowait() for _ in range(peer.inbox.qsize())]
    assert len(invites) == 7 and len(set(invites)) == 1


async def test_digest_on_request_and_invite(pair: tuple[SipStack, SipStack]) -> None:
    caller, callee = pair
    registrar = Registrar([SipUser("alice", "wonderland")], realm="cchub.local")
    registrar.attach(callee)

    def on_invite(incoming: IncomingRequest) -> None:
        # What the hub does for inbound calls from local users: the registrar's directory.
        result = registrar.authenticate(incoming.request, proxy=True)
        if not result.ok:
            challenge = registrar.challenge(
                incoming.request, result, proxy=True, to_tag=incoming.to_tag
            )
            incoming.send(challenge)
            return
        incoming.respond(200)

    callee.set_handler("INVITE", on_invite)
    aor = f"sip:alice@{callee.address().hostport}"
    contact = Header("Contact", f"<sip:alice@{caller.address().hostport}>")
    good = Credentials("alice", "wonderland")
    response = await caller.request(
        "REGISTER", f"sip:{callee.address().hostport}", from_=aor, to=aor,
        headers=[contact], credentials=good,
    )  # fmt: skip
    assert response.status == 200 and len(registrar.lookup("alice")) == 1
    assert response.cseq.seq == 2  # the challenge cost one round trip
    wrong = await caller.request(
        "REGISTER", f"sip:{callee.address().hostport}", from_=aor, to=aor,
        headers=[contact], credentials=Credentials("alice", "guess"),
    )  # fmt: skip
    assert wrong.status == 403
    call = await caller.invite(target(callee), credentials=good)
    assert (await call.final()).status == 200
    assert call.request.get("Proxy-Authorization") is not None
    await caller.request("BYE", dialog=call.dialog)


async def test_crossing_reinvites_get_491(pair: tuple[SipStack, SipStack]) -> None:
    caller, callee = pair
    for stack in pair:
        stack.set_handler("INVITE", lambda incoming: incoming.respond(200))
    call = await caller.invite(target(callee))
    assert (await call.final()).status == 200 and call.dialog is not None
    uas = callee.dialogs[0]
    # Both re-INVITEs leave before either arrives: glare on both sides (section 14.1).
    first, second = await asyncio.gather(
        caller.reinvite(call.dialog, body=b"v=0\r\n"), callee.reinvite(uas, body=b"v=0\r\n")
    )
    assert (await first.final()).status == 491 == (await second.final()).status
    assert not call.dialog.invite_pending and not uas.invite_pending
    again = await caller.reinvite(call.dialog, body=b"v=0\r\n")  # after the back-off
    with pytest.raises(SipStateError):  # one at a time
        await caller.reinvite(call.dialog)
    assert (await again.final()).status == 200
    await caller.request("BYE", dialog=call.dialog)


# -- 2xx retransmission rules (sections 13.3.1.4 and 13.2.2.4) -----------------------------


async def test_uas_retransmits_2xx_until_ack(stack: SipStack, peer: RawPeer) -> None:
    acks: list[SipRequest | None] = []

    async def on_invite(incoming: IncomingRequest) -> None:
        incoming.respond(200)
        acks.append(await incoming.wait_ack())

    stack.set_handler("INVITE", on_invite)
    peer.send(sip("INVITE", peer.port, call_id="rt-1"), stack)
    first = await peer.response()
    second = await peer.response()
    third = await peer.response()
    assert first.status == 200 and bytes(first) == bytes(second) == bytes(third)
    ack = sip("ACK", peer.port, branch="z9hG4bKack", to_tag=first.to.tag or "", call_id="rt-1")
    peer.send(ack, stack)
    await asyncio.wait_for(_until(lambda: bool(acks)), TIMEOUT)
    assert acks[0] is not None and acks[0].call_id == "rt-1"
    assert stack.counters.retransmissions >= 2


async def test_uac_re_acks_retransmitted_2xx(stack: SipStack, peer: RawPeer) -> None:
    call = await stack.invite(f"sip:raw@127.0.0.1:{peer.port}")
    invite = await peer.receive()
    assert isinstance(invite, SipRequest) and invite.method == "INVITE"
    assert invite.top_via.rport_requested and invite.get("Contact")
    ok = (
        f"SIP/2.0 200 OK\r\nVia: {invite.get('Via')}\r\nFrom: {invite.get('From')}\r\n"
        f"To: {invite.get('To')};tag=uas1\r\nCall-ID: {invite.call_id}\r\n"
        f"CSeq: {invite.cseq}\r\nContact: <sip:raw@127.0.0.1:{peer.port}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    peer.send(ok, stack)
    first = await peer.receive()
    peer.send(ok, stack)  # the 2xx again: our ACK was "lost"
    second = await peer.receive()
    assert isinstance(first, SipRequest) and first.method == "ACK"
    assert bytes(first) == bytes(second) and str(first.cseq) == f"{invite.cseq.seq} ACK"
    assert first.top_via.branch != invite.top_via.branch and first.to.tag == "uas1"
    assert (await call.final()).status == 200


# -- RFC 4475 torture messages over UDP ---------------------------------------------------

# What a UA with an INVITE handler (486) and a registrar answers; None: dropped.
TORTURE = {
    "wsinv": 481, "intmeth": 405, "esc01": 486, "escnull": 401, "esc02": 405,
    "lwsdisp": 200, "longreq": 486, "dblreq": 401, "semiuri": 200, "transports": 200,
    "mpart01": 405, "unreason": None, "noreason": None, "badinv01": 400, "clerr": 400,
    "ncl": 400, "scalar02": 400, "scalarlg": None, "quotbal": 400, "ltgtruri": 400,
    "lwsruri": 400, "lwsstart": 400, "trws": 400, "escruri": 400, "baddate": 400,
    "regbadct": 400, "badaspec": 400, "baddn": 400, "badvers": 505, "mismatch01": 400,
    "mismatch02": 400, "bigcode": None, "badbranch": 200, "insuf": 400, "unkscm": 416,
    "novelsc": 416, "unksm2": 401, "bext01": 420, "invut": 415, "regaut01": 401,
    "multi01": 400, "mcl01": 400, "bcast": None, "zeromf": 200, "cparam01": 401,
    "cparam02": 401, "regescrt": 401, "sdp01": 486, "inv2543": 486,
}  # fmt: skip
# RFC 4475 reuses some branches: by section 17.2.3 these are retransmissions of the earlier
# message's transaction (same branch, sent-by and method) and get its answer again.
COLLISIONS = {"novelsc": "unkscm", "cparam02": "cparam01", "regescrt": "escnull"}


def torture_ua() -> SipStack:
    ua = SipStack(config(force_rport=True))
    Registrar([SipUser("user", "pw")], realm="example.com").attach(ua)
    ua.set_handler("INVITE", lambda incoming: incoming.respond(486))
    return ua


async def final_status(peer: RawPeer, ua: SipStack, name: str, mark_name: str) -> int | None:
    """Send one torture message, then a probe OPTIONS; the final status of the answer to
    ``mark_name``'s Call-ID seen before the probe's answer (None: dropped)."""
    data = (RFC4475 / f"{mark_name}.sip").read_bytes()
    found = CALL_ID.search(data)
    # insuf has no Call-ID: its 400 is recognised by its Via branch.
    mark = found.group(1).strip() if found else b"z9hG4bKkdj.insuf"
    peer.send((RFC4475 / f"{name}.sip").read_bytes(), ua)
    probe = f"z9hG4bKprobe-{name}"
    peer.send(sip("OPTIONS", peer.port, branch=probe, call_id=probe), ua)
    status = None
    while (raw := await peer.raw()).find(probe.encode()) < 0:
        if mark in raw and int(raw[8:11]) >= 200:
            status = int(raw[8:11])
    return status


async def test_rfc4475_messages_get_an_answer_or_are_dropped(peer: RawPeer) -> None:
    assert sorted(TORTURE) == sorted(p.stem for p in RFC4475.glob("*.sip"))
    async with torture_ua() as ua:
        for name in TORTURE:
            earlier = COLLISIONS.get(name, name)
            assert await final_status(peer, ua, name, earlier) == TORTURE[earlier], name
        assert ua.counters.parse_errors == 22
        peer.send(sip("OPTIONS", peer.port, branch="z9hG4bKfinal"), ua)
        assert (await peer.response()).status == 200
    for name in COLLISIONS:  # alone, each gets its own answer
        async with torture_ua() as ua:
            assert await final_status(peer, ua, name, name) == TORTURE[name], name


async def _until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (callers bound the wait with ``asyncio.wait_for``)."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0.01)
