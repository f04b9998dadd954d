"""Golden-byte and fuzz tests for the PJLink class 1 codec (examples from the PJLink spec)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import pjlink
from protocols.framing import FramingError

DATA = Path(__file__).parent / "data" / "pjlink"


def capture(name: str) -> bytes:
    return (DATA / f"{name}.bin").read_bytes()


def test_digest_is_the_specs_example() -> None:
    # PJLink spec: random 498e4a67, password JBMIAProjectorLink
    assert pjlink.digest("498e4a67", "JBMIAProjectorLink") == "5d8409bc1c3fa39749434aa3a5c38682"


MESSAGES = [
    ("greeting_open", pjlink.Greeting()),
    ("greeting_secured", pjlink.Greeting("498e4a67")),
    ("auth_error", pjlink.AuthError()),
    ("powr_ok", pjlink.Response("POWR", "OK")),
    ("powr_warming", pjlink.Response("POWR", "3")),
    ("inpt_31", pjlink.Response("INPT", "31")),
    ("inpt_err3", pjlink.Response("INPT", "ERR3")),
    ("erst", pjlink.Response("ERST", "000020")),
    ("lamp_two", pjlink.Response("LAMP", "12345 1 678 0")),
    ("name", pjlink.Response("NAME", "Situation wall")),
]


@pytest.mark.parametrize(("name", "expected"), MESSAGES, ids=[m[0] for m in MESSAGES])
def test_display_messages_round_trip(name: str, expected: pjlink.PjlinkMessage) -> None:
    data = capture(name)
    assert pjlink.parse_message(data) == expected
    assert bytes(expected) == data


def test_commands_and_the_authenticated_first_command() -> None:
    assert bytes(pjlink.power(True)) == capture("cmd_power_on")
    assert bytes(pjlink.query("INPT")) == capture("cmd_input_query")
    greeting = pjlink.parse_message(capture("greeting_secured"))
    assert isinstance(greeting, pjlink.Greeting) and greeting.secured
    assert greeting.random is not None
    auth = pjlink.digest(greeting.random, "JBMIAProjectorLink")
    first = pjlink.query("POWR").encode(auth)
    assert first == capture("cmd_power_query_authed")
    assert pjlink.Command.parse(first) == (auth, pjlink.query("POWR"))
    assert pjlink.Command.parse(b"%1INPT 31\r") == (None, pjlink.select_input("31"))


def test_typed_answers() -> None:
    assert pjlink.parse_power("3") is pjlink.PowerState.WARMING
    assert pjlink.PowerState.COOLING.label == "cooling"
    assert pjlink.parse_error_status("000020") == {
        "fan": "ok",
        "lamp": "ok",
        "temperature": "ok",
        "cover": "ok",
        "filter": "error",
        "other": "ok",
    }
    assert pjlink.parse_lamps("12345 1 678 0") == [
        pjlink.Lamp(12345, True),
        pjlink.Lamp(678, False),
    ]
    assert pjlink.parse_inputs("11 12 31") == ["11", "12", "31"]


def test_error_codes_and_their_meanings() -> None:
    meanings = {
        "ERR1": "undefined command",
        "ERR2": "out of parameter",
        "ERR3": "unavailable time",
        "ERR4": "projector/display failure",
        "ERRA": "authorization error",
    }
    for code, meaning in meanings.items():
        response = pjlink.Response("POWR", code)
        assert response.error is pjlink.ErrorCode[code]
        assert response.error.value == meaning
    assert pjlink.Response("POWR", "OK").ok and pjlink.Response("POWR", "1").error is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: pjlink.parse_message(b"PJLINK 2\r"), "PJLink greeting must be 'PJLINK 0'"),
        (lambda: pjlink.parse_message(b"%1POWR\r"), "PJLink response must look like '%1POWR=OK'"),
        (lambda: pjlink.parse_message(b"%1POWR=\xe9\r"), "PJLink line is not ASCII"),
        (lambda: pjlink.parse_power("5"), "POWR answer must be 0-3, got '5'"),
        (lambda: pjlink.parse_error_status("00002"), "ERST answer must be 6 digits 0-2"),
        (lambda: pjlink.parse_lamps("123"), "LAMP answer must be pairs of 'hours on'"),
        (lambda: pjlink.parse_lamps("12x 1"), "bad LAMP pair '12x' '1'"),
        (lambda: pjlink.select_input("0A"), "PJLink input must be type 1-9"),
        (lambda: pjlink.Command("powr"), "PJLink command must be 4 upper-case characters"),
        (lambda: pjlink.Command.parse(b"%1POWR\r"), "PJLink command must look like '%1POWR 1'"),
    ],
)
def test_malformed_input_raises_precise_errors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()  # type: ignore[operator]


@given(st.binary(max_size=80))
def test_parser_raises_only_value_error(data: bytes) -> None:
    try:
        frames = pjlink.pjlink_framer().feed(data + b"\r")
    except FramingError as err:
        frames = err.frames
    for frame in frames:
        try:
            message = pjlink.parse_message(frame)
        except ValueError:
            continue
        assert isinstance(message, pjlink.Greeting | pjlink.AuthError | pjlink.Response)


@given(st.text(alphabet="0123456789 ", max_size=30))
def test_answer_parsers_raise_only_value_error(text: str) -> None:
    for parse in (pjlink.parse_lamps, pjlink.parse_error_status, pjlink.parse_power):
        with contextlib.suppress(ValueError):
            parse(text)
