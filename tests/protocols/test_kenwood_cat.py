"""Golden-byte and fuzz tests for the Kenwood CAT codec."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import kenwood_cat as cat

DATA = Path(__file__).parent / "data" / "kenwood_cat"


def capture(name: str) -> bytes:
    return (DATA / f"{name}.bin").read_bytes()


GOLDEN = [
    ("fa_answer", cat.Frequency("A", 14_250_000)),
    ("fb_answer", cat.Frequency("B", 7_100_000)),
    ("fa_query", cat.Query("FA")),
    ("md_answer_usb", cat.OperatingMode(cat.Mode.USB)),
    ("md_query", cat.Query("MD")),
    ("tx", cat.Transmit()),
    ("tx_source_mic", cat.Transmit(0)),
    ("rx", cat.Receive()),
    ("id_ts590sg", cat.Identity(23)),
    ("ps_on", cat.PowerStatus(True)),
    ("error_syntax", cat.CatError(cat.CatErrorKind.SYNTAX)),
    ("error_comms", cat.CatError(cat.CatErrorKind.COMMUNICATION)),
    ("error_overflow", cat.CatError(cat.CatErrorKind.OVERFLOW)),
]


@pytest.mark.parametrize(("name", "expected"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_frames_round_trip(name: str, expected: cat.CatMessage) -> None:
    data = capture(name)
    message = cat.parse_message(data)
    assert message == expected
    assert bytes(message) == data


def test_if_status_line_fields() -> None:
    data = capture("if_rx_usb")
    info = cat.parse_message(data)
    assert isinstance(info, cat.Information)
    assert (info.frequency_hz, info.mode, info.transmitting) == (14_250_000, cat.Mode.USB, False)
    assert bytes(info) == data

    data = capture("if_tx_lsb_rit")
    info = cat.Information.parse(data)
    assert info.frequency_hz == 7_055_000
    assert info.mode is cat.Mode.LSB
    assert info.transmitting and info.rit and info.split
    assert info.rit_offset_hz == -120
    assert info.memory_channel == 10
    assert bytes(info) == data


def test_error_codes_and_reasons() -> None:
    error = cat.parse_message(capture("error_syntax"))
    assert isinstance(error, cat.CatError)
    assert error.code == "?"
    assert "syntax" in error.reason


MALFORMED = [
    ("bad_fa_short", "FA frequency must be 11 digits, got '1425000'"),
    ("bad_fa_letters", "FA frequency must be 11 digits, got '0001425000X'"),
    ("bad_md_digit", "unknown mode digit '8' (legal: 1, 2, 3, 4, 5, 6, 7, 9)"),
    ("bad_if_length", "IF answer must be 38 bytes, got 37"),
    ("bad_error", "unknown CAT error reply b'X;'"),
    ("bad_unknown", "unsupported CAT command b'ZZ' in b'ZZ123;'"),
    ("bad_no_terminator", "CAT frame must end with ';', got b'FA00014250000'"),
]


@pytest.mark.parametrize(("name", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_frames_raise_precise_errors(name: str, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        cat.parse_message(capture(name))
    assert str(excinfo.value).startswith(message)


def test_encoders_reject_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="out of range"):
        cat.Frequency("A", 10**11)
    with pytest.raises(ValueError, match="not a readable CAT command"):
        cat.Query("TX")
    with pytest.raises(ValueError, match="unknown mode 'SSB'"):
        cat.Mode.from_name("SSB")
    assert cat.Mode.from_name("cw-r") is cat.Mode.CW_R


def test_framer_cuts_a_stream_into_frames() -> None:
    framer = cat.cat_framer()
    stream = capture("fa_answer") + capture("md_answer_usb") + capture("if_rx_usb")
    assert framer.feed(stream[:5]) == []
    frames = framer.feed(stream[5:])
    assert [type(cat.parse_message(f)) for f in frames] == [
        cat.Frequency,
        cat.OperatingMode,
        cat.Information,
    ]


@given(st.binary(max_size=48))
def test_fuzz_parser_raises_only_value_error(data: bytes) -> None:
    try:
        message = cat.parse_message(data)
    except ValueError:
        return
    assert cat.parse_message(bytes(message)) == message


@given(st.binary(max_size=40).map(lambda b: b"IF" + b + b";"))
def test_fuzz_information(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        cat.parse_message(data)
