"""RTSP responses (captured frames under data/rtsp): parse, fields, exact errors; requests
serialise byte for byte; the reader never raises anything but ValueError (fuzzed)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.rtsp import ResponseReader, RtspRequest

DATA = Path(__file__).parent / "data" / "rtsp"


def frame(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_options_and_describe_answers() -> None:
    reader = ResponseReader()
    [options] = reader.feed(frame("options_ok.bin"))
    assert (options.status, options.reason, options.cseq) == (200, "OK", 1)
    assert "DESCRIBE" in options.headers["public"]
    data = frame("describe_ok.bin")
    assert reader.feed(data[:50]) == []  # split anywhere: nothing until the body is complete
    [describe] = reader.feed(data[50:])
    assert (describe.status, describe.cseq, describe.media_count()) == (200, 2, 2)
    assert describe.headers["content-type"] == "application/sdp"
    [missing] = ResponseReader().feed(frame("describe_404.bin"))
    assert (missing.status, missing.reason) == (404, "Not Found")


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("http_answer.bin", "not an RTSP status line: 'HTTP/1.1 400 Bad Request'"),
        ("bad_header.bin", "malformed RTSP header line: 'CSeq 1'"),
        ("bad_length.bin", "bad Content-Length: '-5'"),
    ],
)
def test_malformed_answers_say_what_is_wrong(name: str, error: str) -> None:
    with pytest.raises(ValueError) as caught:
        ResponseReader().feed(frame(name))
    assert str(caught.value) == error


def test_request_bytes() -> None:
    request = RtspRequest(
        "DESCRIBE", "rtsp://127.0.0.1:8554/live", 2, {"Accept": "application/sdp"}
    )
    assert bytes(request) == (
        b"DESCRIBE rtsp://127.0.0.1:8554/live RTSP/1.0\r\nCSeq: 2\r\n"
        b"Accept: application/sdp\r\n\r\n"
    )
    with pytest.raises(ValueError, match="bad header"):
        bytes(RtspRequest("OPTIONS", "rtsp://x/", 1, {"X": "a\r\nInjected: 1"}))


@given(st.binary(max_size=400))
def test_reader_fuzz(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        ResponseReader().feed(data)
