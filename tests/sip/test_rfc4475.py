"""RFC 4475 torture messages: valid ones parse and round-trip, invalid ones are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from sip.errors import SipParseError
from sip.message import SipRequest, SipResponse, bad_request_response, parse_message

DATA = Path(__file__).parent / "data" / "rfc4475"

# 3.1.1 valid messages (byte-exact, SHA-256 checked against a published decode).
VALID = [
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
    "semiuri", "transports", "mpart01", "unreason", "noreason",
]  # fmt: skip
# 3.1.2 invalid messages, with the answer RFC 4475 asks for (None: drop, it is a response).
INVALID = {
    "badinv01": 400, "clerr": 400, "ncl": 400, "scalar02": 400, "scalarlg": None,
    "quotbal": 400, "ltgtruri": 400, "lwsruri": 400, "lwsstart": 400, "trws": 400,
    "escruri": 400, "baddate": 400, "regbadct": 400, "badaspec": 400, "baddn": 400,
    "badvers": 505, "mismatch01": 400, "mismatch02": 400, "bigcode": None,
}  # fmt: skip
# 3.3 application-layer semantics: syntactically fine, the UA/proxy decides (416, 420, 483...).
SEMANTIC_OK = [
    "unkscm", "novelsc", "unksm2", "bext01", "invut", "regaut01", "bcast", "zeromf",
    "cparam01", "cparam02", "regescrt", "sdp01",
]  # fmt: skip
# 3.3 messages the parser itself must refuse (missing or duplicated single headers).
# insuf has no From, To or Call-ID: it still gets a 400 (with Via and CSeq, what the
# client matches on), as RFC 4475 section 3.3.1 asks.
SEMANTIC_BAD = {"insuf": 400, "multi01": 400, "mcl01": 400}
# 3.2 transaction layer and 3.4 RFC 2543 compatibility: parse, the next layer decides.
OTHER_OK = ["badbranch", "inv2543"]


def load(name: str) -> bytes:
    return (DATA / f"{name}.sip").read_bytes()


def test_every_data_file_is_classified() -> None:
    names = {p.stem for p in DATA.glob("*.sip")}
    listed = {*VALID, *INVALID, *SEMANTIC_OK, *SEMANTIC_BAD, *OTHER_OK}
    assert names == listed
    assert len(names) == 49


@pytest.mark.parametrize("name", VALID + SEMANTIC_OK + OTHER_OK)
def test_valid_messages_parse_and_round_trip(name: str) -> None:
    message = parse_message(load(name))
    canonical = bytes(message)
    again = parse_message(canonical)
    assert again == message
    assert bytes(again) == canonical


@pytest.mark.parametrize(("name", "status"), [*INVALID.items(), *SEMANTIC_BAD.items()])
def test_invalid_messages_are_refused(name: str, status: int | None) -> None:
    data = load(name)
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    response = bad_request_response(data, caught.value, to_tag="x")
    assert (response.status if response else None) == status
    if response is not None:
        assert bytes(response).startswith(f"SIP/2.0 {status} ".encode())
        to = response.get("To")
        assert to is None or "tag=" in to
        assert response.get("CSeq") and response.get_all("Via")


def test_insuf_answer_has_only_what_the_request_had() -> None:
    data = load("insuf")
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    response = bad_request_response(data, caught.value)
    assert response is not None and response.status == 400
    assert "From" in response.reason and "Call-ID" in response.reason
    assert response.get("CSeq") == "193942 INVITE"
    assert [v.branch for v in response.vias] == ["z9hG4bKkdj.insuf"]
    assert response.get("To") is None and response.get("Call-ID") is None


def test_wsinv_details() -> None:
    message = SipRequest.parse(load("wsinv"))
    assert message.to.tag == "1918181833n"
    assert message.from_.display_name == 'J Rosenberg \\"'
    assert message.cseq.seq == 9 and message.max_forwards == 68
    assert [v.branch for v in message.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert message.contacts[0].param("newparam") == "newvalue"
    assert message.contacts[0].param("q") == "0.33"
    assert message.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert len(message.body) == 150


def test_intmeth_keeps_odd_tokens_and_utf8() -> None:
    message = SipRequest.parse(load("intmeth"))
    assert message.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert message.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert message.from_.param("fromParam''~+*_!.-%") == "работающий"
    assert message.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_semicolon_user_and_unknown_schemes() -> None:
    semi = SipRequest.parse(load("semiuri"))
    assert str(semi.uri) == "sip:user;par=u%40example.net@example.com"
    assert semi.get_all("Accept")[-1] == "message/sipfrag"
    assert str(SipRequest.parse(load("unkscm")).uri) == "nobodyKnowsThisScheme:totallyopaquecontent"


def test_dblreq_ignores_the_second_request() -> None:
    message = SipRequest.parse(load("dblreq"))
    assert message.method == "REGISTER" and message.body == b""


def test_unicode_and_empty_reason_phrases() -> None:
    assert SipResponse.parse(load("unreason")).reason.endswith("простое")
    assert SipResponse.parse(load("noreason")).reason == ""


def test_mpart01_binary_body_kept() -> None:
    message = SipRequest.parse(load("mpart01"))
    assert len(message.body) == 553 and b"\x30\x82\x01\x52" in message.body
