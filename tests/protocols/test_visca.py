"""Golden-byte and fuzz tests for VISCA (serial and over IP), examples from Sony's manuals."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import visca
from protocols.framing import FramingError

DATA = Path(__file__).parent / "data" / "visca"


def capture(name: str) -> bytes:
    return (DATA / f"{name}.bin").read_bytes()


PACKETS = [
    ("cmd_drive_up_left", visca.pan_tilt_drive(1, -1, 1, 0x10, 0x0C)),
    ("cmd_drive_stop", visca.pan_tilt_drive(1, 0, 0, 1, 1)),
    ("cmd_home", visca.home(1)),
    ("cmd_zoom_tele", visca.zoom(1, visca.ZoomAction.TELE)),
    ("cmd_zoom_stop", visca.zoom(1, visca.ZoomAction.STOP)),
    ("cmd_memory_set_2", visca.memory(1, visca.MemoryAction.SET, 2)),
    ("cmd_memory_recall_5", visca.memory(1, visca.MemoryAction.RECALL, 5)),
    ("cmd_power_on", visca.power(1, True)),
    ("inq_power", visca.inquiry(1, visca.POWER_INQUIRY)),
    ("inq_pan_tilt", visca.inquiry(1, visca.PAN_TILT_INQUIRY)),
    ("inq_zoom", visca.inquiry(1, visca.ZOOM_INQUIRY)),
]


@pytest.mark.parametrize(("name", "packet"), PACKETS, ids=[p[0] for p in PACKETS])
def test_packets_are_the_documented_bytes(name: str, packet: visca.Packet) -> None:
    data = capture(name)
    assert bytes(packet) == data
    assert visca.Packet.parse(data) == packet


REPLIES = [
    ("ack_1", visca.Ack(1, 1)),
    ("completion_1", visca.Completion(1, 1)),
    ("answer_power_on", visca.Completion(1, 0, b"\x02")),
    ("answer_pan_tilt", visca.Completion(1, 0, bytes.fromhex("0f 0f 0e 0c 00 01 02 03"))),
    ("answer_zoom", visca.Completion(1, 0, bytes.fromhex("04 00 00 00"))),
    ("error_syntax", visca.ViscaError(1, 0, 0x02)),
    ("error_buffer_full", visca.ViscaError(1, 0, 0x03)),
    ("error_canceled", visca.ViscaError(1, 1, 0x04)),
    ("error_no_socket", visca.ViscaError(1, 2, 0x05)),
    ("error_not_executable", visca.ViscaError(1, 1, 0x41)),
]


@pytest.mark.parametrize(("name", "expected"), REPLIES, ids=[r[0] for r in REPLIES])
def test_replies_round_trip(name: str, expected: visca.Reply) -> None:
    data = capture(name)
    assert visca.parse_reply(data) == expected
    assert bytes(expected) == data


def test_error_meanings_and_codes() -> None:
    meanings = {
        "error_syntax": ("02", "syntax error"),
        "error_buffer_full": ("03", "command buffer full"),
        "error_canceled": ("04", "command canceled"),
        "error_no_socket": ("05", "no socket (to be canceled)"),
        "error_not_executable": ("41", "command not executable"),
    }
    for name, (code, reason) in meanings.items():
        error = visca.parse_reply(capture(name))
        assert isinstance(error, visca.ViscaError)
        assert (error.device_code, error.reason) == (code, reason)


def test_inquiry_answers() -> None:
    pan_tilt = visca.parse_reply(capture("answer_pan_tilt"))
    assert isinstance(pan_tilt, visca.Completion)
    assert visca.parse_pan_tilt(pan_tilt.data) == (-20, 0x0123)
    assert visca.parse_zoom(bytes.fromhex("04 00 00 00")) == 0x4000
    assert visca.parse_power(b"\x02") is True and visca.parse_power(b"\x03") is False
    assert visca.nibbles(-20, 4) == bytes.fromhex("0f 0f 0e 0c")
    assert visca.parse_reply(bytes.fromhex("88 30 02 ff")) == visca.Notice(
        bytes.fromhex("88 30 02 ff")
    )


def test_visca_over_ip_messages() -> None:
    assert bytes(visca.IpMessage.reset()) == capture("ip_reset")
    reset_reply = visca.IpMessage.parse(capture("ip_reset_reply"))
    assert (reset_reply.payload_type, reset_reply.payload) == (
        visca.PayloadType.CONTROL_REPLY,
        visca.CONTROL_RESET,
    )
    assert bytes(visca.IpMessage.wrap(visca.power(1, True), 5)) == capture("ip_power_on")
    # over IP the camera address is always 1, and inquiries have their own payload type
    assert bytes(visca.IpMessage.wrap(visca.inquiry(3, visca.ZOOM_INQUIRY), 6)) == capture(
        "ip_inq_zoom"
    )
    ack = visca.IpMessage.parse(capture("ip_reply_ack"))
    assert (ack.payload_type, ack.sequence) == (visca.PayloadType.REPLY, 5)
    assert visca.parse_reply(ack.payload) == visca.Ack(1, 1)
    error = visca.IpMessage.parse(capture("ip_sequence_error"))
    assert visca.CONTROL_ERRORS[error.payload] == "abnormality in the sequence number"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: visca.parse_reply(b"\x90\x41"), "VISCA reply must be y0 .. FF (3+ bytes)"),
        (lambda: visca.parse_reply(b"\x91\x41\xff"), "VISCA reply header must be 90..F0 or 88"),
        (lambda: visca.Packet.parse(b"\x71\x01\xff"), "VISCA command header must be 81..88"),
        (lambda: visca.memory(1, visca.MemoryAction.SET, 200), "preset must be 0..127, got 200"),
        (lambda: visca.pan_tilt_drive(1, 2, 0), "pan and tilt must be -1, 0 or 1"),
        (lambda: visca.pan_tilt_drive(1, 1, 0, 0x19), "speeds must be 1..18h / 1..17h"),
        (lambda: visca.Packet(9, b"\x01"), "VISCA address must be 1..7"),
        (lambda: visca.Packet(1, b"\x01\xff"), "VISCA body may not contain FF"),
        (lambda: visca.parse_pan_tilt(b"\x00"), "pan-tilt answer must be 8 nibbles"),
        (lambda: visca.from_nibbles(b"\x10"), "expected nibbles 00-0F"),
        (lambda: visca.IpMessage.parse(capture("ip_reset")[:8]), "datagram too short (8 bytes)"),
        (
            lambda: visca.IpMessage.parse(capture("ip_power_on") + b"\x00"),
            "payload length field says 6, datagram has 7",
        ),
        (
            lambda: visca.IpMessage.parse(b"\x09\x99\x00\x01\x00\x00\x00\x00\x01"),
            "unknown VISCA-over-IP payload type 0999",
        ),
    ],
)
def test_malformed_input_raises_precise_errors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()  # type: ignore[operator]


def test_serial_framer_cuts_at_ff() -> None:
    framer = visca.serial_framer()
    assert framer.feed(bytes.fromhex("90 41 ff 90")) == [bytes.fromhex("90 41 ff")]
    assert framer.feed(bytes.fromhex("51 ff")) == [bytes.fromhex("90 51 ff")]
    assert visca.DatagramFramer().feed(b"\x01\x02") == [b"\x01\x02"]


@given(st.integers(-0x8000, 0x7FFF))
def test_nibbles_round_trip(value: int) -> None:
    assert visca.from_nibbles(visca.nibbles(value, 4), signed=True) == value


@given(st.binary(max_size=40))
def test_parsers_raise_only_value_error(data: bytes) -> None:
    try:
        frames = visca.serial_framer().feed(data)
    except FramingError as err:  # an overlong run without FF: the good frames still come
        frames = err.frames
    for frame in frames:
        with contextlib.suppress(ValueError):
            visca.parse_reply(frame)
    try:
        message = visca.IpMessage.parse(data)
    except ValueError:
        return
    with contextlib.suppress(ValueError):
        visca.parse_reply(message.payload)
