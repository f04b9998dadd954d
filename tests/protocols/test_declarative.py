"""The declarative protocol engine: checksums, templates, reply patterns, framing, validation."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.drivers.declarative import profile_path, shipped_profiles, vocabulary
from protocols.declarative import CHECKSUMS, FixedLengthFramer, Profile, TemplateError
from protocols.declarative_profile import ProfileError, load_profile

DATA = Path(__file__).parent / "data" / "splicer_hex"
VOCABULARY = {
    "recall_layout": frozenset({"layout"}),
    "close_window": frozenset({"window"}),
    "set_source": frozenset({"window", "source"}),
}


def shipped(name: str) -> Profile:
    return load_profile(profile_path(name).read_text(), name, vocabulary=vocabulary())


def profile(
    text: str, constants: dict[str, Any] | None = None, maps: dict[str, Any] | None = None
) -> Profile:
    return load_profile(text, "test.yaml", vocabulary=VOCABULARY, constants=constants, maps=maps)


def problems(
    text: str, constants: dict[str, Any] | None = None, maps: dict[str, Any] | None = None
) -> list[str]:
    with pytest.raises(ProfileError) as excinfo:
        profile(text, constants, maps)
    assert str(excinfo.value).startswith("test.yaml: ")
    return excinfo.value.problems


# --- checksums --------------------------------------------------------------------------------

CHECK = b"123456789"  # the catalogue's check string


@pytest.mark.parametrize(
    ("kind", "value"),
    [("sum8", 0xDD), ("xor8", 0x31), ("crc16-modbus", 0x4B37), ("crc16-ccitt", 0x29B1)],
)
def test_checksums_match_the_catalogue_check_values(kind: str, value: int) -> None:
    assert CHECKSUMS[kind].compute(CHECK) == value


def test_modbus_crc_goes_low_byte_first_on_the_wire() -> None:
    text = """
profile: modbus-like
encoding: hex
framing: {kind: fixed, length: 8}
checksum: {kind: crc16-modbus}
commands:
  recall_layout: {send: "01 03 00 00 00 {layout:u8} {checksum}"}
"""
    # "read 10 holding registers from 0" as every Modbus RTU guide prints it
    frame = profile(text).request(profile(text).commands["recall_layout"][0], {"layout": 10})
    assert frame == bytes.fromhex("01 03 00 00 00 0A C5 CD")


# --- templates --------------------------------------------------------------------------------


def test_hex_frames_of_the_shipped_splicer_profile_are_the_golden_bytes() -> None:
    splicer = shipped("splicer-hex")
    recall = splicer.commands["recall_layout"][0]
    assert splicer.request(recall, {"layout": 3}) == (DATA / "recall_scene_3.bin").read_bytes()
    opened = splicer.commands["open_window"][0]
    values = {"window": 1, "source": 5, "x": 0, "y": 0, "w": 1920, "h": 1080}
    assert splicer.request(opened, values) == (DATA / "open_window_1.bin").read_bytes()
    with pytest.raises(TemplateError, match=r"'layout'=300 does not fit u8 \(0..255\)"):
        splicer.request(recall, {"layout": 300})
    with pytest.raises(TemplateError, match="'layout' must be a number, got 'night'"):
        splicer.request(recall, {"layout": "night"})


def test_ascii_frames_of_the_shipped_lcd_profile() -> None:
    lcd = shipped("lcd-wall-ascii")
    assert lcd.request(lcd.commands["recall_layout"][0], {"layout": 3}) == b"<SCENE,03>\r\n"
    values = {"window": 1, "source": 5, "x": 0, "y": 1080, "w": 1920, "h": 1080}
    frame = lcd.request(lcd.commands["open_window"][0], values)
    assert frame == b"<WINOPEN,01,05,0000,1080,1920,1080>\r\n"
    with pytest.raises(TemplateError, match=re.escape("'x'=12345 does not fit {x:04d}")):
        lcd.request(lcd.commands["move_window"][0], {**values, "x": 12345})


TEXT_PROFILE = """
profile: text
encoding: ascii
charset: gbk
framing: {kind: delimiter, delimiter: "\\r"}
checksum: {kind: xor8, from: 1}
commands:
  recall_layout:
    send: "#{{{layout:03X}}}{checksum}"
    reply: '^#OK(?P<layout>[0-9A-F]{3})(?P<checksum>[0-9A-F]{2})$'
    convert: {layout: hex}
  set_source:
    send: "WIN{window:d} {source:s}"
"""


def test_text_templates_with_formats_braces_charset_and_checksum() -> None:
    text = profile(TEXT_PROFILE)
    frame = text.request(text.commands["recall_layout"][0], {"layout": 26})
    body = b"{01A}"
    xor = 0
    for byte in body:
        xor ^= byte
    assert frame == b"#" + body + f"{xor:02X}".encode() + b"\r"
    # a name in the device's own character set
    named = text.request(text.commands["set_source"][0], {"window": 2, "source": "会商"})
    assert named == b"WIN2 " + "会商".encode("gbk") + b"\r"
    with pytest.raises(TemplateError, match="cannot be written in hex"):
        text.request(text.commands["recall_layout"][0], {"layout": -1})


def test_text_reply_checksum_and_conversion() -> None:
    text = profile(TEXT_PROFILE)
    reply = text.commands["recall_layout"][0].reply
    assert reply is not None
    good = b"#OK01A" + f"{ord('O') ^ ord('K') ^ ord('0') ^ ord('1') ^ ord('A'):02X}".encode()
    assert reply.match(good, {"layout": 26}) == {"layout": 26}
    bad = good[:-1] + (b"0" if good[-1:] != b"0" else b"1")
    assert reply.match(bad) is None
    assert reply.mismatch(bad).startswith("checksum ")
    assert reply.match(good, {"layout": 27}) is None
    assert reply.mismatch(good, {"layout": 27}) == "layout=26, but the request had 27"


# --- reply patterns ---------------------------------------------------------------------------


def test_hex_reply_patterns_capture_check_and_explain() -> None:
    splicer = shipped("splicer-hex")
    reply = splicer.commands["recall_layout"][0].reply
    assert reply is not None
    golden = (DATA / "recall_scene_3_reply.bin").read_bytes()
    assert reply.match(golden, splicer.known({"layout": 3})) == {"address": 1, "layout": 3}
    # a reply to another scene, or from another address, is not this command's reply
    assert reply.match(golden, splicer.known({"layout": 4})) is None
    assert reply.match(golden, {"address": 2, "layout": 3}) is None
    bad = (DATA / "bad_checksum.bin").read_bytes()
    assert reply.match(bad) is None
    assert reply.mismatch(bad) == "checksum 86 but the frame sums to 85"
    assert reply.mismatch(golden[:14]) == "14 bytes, the pattern has 15"
    assert reply.mismatch(DATA.joinpath("open_window_1.bin").read_bytes()).startswith(
        "bytes 3.. are 02, expected 81"
    )


def test_query_patterns_and_error_rules_of_the_splicer() -> None:
    splicer = shipped("splicer-hex")
    windows = splicer.queries[1]
    assert [v["window"] for v in windows.requests()] == [1, 2, 3, 4]
    assert windows.step.reply is not None
    status = (DATA / "window_2_status.bin").read_bytes()
    captures = windows.step.reply.match(status, splicer.known({"window": 2}))
    assert captures == {
        "address": 1,
        "window": 2,
        "source": 7,
        "x": 1920,
        "y": 0,
        "w": 1920,
        "h": 1080,
    }
    error = (DATA / "error_scene_empty.bin").read_bytes()
    assert splicer.error_in(error, splicer.known({})) == ("0x04", "scene empty")
    assert splicer.error_in(status, splicer.known({})) is None


def test_ascii_error_rules_of_the_lcd_profile() -> None:
    lcd = shipped("lcd-wall-ascii")
    assert lcd.error_in(b"<ERR,03>", {}) == ("ERR03", "scene not stored")
    assert lcd.error_in(b"<ERR,77>", {}) == ("ERR77", "the device refused the command")
    assert lcd.error_in(b"<SCENE,03,OK>", {}) is None
    assert lcd.error_in(b"<ERR,\xff3>", {}) is None  # not ASCII: garbled, not an error


@given(st.binary(max_size=64))
def test_patterns_never_raise_on_any_bytes(data: bytes) -> None:
    for name in shipped_profiles():
        proto = shipped(name)
        for steps in proto.commands.values():
            for step in steps:
                if step.reply is not None:
                    step.reply.match(data, proto.known({}))
                    step.reply.mismatch(data)
        proto.error_in(data, proto.known({}))
        with contextlib.suppress(ValueError):
            proto.framer().feed(data)


# --- framing ----------------------------------------------------------------------------------


def test_fixed_length_framer_resynchronises_on_the_header() -> None:
    framer = FixedLengthFramer(5, b"\xaa\xbb")
    assert framer.feed(b"\x00\x13\xaa") == []  # noise, then half a header
    assert framer.feed(b"\xbb\x01\x02\x03\xaa\xbb\x04") == [b"\xaa\xbb\x01\x02\x03"]
    assert framer.feed(b"\x05\x06") == [b"\xaa\xbb\x04\x05\x06"]
    assert framer.discarded == 1
    plain = FixedLengthFramer(2)
    assert plain.feed(b"abcde") == [b"ab", b"cd"]
    assert plain.feed(b"f") == [b"ef"]


def test_a_truncated_frame_does_not_swallow_the_next_one() -> None:
    splicer = shipped("splicer-hex")
    framer = splicer.framer()
    good = (DATA / "recall_scene_3_reply.bin").read_bytes()
    # half a frame (the link hiccuped), then a whole one: the half is dropped, not merged
    assert framer.feed(good[:6] + good) == [good]
    assert framer.feed(good[:9]) == []
    assert framer.feed(good[9:] + good) == [good, good]


def test_profiles_build_their_framers() -> None:
    lcd = shipped("lcd-wall-ascii").framer()
    assert lcd.feed(b"<SCENE,01,OK>\r\n<SCE") == [b"<SCENE,01,OK>"]
    marker = profile(
        """
profile: m
encoding: hex
framing: {kind: marker, start: "02", end: "03"}
commands: {recall_layout: {send: "02 {layout:u8} 03"}}
"""
    ).framer()
    assert marker.feed(b"\x99\x02\x01\x03\x02") == [b"\x02\x01\x03"]


# --- validation -------------------------------------------------------------------------------

GOOD = """\
profile: good
encoding: hex
framing: {kind: fixed, length: 4}
checksum: {kind: sum8}
constants: {address: 1}
commands:
  recall_layout:
    send: "{address:u8} 01 {layout:u8} {checksum}"
    reply: "{address:u8} 81 {layout:u8} {checksum}"
"""


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("framing: {kind: fixed, length: 4}", "framing: {kind: fixed, length: 4, tail: 1}"),
            ["framing.tail: unknown key (allowed: kind, length, header), line 3"],
        ),
        (
            ("framing: {kind: fixed, length: 4}", "framing: {kind: fixd}"),
            [
                "framing: unknown kind 'fixd' (legal kinds: delimiter, fixed, marker,"
                " length_prefix), line 3"
            ],
        ),
        (
            ("kind: sum8", "kind: crc17"),
            [
                "checksum.kind: must be one of 'none', 'sum8', 'xor8', 'crc16-modbus' or"
                " 'crc16-ccitt', got 'crc17', line 4"
            ],
        ),
        (
            ('{layout:u8} {checksum}"\n    reply', '{layuot:u8} {checksum}"\n    reply'),
            [
                "commands.recall_layout.send: unknown field 'layuot' (fields here: address,"
                " layout), line 8"
            ],
        ),
        (
            ('send: "{address:u8} 01', 'send: "{address:u8} 0G'),
            [
                "commands.recall_layout.send: bad token '0G' at column 14 (expected hex bytes"
                " such as AA, a field {name:u8}, {checksum}), line 8"
            ],
        ),
        (
            ('send: "{address:u8} 01', 'send: "{address:u7} 01'),
            [
                "commands.recall_layout.send: bad format 'u7' for 'address' (legal: u8, hex1,"
                " u16be, u16le, hex2, u32be, u32le), line 8"
            ],
        ),
        (
            ("81 {layout:u8}", "81 {layout:u16be}"),
            ["commands.recall_layout.reply: matches 5 bytes, but framing.length is 4, line 9"],
        ),
        (
            ("checksum: {kind: sum8}\n", ""),
            [
                "commands.recall_layout.send: uses {checksum} but checksum.kind is none, line 7",
                "commands.recall_layout.reply: uses {checksum} but checksum.kind is none, line 8",
            ],
        ),
        (
            ("  recall_layout:", "  reboot:"),
            [
                "commands.reboot: unknown command 'reboot' (legal: close_window, recall_layout,"
                " set_source), line 7"
            ],
        ),
        (
            ("constants: {address: 1}", "constants: {address: 1, 2nd: 3}"),
            ["constants.2nd: must be a name of letters, digits and '_', line 5"],
        ),
        (
            ("encoding: hex", "encoding: binary"),
            ["encoding: must be one of 'ascii' or 'hex', got 'binary', line 2"],
        ),
        (("profile: good\n", ""), ["profile: is required, line 1"]),
        (
            ("commands:", "commands: [1]\nx:"),
            [
                "commands: must be a mapping, line 6",
                "x: unknown key (allowed: profile,"
                " description, encoding, charset, framing, terminator, checksum, constants, maps,"
                " absent, state, commands, queries, notifications, errors), line 7",
            ],
        ),
        (("length: 4}", "length: 4"), ["YAML syntax: expected ',' or '}', but got ':', line 4"]),
    ],
)
def test_bad_profiles_report_path_and_line(edit: tuple[str, str], expected: list[str]) -> None:
    old, new = edit
    assert old in GOOD
    assert problems(GOOD.replace(old, new, 1)) == expected


ASCII = """\
profile: text
encoding: ascii
framing: {kind: delimiter, delimiter: "\\r"}
commands:
  recall_layout:
    send: "<{layout:02d}>"
    reply: '^<(?P<layout>\\d+)>$'
"""


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("reply: '^<(?P<layout>\\d+)>$'", "reply: '^<(?P<layout\\d+)>$'"),
            [
                "commands.recall_layout.reply: not a valid regular expression: bad character in"
                " group name 'layout\\\\d+)' at position 6, line 7"
            ],
        ),
        (
            ("{layout:02d}", "{layout:02q}"),
            [
                "commands.recall_layout.send: bad format '02q' for 'layout' (use d, 02d, x, 04X"
                " or s), line 6"
            ],
        ),
        (
            ("<{layout:02d}>", "<{layout:02d}>}"),
            ["commands.recall_layout.send: unbalanced '}' at column 15 (write }}), line 6"],
        ),
        (
            ("$'\n", "$'\n    convert: {count: hex}\n    state: {level: lvl}\n"),
            [
                "commands.recall_layout.convert.count: '^<(?P<layout>\\\\d+)>$' captures no"
                " 'count', line 8",
                "commands.recall_layout.state.level: no capture 'lvl' (layout), line 9",
            ],
        ),
        (
            (
                'framing: {kind: delimiter, delimiter: "\\r"}',
                "framing: {kind: delimiter}\nterminator: 03",
            ),
            [
                "framing.delimiter: is required, line 3",
                "terminator: must be a string (quote it: hex bytes such as '03' are numbers in"
                " YAML), line 4",
            ],
        ),
        (
            ('    send: "<{layout:02d}>"\n', '    send: "<{layout:02d}>"\n    steps: []\n'),
            ["commands.recall_layout: give either 'steps' or send/reply, not both, line 5"],
        ),
        (
            (
                "commands:",
                "queries:\n  - each: {window: [1, windows]}\n    send: '{window}'\n"
                "errors:\n  - match: 'ERR'\ncommands:",
            ),
            [
                "queries[0].each.window: 'windows' is not a number nor a numeric constant, line 5",
                "errors[0]: needs 'code', or a capture named 'code' in 'match', line 8",
            ],
        ),
    ],
)
def test_bad_ascii_profiles(edit: tuple[str, str], expected: list[str]) -> None:
    old, new = edit
    assert old in ASCII
    assert problems(ASCII.replace(old, new, 1)) == expected


def test_site_overrides_are_checked_against_the_profile() -> None:
    assert problems(GOOD, constants={"adress": 2}) == [
        "options.constants.adress: not a constant of profile 'good' (constants: address)"
    ]
    assert problems(GOOD, maps={"layout": {"day": "one"}}) == [
        "options.maps.layout: must map names to device numbers, got {'day': 'one'}"
    ]
    overridden = profile(GOOD, constants={"address": 7}, maps={"layout": {"night": 9}})
    frame = overridden.request(overridden.commands["recall_layout"][0], {"layout": 9})
    assert frame == bytes([7, 1, 9, (7 + 1 + 9) & 0xFF])
    assert overridden.maps["layout"] == {"night": 9}


def test_shipped_profiles_are_valid_and_documented() -> None:
    assert shipped_profiles() == ["lcd-wall-ascii", "splicer-hex"]
    for name in shipped_profiles():
        proto = shipped(name)
        assert proto.name == name
        assert profile_path(name).read_text().startswith("# ")  # the protocol in comments
        assert {"recall_layout", "open_window", "close_window"} <= set(proto.commands)
        assert proto.queries and proto.errors and proto.notifications
