"""Golden-byte and fuzz tests for the Extron SIS codec."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import extron_sis as sis

DATA = Path(__file__).parent / "data" / "extron_sis"


def capture(name: str) -> bytes:
    return (DATA / f"{name}.bin").read_bytes()


RESPONSES = [
    ("tie_all_reply", sis.TieReport(3, 1, sis.TieKind.ALL)),
    ("tie_video_reply", sis.TieReport(3, 1, sis.TieKind.VIDEO)),
    ("tie_audio_reply", sis.TieReport(12, 7, sis.TieKind.AUDIO)),
    ("untie_reply", sis.TieReport(8, 0)),
    ("view_tie_answer", sis.TieStatus(1)),
    ("error_e01", sis.SisError("E01")),
    ("error_e13", sis.SisError("E13")),
    ("error_e22", sis.SisError("E22")),
    (
        "banner",
        sis.Notice("(c) Copyright 2013, Extron Electronics, DXP 88 HDMI, V1.05, 60-1112-01"),
    ),
]


@pytest.mark.parametrize(("name", "expected"), RESPONSES, ids=[r[0] for r in RESPONSES])
def test_golden_responses_round_trip(name: str, expected: sis.SisResponse) -> None:
    data = capture(name)
    message = sis.parse_response(data)
    assert message == expected
    assert bytes(message) == data


COMMANDS = [
    ("cmd_tie_all", sis.Tie(1, 3, sis.TieKind.ALL)),
    ("cmd_tie_video", sis.Tie(1, 3, sis.TieKind.VIDEO)),
    ("cmd_tie_audio", sis.Tie(1, 3, sis.TieKind.AUDIO)),
    ("cmd_view_tie", sis.ViewTie(3)),
]


@pytest.mark.parametrize(("name", "expected"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_golden_commands_round_trip(name: str, expected: sis.SisCommand) -> None:
    data = capture(name)
    assert sis.parse_command(data) == expected
    assert bytes(expected) == data


def test_tie_expects_its_report_and_errors_carry_reasons() -> None:
    assert sis.Tie(1, 3).expected_report() == sis.parse_response(capture("tie_all_reply"))
    error = sis.parse_response(capture("error_e13"))
    assert isinstance(error, sis.SisError)
    assert (error.code, error.reason) == ("E13", "invalid value")
    assert sis.SisError("E99").reason == "unknown error"


MALFORMED = [
    ("bad_report_type", "unknown tie type 'Xyz' (legal: All, Vid, Aud)"),
    ("bad_report_port", "tie report must look like 'Out03 In01 All', got b'Out03 InAB All\\r\\n'"),
    ("bad_error_code", "SIS error must look like 'E13', got b'E1\\r\\n'"),
    ("bad_not_ascii", "SIS response is not ASCII"),
    ("bad_control", "SIS line has control characters"),
]


@pytest.mark.parametrize(("name", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_responses_raise_precise_errors(name: str, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        sis.parse_response(capture(name))
    assert str(excinfo.value).startswith(message)


def test_malformed_command_and_ranges() -> None:
    with pytest.raises(ValueError, match=r"tie command must look like '1\*3!', got b'1\*3#'"):
        sis.parse_command(capture("bad_cmd"))
    with pytest.raises(ValueError, match=r"output must be 1\.\.999, got 0"):
        sis.Tie(1, 0)
    with pytest.raises(ValueError, match="SIS error code must look like 'E13'"):
        sis.SisError("X1")


def test_framer_splits_lines_and_bounds_them() -> None:
    framer = sis.sis_framer()
    stream = capture("banner") + capture("tie_all_reply") + capture("view_tie_answer")
    frames = framer.feed(stream)
    assert [type(sis.parse_response(f)) for f in frames] == [
        sis.Notice,
        sis.TieReport,
        sis.TieStatus,
    ]


@given(st.binary(max_size=40))
def test_fuzz_responses_raise_only_value_error(data: bytes) -> None:
    try:
        message = sis.parse_response(data)
    except ValueError:
        return
    assert isinstance(message, sis.TieReport | sis.TieStatus | sis.SisError | sis.Notice)


@given(st.binary(max_size=16))
def test_fuzz_commands_raise_only_value_error(data: bytes) -> None:
    try:
        command = sis.parse_command(data)
    except ValueError:
        return
    assert sis.parse_command(bytes(command)) == command
