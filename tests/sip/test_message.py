"""Golden-byte and error tests for the SIP message parser, serializer and framer."""

from __future__ import annotations

from pathlib import Path

import pytest

from sip.errors import SipParseError
from sip.framing import SipStreamFramer
from sip.headers import NameAddr, Via
from sip.message import (
    Header,
    SipRequest,
    SipResponse,
    bad_request_response,
    create_response,
    parse_message,
)
from sip.uri import AbsoluteUri, SipUri, TelUri, parse_uri

DATA = Path(__file__).parent / "data"
GOLDEN = [
    "invite_sdp.sip",
    "ok_200.sip",
    "register_auth.sip",
    "unauthorized_401.sip",
    "options.sip",
    "bye.sip",
    "tel_uri.sip",
]


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def minimal(start: str = "OPTIONS sip:a@example.com SIP/2.0", *extra: str, body: str = "") -> bytes:
    lines = [
        start,
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
        "To: <sip:a@example.com>",
        "From: <sip:b@example.com>;tag=1",
        "Call-ID: c1",
        "CSeq: 1 OPTIONS",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_round_trip(name: str) -> None:
    data = load(name)
    message = parse_message(data)
    assert bytes(message) == data
    assert parse_message(bytes(message)) == message


def test_invite_fields() -> None:
    invite = SipRequest.parse(load("invite_sdp.sip"))
    assert invite.method == "INVITE"
    assert isinstance(invite.uri, SipUri)
    assert invite.uri.user == "+8613800138000"
    assert invite.uri.param("user") == "phone"
    via = invite.top_via
    assert (via.transport, via.host, via.port) == ("UDP", "192.0.2.10", 5060)
    assert via.branch == "z9hG4bK776asdhds"
    assert via.rport_requested and via.rport is None
    assert invite.from_.display_name == "Dispatcher 1"
    assert invite.from_.tag == "1928301774"
    assert invite.to.tag is None
    assert invite.cseq.seq == 314159 and invite.cseq.method == "INVITE"
    assert invite.max_forwards == 70
    assert invite.get_all("allow") == ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"]
    assert invite.content_type == "application/sdp"
    assert invite.body.startswith(b"v=0\r\n")


def test_response_fields() -> None:
    ok = SipResponse.parse(load("ok_200.sip"))
    assert (ok.status, ok.reason) == (200, "OK")
    assert ok.top_via.rport == 5060
    assert ok.top_via.received == "198.51.100.7"
    contact = ok.contacts[0].uri
    assert isinstance(contact, SipUri)
    assert (contact.host, contact.port, contact.transport) == ("[2001:db8::20]", 5070, "tcp")
    assert ok.to.tag == "a6c85cf"


def test_register_and_challenge_keep_auth_values_whole() -> None:
    register = SipRequest.parse(load("register_auth.sip"))
    authorization = register.get("Authorization")
    assert authorization is not None and 'cnonce="0a4f113b"' in authorization
    assert register.contacts[0].param("expires") == "3600"
    challenge = SipResponse.parse(load("unauthorized_401.sip"))
    assert challenge.status == 401
    assert len(challenge.get_all("WWW-Authenticate")) == 1


def test_tel_uri_request() -> None:
    message = SipRequest.parse(load("tel_uri.sip"))
    assert isinstance(message.uri, TelUri)
    assert message.uri.number == "+17400000001" and message.uri.is_global
    assert message.body == b"hello"
    assert isinstance(message.to.uri, TelUri)


def test_compact_forms_and_multi_value_split() -> None:
    message = SipRequest.parse(load("compact.sip"))
    assert [v.host for v in message.vias] == ["pc33.atlanta.example.com", "10.0.0.1"]
    assert message.call_id == "a84b4c76e66710"
    assert message.get("subject") == message.get("s") == "hello"
    assert [c.display_name for c in message.contacts] == [None, "Alice, mobile"]
    assert message.get_all("Supported") == ["replaces", "timer"]
    assert message.body == b"v=0\r\n"
    assert b"\r\nVia: SIP/2.0/TCP 10.0.0.1:5061;branch=z9hG4bKa;received=192.0.2.99\r\n" in bytes(
        message
    )
    assert parse_message(bytes(message)) == message


def test_folding_and_case_insensitive_names() -> None:
    data = minimal(
        "OPTIONS sip:a@example.com SIP/2.0",
        "SUBJECT: first\r\n second\r\n\tthird",
        "max-forwards: 0070",
    )
    message = parse_message(data)
    assert message.get("Subject") == "first second third"
    assert message.max_forwards == 70
    assert b"Max-Forwards: 70\r\n" in bytes(message)


def test_uris() -> None:
    uri = parse_uri("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=hi&x=y")
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.user, uri.password, uri.port) == ("sips", "alice", "secret", 5061)
    assert uri.param("lr") == "" and uri.transport == "tcp"
    assert [(h.name, h.value) for h in uri.headers] == [("subject", "hi"), ("x", "y")]
    assert str(uri) == "sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=hi&x=y"
    assert parse_uri("urn:service:sos") == AbsoluteUri("urn", "service:sos")
    for bad in ("sip:a@[::1", "sip:a@host:99999", "sip:@host", "sip:a@ho st", "sip:a%zz@h"):
        with pytest.raises(SipParseError):
            parse_uri(bad)


def test_name_addr_forms() -> None:
    quoted = NameAddr.parse('"A \\"B\\"" <sip:a@h>;tag=x')
    assert quoted.display_name == 'A "B"' and quoted.tag == "x"
    assert str(quoted) == '"A \\"B\\"" <sip:a@h>;tag=x'
    bare = NameAddr.parse("sip:a@h;tag=7")
    assert bare.uri == SipUri("h", "a") and bare.tag == "7"
    assert NameAddr.parse('<sip:a@h>;p="x;y"').param("p") == "x;y"


def test_via_variants() -> None:
    via = Via.parse("SIP / 2.0 / tcp [2001:db8::9]:5070 ; branch = z9hG4bKx ; rport = 1234")
    assert (via.transport, via.host, via.port, via.rport) == ("TCP", "[2001:db8::9]", 5070, 1234)
    assert str(via) == "SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bKx;rport=1234"
    assert str(via.with_param("received", "192.0.2.1")).endswith(";received=192.0.2.1")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            minimal("INVITE sip:a@example.com SIP/2.0"),
            "bad CSeq: method 'OPTIONS' does not match request method 'INVITE'",
        ),
        (
            minimal("OPTIONS sip:a@example.com SIP/2.0", "Content-Length: 10"),
            "body shorter than Content-Length (0 < 10 bytes)",
        ),
        (
            minimal("OPTIONS sip:a@example.com SIP/2.0", "Content-Length: x"),
            "bad Content-Length 'x'",
        ),
        (
            minimal("OPTIONS sip:a@example.com SIP/2.0", "Max-Forwards: 256"),
            "bad Max-Forwards '256': expected an integer 0..255",
        ),
        (minimal("OPTIONS sip:a@example.com SIP/3.0"), "unsupported SIP version 'SIP/3.0'"),
        (minimal("OPTIONS sip:a@example.com SIP/2.0", "Call-ID: c2"), "multiple Call-ID headers"),
        (
            minimal("OPTIONS sip:a@example.com SIP/2.0", "Via: SIP/2.0/UDP h;branch"),
            "bad Via: branch parameter without value",
        ),
        (
            b"OPTIONS sip:a@example.com SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n",
            "missing required header(s): Via, From, To, Call-ID",
        ),
        (b"SIP/2.0 99 Too Low\r\n\r\n", "bad status code in 'SIP/2.0 99 Too Low'"),
        (b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: x", "no empty line after the header section"),
    ],
)
def test_precise_errors(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    assert caught.value.reason == reason


def test_body_cut_to_content_length_and_rest_of_datagram() -> None:
    cut = parse_message(
        minimal("OPTIONS sip:a@example.com SIP/2.0", "Content-Length: 2", body="abcd")
    )
    assert cut.body == b"ab"
    assert parse_message(minimal(body="abcd")).body == b"abcd"


def test_bad_request_response() -> None:
    data = minimal("INVITE sip:a@example.com SIP/2.0")
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    response = bad_request_response(data, caught.value, to_tag="t1")
    assert response is not None
    assert response.status == 400
    assert response.reason.startswith("bad CSeq: method 'OPTIONS'")
    assert response.to.tag == "t1"
    assert response.call_id == "c1" and response.top_via.branch == "z9hG4bK1"
    assert parse_message(bytes(response)) == response


@pytest.mark.parametrize(
    "data",
    [
        b"SIP/2.0 200 OK\r\nCSeq: x\r\n\r\n",
        b"ACK sip:a@h SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n",
        b"\x00garbage\r\n\r\n",
        b"OPTIONS sip:a@h SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n",
    ],
)
def test_bad_request_response_drops(data: bytes) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    assert bad_request_response(data, caught.value) is None


def test_create_response_copies_dialog_headers() -> None:
    invite = SipRequest.parse(load("invite_sdp.sip"))
    ringing = create_response(
        invite, 180, "Ringing", to_tag="abc", headers=(Header("Server", "cchub"),)
    )
    assert [h.name for h in ringing.headers] == ["Via", "From", "Call-ID", "CSeq", "To", "Server"]
    assert ringing.to.tag == "abc" and ringing.cseq == invite.cseq
    assert parse_message(bytes(ringing)) == ringing


def test_stream_framer_splits_by_content_length() -> None:
    one, two = load("invite_sdp.sip"), load("bye.sip")
    framer = SipStreamFramer()
    stream = b"\r\n\r\n" + one + two
    frames = [frame for i in range(0, len(stream), 7) for frame in framer.feed(stream[i : i + 7])]
    assert frames == [one, two]
    assert framer.buffered == 0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            b"OPTIONS sip:a@h SIP/2.0\r\nVia: x\r\n\r\n",
            "stream message needs exactly one Content-Length",
        ),
        (
            b"OPTIONS sip:a@h SIP/2.0\r\nl: 999999\r\n\r\n",
            "body of 999999 bytes exceeds 262144 bytes",
        ),
        (b"X" * 20000, "header section exceeds 16384 bytes"),
    ],
)
def test_stream_framer_limits(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as caught:
        SipStreamFramer().feed(data)
    assert caught.value.reason == reason
