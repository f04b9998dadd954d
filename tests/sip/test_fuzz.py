"""Fuzzing: no input may make the SIP or SDP parsers raise anything but SipParseError."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip.errors import SipParseError
from sip.framing import SipStreamFramer
from sip.message import bad_request_response, parse_message
from sip.sdp import SessionDescription

DATA = Path(__file__).parent / "data"
SEEDS = sorted(p.read_bytes() for p in DATA.rglob("*.sip"))
SDP_SEEDS = sorted(p.read_bytes() for p in DATA.rglob("*.sdp"))
FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
INTERESTING = [
    b"\r\n",
    b"\r\n ",
    b":",
    b";",
    b",",
    b'"',
    b"\\",
    b"<",
    b">",
    b"@",
    b"%",
    b"\x00",
    b"\xff",
    b"=",
    b"/",
    b"[",
    b"]",
    b" ",
    b"Content-Length: 99999\r\n",
    b"l: -1\r\n",
]


def check_parse(data: bytes) -> None:
    try:
        message = parse_message(data)
    except SipParseError as err:
        response = bad_request_response(data, err)
        if response is not None:
            bytes(response)
        return
    assert parse_message(bytes(message)) == message


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.integers(0, 3))
        if action == 0:
            data[pos:pos] = draw(st.sampled_from(INTERESTING))
        elif action == 1:
            del data[pos : pos + draw(st.integers(1, 12))]
        elif action == 2 and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        else:
            data[pos:pos] = draw(st.binary(max_size=8))
    return bytes(data)


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes(data: bytes) -> None:
    check_parse(data)


@FUZZ
@given(mutated(SEEDS))
def test_mutated_messages(data: bytes) -> None:
    check_parse(data)


@FUZZ
@given(mutated(SEEDS), st.integers(1, 64))
def test_mutated_stream(data: bytes, chunk: int) -> None:
    framer = SipStreamFramer()
    try:
        for i in range(0, len(data), chunk):
            for frame in framer.feed(data[i : i + chunk]):
                check_parse(frame)
    except SipParseError:
        pass


@FUZZ
@given(mutated(SDP_SEEDS))
def test_mutated_sdp(data: bytes) -> None:
    try:
        sdp = SessionDescription.parse(data)
    except SipParseError:
        return
    assert SessionDescription.parse(bytes(sdp)) == sdp
