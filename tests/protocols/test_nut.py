"""NUT network protocol: golden replies captured from upsd 2.8.0, quoting, partial lines, fuzz."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import nut

DATA = Path(__file__).parent / "data" / "nut"


def capture(name: str) -> bytes:
    return (DATA / f"{name}.txt").read_bytes()


SINGLE = [
    ("ver", nut.Text("Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/")),
    ("netver", nut.Text("1.3")),
    ("get_var_status", nut.Var("ups1", "ups.status", "OB DISCHRG")),
    ("get_var_alarm", nut.Var("ups1", "ups.alarm", "Replace battery!")),
    ("ok", nut.Ok()),
    ("ok_goodbye", nut.Ok("Goodbye")),
    ("err_access_denied", nut.Err("ACCESS-DENIED")),
    ("err_unknown_ups", nut.Err("UNKNOWN-UPS")),
    ("err_var_not_supported", nut.Err("VAR-NOT-SUPPORTED")),
    ("err_unknown_command", nut.Err("UNKNOWN-COMMAND")),
    ("err_invalid_argument", nut.Err("INVALID-ARGUMENT")),
    ("err_data_stale", nut.Err("DATA-STALE")),
    ("err_driver_not_connected", nut.Err("DRIVER-NOT-CONNECTED")),
]


@pytest.mark.parametrize(("name", "expected"), SINGLE, ids=[s[0] for s in SINGLE])
def test_golden_single_line_replies_round_trip(name: str, expected: nut.Reply) -> None:
    data = capture(name)
    reply = nut.parse_reply(data)
    assert reply == expected
    assert bytes(reply) == data


def assemble(request: nut.Request, data: bytes) -> nut.Answer:
    exchange = nut.Exchange(request)
    framer = nut.nut_framer()
    lines = framer.feed(data)
    for i, line in enumerate(lines):
        done = exchange.feed(nut.parse_reply(line))
        assert done == (i == len(lines) - 1)
    assert exchange.answer is not None
    return exchange.answer


def test_golden_list_ups_with_escaped_description() -> None:
    data = capture("list_ups")
    answer = assemble(nut.list_ups(), data)
    # ups.conf had: desc = "Rack A3 \"main\" UPS \\ dispatch"
    assert answer == nut.ListReply(
        ("UPS",), (nut.UpsEntry("ups1", 'Rack A3 "main" UPS \\ dispatch'),)
    )
    assert data.splitlines()[1] == b'UPS ups1 "Rack A3 \\"main\\" UPS \\\\ dispatch"'
    assert b"".join(bytes(r) for r in _list_lines(answer)) == data


def _list_lines(answer: nut.Answer) -> list[nut.Reply]:
    assert isinstance(answer, nut.ListReply)
    return [nut.BeginList(answer.query), *answer.items, nut.EndList(answer.query)]


def test_golden_list_var() -> None:
    data = capture("list_var")
    answer = assemble(nut.list_var("ups1"), data)
    assert isinstance(answer, nut.ListReply)
    values = {v.name: v.value for v in answer.items if isinstance(v, nut.Var)}
    assert len(values) == len(answer.items) == 19
    assert values["ups.status"] == "OB DISCHRG"
    assert values["battery.charge"] == "87"
    assert values["ups.model"] == "Smart-UPS 3000 RM"
    assert b"".join(bytes(r) for r in _list_lines(answer)) == data


def test_a_list_request_answered_with_an_error() -> None:
    answer = assemble(nut.list_var("ups1"), capture("err_data_stale"))
    assert answer == nut.Err("DATA-STALE")


def test_partial_lines_arrive_byte_by_byte() -> None:
    data = capture("list_var")
    framer = nut.nut_framer()
    exchange = nut.Exchange(nut.list_var("ups1"))
    for i in range(len(data)):
        for line in framer.feed(data[i : i + 1]):
            exchange.feed(nut.parse_reply(line))
        assert exchange.done == (i == len(data) - 1)
    assert framer.buffered == 0


REQUESTS = [
    (nut.ver(), b"VER\n"),
    (nut.list_ups(), b"LIST UPS\n"),
    (nut.list_var("ups1"), b"LIST VAR ups1\n"),
    (nut.get_var("ups1", "ups.status"), b"GET VAR ups1 ups.status\n"),
    (nut.username("monuser"), b"USERNAME monuser\n"),
    (nut.password('pa ss"w\\d'), b'PASSWORD "pa ss\\"w\\\\d"\n'),
    (nut.password(""), b'PASSWORD ""\n'),
    (nut.login("ups1"), b"LOGIN ups1\n"),
    (nut.logout(), b"LOGOUT\n"),
]


@pytest.mark.parametrize(("request_", "wire"), REQUESTS, ids=[r[1].decode() for r in REQUESTS])
def test_requests_encode_and_parse(request_: nut.Request, wire: bytes) -> None:
    assert bytes(request_) == wire
    assert nut.Request.parse(wire) == request_


def test_a_password_is_never_shown() -> None:
    request = nut.password("s3cret-pass")
    assert "s3cret" not in request.describe()
    error = nut.NutError(nut.Err("ACCESS-DENIED"), request)
    assert "s3cret" not in str(error)
    assert error.code == "ACCESS-DENIED"
    assert str(error) == (
        "ACCESS-DENIED: host or credentials not allowed to do this (request: PASSWORD ***)"
    )


def test_words_cannot_smuggle_a_second_request() -> None:
    with pytest.raises(ValueError, match="may not contain '\\\\n'"):
        bytes(nut.username("admin\nINSTCMD ups1 load.off"))


MALFORMED = [
    (b'VAR ups1 ups.status "OL\n', "unterminated quote"),
    (b"VAR ups1 ups.status OL\\\n", "lone backslash"),
    (b"VAR ups1 ups.status\n", "VAR needs <ups> <name> <value>"),
    (b'VAR ups1 a "b" c\n', "VAR needs <ups> <name> <value>"),
    (b'UPS ups1 "a" "b"\n', "UPS needs <ups> <description>"),
    (b"ERR\n", "ERR without a code"),
    (b"BEGIN VAR ups1\n", "BEGIN must be followed by LIST <query>"),
    (b"END LIST\n", "END must be followed by LIST <query>"),
    (b"\n", "empty NUT reply line"),
    (b"OK\0\n", "may not contain LF or NUL"),
    (b'VAR ups1 x "\xff"\n', "not UTF-8 at byte 12"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_replies_raise_precise_errors(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("<", ".").replace(">", ".")):
        nut.parse_reply(data)


EXCHANGE_ERRORS: list[tuple[nut.Request, list[bytes], str]] = [
    (nut.list_var("ups1"), [b"BEGIN LIST VAR ups2\n"], "expected BEGIN LIST VAR ups1"),
    (nut.list_var("ups1"), [b'VAR ups1 a "1"\n'], "expected BEGIN LIST VAR ups1"),
    (
        nut.list_var("ups1"),
        [b"BEGIN LIST VAR ups1\n", b"END LIST UPS\n"],
        "END LIST UPS inside",
    ),
    (
        nut.list_var("ups1"),
        [b"BEGIN LIST VAR ups1\n", b"ERR DATA-STALE\n"],
        "unexpected .* inside LIST VAR ups1",
    ),
    (nut.get_var("ups1", "x"), [b"BEGIN LIST VAR ups1\n"], "unexpected BeginList"),
    (nut.ver(), [b"1.3\n", b"OK\n"], "after the answer to VER"),
]


@pytest.mark.parametrize(("request_", "lines", "message"), EXCHANGE_ERRORS)
def test_out_of_step_answers_are_protocol_errors(
    request_: nut.Request, lines: list[bytes], message: str
) -> None:
    exchange = nut.Exchange(request_)
    with pytest.raises(nut.NutProtocolError, match=message):
        for line in lines:
            exchange.feed(nut.parse_reply(line))


def test_status_flags_and_alarms() -> None:
    assert nut.parse_status("OB DISCHRG LB") == (
        [nut.StatusFlag.OB, nut.StatusFlag.DISCHRG, nut.StatusFlag.LB],
        [],
    )
    assert nut.parse_status("ol  CHRG ECO") == ([nut.StatusFlag.OL, nut.StatusFlag.CHRG], ["ECO"])
    assert nut.split_alarms("") == []
    assert nut.split_alarms("Replace battery!") == ["Replace battery!"]
    assert nut.split_alarms("[Replace battery!] [Fan failure]") == [
        "Replace battery!",
        "Fan failure",
    ]


TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\0"))


@given(TEXT)
def test_quoting_round_trips(value: str) -> None:
    assert nut.split_words(nut.quote(value)) == [value]
    assert nut.split_words(nut.encode_word(value)) == [value]


@given(st.lists(TEXT, min_size=1, max_size=5).filter(lambda w: bool(w[0])))
def test_requests_round_trip(words: list[str]) -> None:
    request = nut.Request(tuple(words))
    assert nut.Request.parse(bytes(request)) == request


NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@given(NAME, NAME, TEXT)
def test_var_replies_round_trip(ups: str, name: str, value: str) -> None:
    reply = nut.Var(ups, name, value)
    assert nut.parse_reply(bytes(reply)) == reply


@given(st.binary(max_size=200))
def test_fuzzed_lines_raise_only_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        nut.parse_reply(data)


# --- the asyncio client against a scripted peer on loopback --------------------------------

Script = Callable[[bytes], list[bytes] | None]


@pytest.fixture
async def peer() -> AsyncIterator[Callable[[Script], asyncio.Future[int]]]:
    """Start a TCP peer on 127.0.0.1:0 that answers each request line with ``script(line)``."""
    servers: list[asyncio.Server] = []

    def start(script: Script) -> asyncio.Future[int]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while line := await reader.readline():
                    chunks = script(line)
                    if chunks is None:
                        break
                    for chunk in chunks:
                        writer.write(chunk)
                        await writer.drain()
                        await asyncio.sleep(0.001)  # separate segments: partial lines
            finally:
                writer.close()

        async def listen() -> int:
            server = await asyncio.start_server(serve, "127.0.0.1", 0)
            servers.append(server)
            port: int = server.sockets[0].getsockname()[1]
            return port

        return asyncio.ensure_future(listen())

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_client_reads_lists_split_anywhere_and_maps_errors(
    peer: Callable[[Script], asyncio.Future[int]],
) -> None:
    def script(line: bytes) -> list[bytes] | None:
        if line == b"LIST VAR ups1\n":
            data = capture("list_var")
            return [data[i : i + 7] for i in range(0, len(data), 7)]
        if line.startswith(b"GET VAR"):
            return [capture("err_data_stale")]
        if line == b"LIST UPS\n":
            return [capture("list_ups")]
        return [b"ERR UNKNOWN-COMMAND\n"]

    port = await peer(script)
    async with await nut.NutClient.connect("127.0.0.1", port, limit=3.0) as client:
        values = await client.list_var("ups1")
        assert values["ups.status"] == "OB DISCHRG" and len(values) == 19
        assert await client.list_ups() == {"ups1": 'Rack A3 "main" UPS \\ dispatch'}
        with pytest.raises(nut.NutError, match=r"^DATA-STALE: the UPS driver stopped") as err:
            await client.get_var("ups1", "ups.status")
        assert err.value.code == "DATA-STALE"
        assert not client.closed  # an ERR answer leaves the connection usable
        assert (await client.list_var("ups1"))["battery.charge"] == "87"


async def test_client_drops_a_garbled_line_and_survives(
    peer: Callable[[Script], asyncio.Future[int]],
) -> None:
    def script(line: bytes) -> list[bytes] | None:
        return [b'VAR ups1 ups.status "OL\n', b'VAR ups1 ups.status "OL"\n']

    port = await peer(script)
    async with await nut.NutClient.connect("127.0.0.1", port, limit=3.0) as client:
        assert await client.get_var("ups1", "ups.status") == "OL"


async def test_client_hung_up_mid_list_and_late_answers(
    peer: Callable[[Script], asyncio.Future[int]],
) -> None:
    port = await peer(lambda line: [b"BEGIN LIST VAR ups1\n", b'VAR ups1 a "1"\n'])
    async with await nut.NutClient.connect("127.0.0.1", port, limit=0.3) as client:
        with pytest.raises(TimeoutError):
            await client.list_var("ups1")
        assert client.closed  # out of step: never reused
        with pytest.raises(ConnectionError, match="closed"):
            await client.list_var("ups1")
    port = await peer(lambda line: None)
    async with await nut.NutClient.connect("127.0.0.1", port, limit=3.0) as client:
        with pytest.raises(ConnectionError, match="upsd closed the connection"):
            await client.version()
