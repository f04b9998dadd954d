"""Tests for the framers: chunking, bounds, resynchronisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.framing import DelimiterFramer, FrameTooLong, LengthPrefixFramer, MarkerFramer


def test_delimiter_keeps_or_strips_the_delimiter() -> None:
    assert DelimiterFramer(b"\r\n").feed(b"a\r\nb\r\nc") == [b"a\r\n", b"b\r\n"]
    framer = DelimiterFramer(b";", keep_delimiter=False)
    assert framer.feed(b"FA;MD") == [b"FA"]
    assert framer.feed(b"2;") == [b"MD2"]


def test_delimiter_overflow_discards_and_keeps_good_frames() -> None:
    framer = DelimiterFramer(b"\r\n", max_frame=8)
    with pytest.raises(FrameTooLong) as excinfo:
        framer.feed(b"ok\r\n" + b"x" * 20)
    assert str(excinfo.value) == ("frame longer than 8 bytes without b'\\r\\n'; discarded 19 bytes")
    assert excinfo.value.frames == [b"ok\r\n"]
    # the rest of the oversized frame is skipped silently, then framing resumes
    assert framer.feed(b"yyy\r\nE13\r\n") == [b"E13\r\n"]
    assert framer.discarded == 1
    assert framer.buffered == 0


def test_delimiter_frame_too_long_within_one_chunk() -> None:
    framer = DelimiterFramer(b";", max_frame=4)
    with pytest.raises(FrameTooLong, match="frame of 6 bytes exceeds max_frame 4") as excinfo:
        framer.feed(b"ABCDEF;ID;")
    assert excinfo.value.frames == [b"ID;"]


def test_length_prefix() -> None:
    framer = LengthPrefixFramer(2)
    assert framer.feed(b"\x00\x03ab") == []
    assert framer.feed(b"c\x00\x01z") == [b"abc", b"z"]
    framer = LengthPrefixFramer(1, include_header=True)
    assert framer.feed(b"\x02hi") == [b"\x02hi"]


def test_length_prefix_overflow_skips_the_announced_bytes() -> None:
    framer = LengthPrefixFramer(1, max_frame=4)
    with pytest.raises(FrameTooLong, match="length prefix 6 exceeds max_frame 4"):
        framer.feed(b"\x06abc")
    assert framer.feed(b"def\x01!") == [b"!"]


def test_marker_drops_noise_between_frames() -> None:
    framer = MarkerFramer(b"\xfe\xfe", b"\xfd")
    civ = b"\xfe\xfe\x94\xe0\x03\xfd"
    assert framer.feed(b"noise\xfe") == []
    assert framer.feed(civ[1:] + b"junk" + civ) == [civ, civ]


def test_marker_overflow_resyncs_at_next_start() -> None:
    framer = MarkerFramer(b"<", b">", max_frame=5)
    with pytest.raises(FrameTooLong, match="frame longer than 5 bytes without end marker"):
        framer.feed(b"<abcdefgh")
    assert framer.feed(b"<ok>") == [b"<ok>"]
    # a frame cut short by a new start marker loses its head, not the next frame
    assert framer.feed(b"<ab<cd>") == [b"<cd>"]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_frame must be positive, got 0"):
        DelimiterFramer(b";", max_frame=0)
    with pytest.raises(ValueError, match="delimiter must not be empty"):
        DelimiterFramer(b"")
    with pytest.raises(ValueError, match="header_size must be 1, 2 or 4, got 3"):
        LengthPrefixFramer(3)


frames_strategy = st.lists(st.binary(max_size=20).map(lambda b: b.replace(b";", b"")), max_size=10)


@given(frames_strategy, st.lists(st.integers(min_value=1, max_value=30), max_size=20))
def test_delimiter_chunking_is_irrelevant(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(f + b";" for f in frames)
    framer = DelimiterFramer(b";", max_frame=64)
    out: list[bytes] = []
    position = 0
    for cut in cuts:
        out += framer.feed(stream[position : position + cut])
        position += cut
    out += framer.feed(stream[position:])
    assert out == [f + b";" for f in frames]


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=16))
def test_any_bytes_only_raise_frame_too_long(data: bytes, max_frame: int) -> None:
    for framer in (
        DelimiterFramer(b"\r\n", max_frame),
        LengthPrefixFramer(1, max_frame),
        MarkerFramer(b"\xfe\xfe", b"\xfd", max_frame),
    ):
        try:
            frames = framer.feed(data)
        except FrameTooLong as err:
            frames = err.frames
        assert all(len(f) <= max_frame + 2 for f in frames)
        assert framer.buffered <= max_frame + 2 or isinstance(framer, LengthPrefixFramer)
