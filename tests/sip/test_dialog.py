"""Dialogs (RFC 3261 section 12): creation on both sides, route sets, in-dialog requests,
CSeq rules, target refresh, the ACK for a 2xx and re-INVITE glare (section 14)."""

from __future__ import annotations

import pytest

from sip.dialog import Dialog, DialogRole, DialogState
from sip.errors import SipStateError
from sip.message import Header, SipRequest, SipResponse, create_response, parse_message
from sip.uri import SipUri

INVITE = (
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
    'Authorization: Digest username="alice", realm="r", nonce="n", uri="sip:x", '
    'response="0"\r\n'
    "Content-Length: 0\r\n\r\n"
)


def invite() -> SipRequest:
    message = parse_message(INVITE.encode())
    assert isinstance(message, SipRequest)
    return message


def ok(request: SipRequest, status: int = 200, contact: str = "<sip:bob@192.0.2.4>") -> SipResponse:
    headers = [Header("Contact", contact)]
    headers += [h for h in request.headers if h.name == "Record-Route"]
    return create_response(request, status, "OK", to_tag="a6c85cf", headers=tuple(headers))


def uac_dialog() -> Dialog:
    request = invite()
    return Dialog.from_uac(request, ok(request))


def test_uac_dialog_from_2xx() -> None:
    dialog = uac_dialog()
    assert dialog.role is DialogRole.UAC and dialog.state is DialogState.CONFIRMED
    assert (dialog.id.call_id, dialog.id.local_tag, dialog.id.remote_tag) == (
        "a84b4c76e66710",
        "1928301774",
        "a6c85cf",
    )
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]
    assert str(dialog.remote_target) == "sip:bob@192.0.2.4"
    assert dialog.local_seq == 314159 and dialog.remote_seq is None


def test_in_dialog_request_with_loose_routes() -> None:
    dialog = uac_dialog()
    bye = dialog.create_request("BYE")
    assert str(bye.uri) == "sip:bob@192.0.2.4"
    assert bye.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert str(bye.cseq) == "314160 BYE" and bye.from_.tag == "1928301774"
    assert bye.to.tag == "a6c85cf" and bye.call_id == "a84b4c76e66710"
    assert bye.get("Contact") is None and bye.get("Via") is None
    info = dialog.create_request(
        "INFO", body=b"Signal=5\r\n", content_type="application/dtmf-relay"
    )
    assert info.cseq.seq == 314161 and info.content_type == "application/dtmf-relay"
    reinvite = dialog.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    assert reinvite.get("Contact") == "<sip:alice@pc33.atlanta.example.com>"
    with pytest.raises(SipStateError):
        dialog.create_request("ACK")


def test_strict_router_becomes_request_uri() -> None:
    request = invite()
    response = create_response(
        request,
        200,
        "OK",
        to_tag="t",
        headers=(
            Header("Contact", "<sip:bob@192.0.2.4>"),
            Header("Record-Route", "<sip:p2.example.com>"),
            Header("Record-Route", "<sip:p1.example.com;maddr=192.0.2.9;method=INVITE>"),
        ),
    )
    dialog = Dialog.from_uac(request, response)
    message = dialog.create_request("MESSAGE", body=b"hi", content_type="text/plain")
    # The first route has no lr: it is the Request-URI (without method), the target last.
    assert str(message.uri) == "sip:p1.example.com;maddr=192.0.2.9"
    assert message.get_all("Route") == ["<sip:p2.example.com>", "<sip:bob@192.0.2.4>"]


def test_ack_for_2xx_and_its_retransmission() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, ok(request))
    ack = dialog.create_ack(request)
    assert str(ack.cseq) == "314159 ACK" and ack.get("Authorization") == request.get(
        "Authorization"
    )
    assert dialog.local_seq == 314159  # the ACK does not use a new CSeq
    assert dialog.ack_for_retransmission(ok(request)) is ack


def test_uas_dialog_and_remote_cseq() -> None:
    request = invite()
    dialog = Dialog.from_uas(request, "t9", None, early=False)
    assert dialog.role is DialogRole.UAS and dialog.id.local_tag == "t9"
    assert dialog.id.remote_tag == "1928301774" and dialog.remote_seq == 314159
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p2.example.com;lr",
        "sip:p1.example.com;lr",
    ]
    assert str(dialog.remote_target) == "sip:alice@pc33.atlanta.example.com"
    bye = dialog.create_request("BYE")
    assert bye.to.tag == "1928301774" and bye.from_.tag == "t9"
    assert isinstance(bye.uri, SipUri) and bye.uri.host == "pc33.atlanta.example.com"

    def incoming(method: str, seq: int, contact: str = "") -> SipRequest:
        text = (
            f"{method} sip:bob@192.0.2.4 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK{seq}\r\n"
            f"To: <sip:bob@b>;tag=t9\r\nFrom: <sip:alice@a>;tag=1928301774\r\n"
            f"Call-ID: a84b4c76e66710\r\nCSeq: {seq} {method}\r\n"
            + (f"Contact: {contact}\r\n" if contact else "")
            + "\r\n"
        )
        message = parse_message(text.encode())
        assert isinstance(message, SipRequest)
        return message

    refusal = dialog.receive_request(incoming("INFO", 314158))
    assert refusal is not None and refusal.status == 500
    assert dialog.receive_request(incoming("INFO", 314160)) is None
    assert dialog.remote_seq == 314160
    assert dialog.receive_request(incoming("INVITE", 314161, "<sip:alice@192.0.2.77>")) is None
    assert str(dialog.remote_target) == "sip:alice@192.0.2.77"  # target refresh
    # A second re-INVITE while the first is unanswered: 500 with Retry-After (section 14.2).
    second = dialog.receive_request(incoming("INVITE", 314162))
    assert second is not None and second.status == 500
    assert second.headers[0].name == "Retry-After"
    dialog.end_remote_invite()
    assert dialog.receive_request(incoming("ACK", 314161)) is None


def test_reinvite_glare_gives_491() -> None:
    request = invite()
    dialog = Dialog.from_uas(request, "t9", None, early=False)
    dialog.begin_local_invite()
    with pytest.raises(SipStateError):
        dialog.begin_local_invite()
    text = bytes(request).replace(b"314159 INVITE", b"314170 INVITE")
    text = text.replace(b"To: Bob <sip:bob@biloxi.example.com>", b"To: <sip:bob@b>;tag=t9")
    remote = parse_message(text)
    assert isinstance(remote, SipRequest)
    refusal = dialog.receive_request(remote)
    assert refusal is not None and (refusal.status, refusal.reason) == (491, "Request Pending")
    assert 0.0 <= dialog.glare_retry_delay() <= 2.0  # the UAS does not own the Call-ID
    dialog.end_local_invite()
    assert dialog.receive_request(remote) is None
    assert 2.1 <= uac_dialog().glare_retry_delay() <= 4.0


def test_early_dialog_confirmed_by_2xx_or_ended_by_failure() -> None:
    request = invite()
    ringing = create_response(
        request, 180, "Ringing", to_tag="a6c85cf", headers=(Header("Contact", "<sip:b@ring>"),)
    )
    early = Dialog.from_uac(request, ringing)
    assert early.state is DialogState.EARLY and early.route_set == ()
    changes: list[tuple[DialogState, DialogState]] = []
    early.add_listener(lambda _d, old, new: changes.append((old, new)))
    early.receive_response(request, ok(request))
    assert early.state is DialogState.CONFIRMED and len(early.route_set) == 2
    assert str(early.remote_target) == "sip:bob@192.0.2.4"
    other = Dialog.from_uac(request, ringing)
    other.receive_response(request, create_response(request, 486, "Busy", to_tag="a6c85cf"))
    assert other.terminated
    assert changes == [(DialogState.EARLY, DialogState.CONFIRMED)]
    with pytest.raises(SipStateError):
        Dialog.from_uac(request, create_response(request, 100, "Trying"))


def test_481_or_408_ends_the_dialog() -> None:
    dialog = uac_dialog()
    info = dialog.create_request("INFO")
    dialog.receive_response(info, create_response(info, 481, "Gone"))
    assert dialog.terminated
    with pytest.raises(SipStateError):
        dialog.create_request("BYE")
    assert dialog.receive_request(info) is not None
