"""Golden-byte and fuzz tests for the Kramer Protocol 3000 codec (examples from the manuals)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import kramer_p3000 as p3k
from protocols.framing import FramingError

DATA = Path(__file__).parent / "data" / "kramer_p3000"


def capture(name: str) -> bytes:
    return (DATA / f"{name}.bin").read_bytes()


MESSAGES = [
    ("handshake_reply", p3k.P3kReply(1, "", (), ok=True)),
    ("route_ok", p3k.P3kReply(1, "ROUTE", ("1", "1", "3"), ok=True)),
    ("route_answer", p3k.P3kReply(1, "ROUTE", ("1", "2", "5"))),
    ("vid_ok", p3k.P3kReply(1, "VID", ("3>1",), ok=True)),
    ("av_notice", p3k.P3kReply(1, "AV", ("2>1", "4>2"))),
    ("route_err_003", p3k.P3kError(1, 3, "ROUTE")),
    ("err_001", p3k.P3kError(1, 1)),
    ("info_io", p3k.P3kReply(1, "INFO-IO", ("IN 8", "OUT 8"))),
    ("model", p3k.P3kReply(1, "MODEL", ("VS-88UT",))),
    ("start_message", p3k.P3kText("Kramer Electronics LTD. , VS-88UT Version 1.12")),
]


@pytest.mark.parametrize(("name", "expected"), MESSAGES, ids=[m[0] for m in MESSAGES])
def test_device_messages_round_trip(name: str, expected: p3k.P3kMessage) -> None:
    data = capture(name)
    assert p3k.parse_message(data) == expected
    assert bytes(expected) == data


COMMANDS = [
    ("cmd_handshake", p3k.P3kCommand.handshake()),
    ("cmd_route", p3k.route(p3k.Layer.VIDEO, 1, 3)),
    ("cmd_route_query", p3k.route_query(p3k.Layer.VIDEO, 2)),
    ("cmd_route_addressed", p3k.route(p3k.Layer.AUDIO, 4, 0, machine=5)),
]


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_host_commands_are_the_documented_bytes(name: str, command: p3k.P3kCommand) -> None:
    data = capture(name)
    assert bytes(command) == data
    assert p3k.parse_commands(data) == [command]


def test_variants_devices_send() -> None:
    # older firmware writes ERR003 without the space, some write 'ok' in lower case
    assert p3k.parse_message(b"~01@ERR003\r\n") == p3k.P3kError(1, 3)
    assert p3k.parse_message(b"~01@ok\r\n") == p3k.P3kReply(1, "", (), ok=True)
    assert p3k.parse_message(b"~ROUTE 1,1,3 OK\r") == p3k.P3kReply(
        None, "ROUTE", ("1", "1", "3"), True
    )
    query_error = p3k.parse_message(b"~01@ROUTE? ERR 002\r\n")
    assert isinstance(query_error, p3k.P3kError) and query_error.command == "ROUTE"


def test_errors_carry_the_devices_code_and_meaning() -> None:
    error = p3k.parse_message(capture("route_err_003"))
    assert isinstance(error, p3k.P3kError)
    assert (error.device_code, error.reason) == ("ERR 003", "parameter out of range")
    assert p3k.P3kError(1, 6).reason == "protocol busy"
    assert p3k.P3kError(1, 4).reason == "unauthorized access"
    assert p3k.P3kError(1, 999).reason == "unknown error"


def test_route_reports() -> None:
    route = p3k.parse_message(capture("route_answer"))
    av = p3k.parse_message(capture("av_notice"))
    assert isinstance(route, p3k.P3kReply) and isinstance(av, p3k.P3kReply)
    assert p3k.tie_changes(route) == [p3k.TieChange(p3k.Layer.VIDEO, 2, 5)]
    assert p3k.tie_changes(av) == [
        p3k.TieChange(p3k.Layer.VIDEO, 1, 2),
        p3k.TieChange(p3k.Layer.AUDIO, 1, 2),
        p3k.TieChange(p3k.Layer.VIDEO, 2, 4),
        p3k.TieChange(p3k.Layer.AUDIO, 2, 4),
    ]
    assert p3k.tie_changes(p3k.P3kReply(1, "MODEL", ("X",))) == []
    with pytest.raises(ValueError, match=r"bad ROUTE report \('1', 'x', '3'\)"):
        p3k.tie_changes(p3k.P3kReply(1, "ROUTE", ("1", "x", "3")))
    with pytest.raises(ValueError, match="bad VID report '3-1' \\(expected IN>OUT\\)"):
        p3k.tie_changes(p3k.P3kReply(1, "VID", ("3-1",)))


def test_io_count() -> None:
    info = p3k.parse_message(capture("info_io"))
    assert isinstance(info, p3k.P3kReply)
    assert p3k.IoCount.from_reply(info) == p3k.IoCount(8, 8)
    with pytest.raises(ValueError, match="INFO-IO answer must be 'IN n,OUT m'"):
        p3k.IoCount.from_reply(p3k.P3kReply(1, "INFO-IO", ("IN 8",)))


def test_chained_commands_parse_one_by_one() -> None:
    assert p3k.parse_commands(b"#ROUTE 1,1,3|ROUTE? 1,1\r") == [
        p3k.route(1, 1, 3),
        p3k.route_query(1, 1),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"~01@ROUTE \xff\r\n", "Protocol 3000 line is not ASCII"),
        (b"\r\n", "empty Protocol 3000 line"),
        (b"~01@\x07bell\r\n", "has control characters"),
        (b"~999@ OK\r\n", "machine number 999 out of range"),
        (b"~01@1ROUTE\r\n", "not a Protocol 3000 reply"),
    ],
)
def test_malformed_lines_raise_precise_errors(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        p3k.parse_message(data)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: p3k.route(1, 0, 3), "output must be 1..999, got 0"),
        (lambda: p3k.P3kCommand("ROUTE", ("1|2",)), "bad parameter '1|2'"),
        (lambda: p3k.P3kCommand("9X"), "not a Protocol 3000 command name"),
        (lambda: p3k.P3kCommand("ROUTE", machine=300), "machine number must be 0..255"),
    ],
)
def test_bad_commands_are_refused(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build()  # type: ignore[operator]


def test_framer_reassembles_half_lines() -> None:
    framer = p3k.p3k_framer()
    assert framer.feed(b"~01@ROUTE 1,") == []
    assert framer.feed(b"1,3 OK\r\n~01@ERR") == [b"~01@ROUTE 1,1,3 OK\r\n"]
    assert framer.feed(b" 001\r\n") == [b"~01@ERR 001\r\n"]


@given(st.binary(max_size=120))
def test_parser_raises_only_value_error(data: bytes) -> None:
    try:
        frames = p3k.p3k_framer().feed(data + b"\n")
    except FramingError as err:
        frames = err.frames
    for frame in frames:
        try:
            message = p3k.parse_message(frame)
        except ValueError:
            continue
        if isinstance(message, p3k.P3kReply):
            with contextlib.suppress(ValueError):
                p3k.tie_changes(message)


@given(st.text(alphabet="#~@0123456789ROUTEVID?>, |OKER\r", max_size=60))
def test_command_parser_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        p3k.parse_commands(text.encode())
