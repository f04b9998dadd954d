"""RTP, RTCP and RFC 4733 wire formats: golden bytes, precise errors, fuzzing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media import rtcp
from media.dtmf import DtmfReceiver, DtmfSender, TelephoneEvent
from media.errors import RtpParseError
from media.rtp import RtpExtension, RtpPacket, build_packet, is_rtcp, parse_header

DATA = Path(__file__).parent / "data"
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def capture(name: str) -> bytes:
    lines = (line.split("#", 1)[0] for line in (DATA / name).read_text().splitlines())
    return bytes.fromhex(" ".join(lines))


# -- RTP ---------------------------------------------------------------------------------------


def test_basic_packet_golden() -> None:
    data = capture("rtp_pcmu_marker.hex")
    packet = RtpPacket.parse(data)
    assert (packet.payload_type, packet.marker, packet.sequence) == (0, True, 0x1234)
    assert (packet.timestamp, packet.ssrc) == (1000, 0xDEADBEEF)
    assert packet.payload == b"\xff\xff\x7f\x7f"
    assert packet.csrc == () and packet.extension is None and packet.padding == 0
    assert bytes(packet) == data
    assert build_packet(0, 0x1234, 1000, 0xDEADBEEF, b"\xff\xff\x7f\x7f", True) == data


def test_csrc_extension_padding_golden() -> None:
    data = capture("rtp_csrc_ext_padding.hex")
    packet = RtpPacket.parse(data)
    assert packet.payload_type == 8 and not packet.marker
    assert (packet.sequence, packet.timestamp, packet.ssrc) == (0xFFFF, 0xFFFFFFF0, 0x01020304)
    assert packet.csrc == (0x0A0B0C0D, 0x11121314)
    assert packet.extension == RtpExtension(0xBEDE, bytes.fromhex("10aa0000"))
    assert packet.payload == b"\xd5\xd5\xd5"
    assert packet.padding == 3
    assert bytes(packet) == data
    header = parse_header(data)
    assert data[header.payload_start : header.payload_end] == b"\xd5\xd5\xd5"


MALFORMED_RTP = [
    ("80 00 00", "RTP packet too short: 3 bytes, the fixed header needs 12"),
    ("40 00 00 01 00 00 00 00 00 00 00 01", "RTP version 1, expected 2"),
    ("00 00 00 01 00 00 00 00 00 00 00 01", "RTP version 0, expected 2"),
    (
        "8f 00 00 01 00 00 00 00 00 00 00 01",
        "CSRC list of 15 entries runs past the end of a 12-byte packet",
    ),
    ("90 00 00 01 00 00 00 00 00 00 00 01", "header extension at byte 12 runs past the end (12)"),
    (
        "90 00 00 01 00 00 00 00 00 00 00 01 be de 00 02 00 00 00 00",
        "header extension of 2 words runs past the end of a 20-byte packet",
    ),
    ("a0 00 00 01 00 00 00 00 00 00 00 01 ff 00", "padding bit set but the padding count is 0"),
    (
        "a0 00 00 01 00 00 00 00 00 00 00 01 ff c8",
        "padding count 200 exceeds the 2 bytes after the header",
    ),
    ("80 c8 00 06 00 00 00 00 00 00 00 01", "RTCP packet type 200 where RTP was expected"),
]


@pytest.mark.parametrize(("hexdata", "reason"), MALFORMED_RTP)
def test_malformed_rtp_precise_error(hexdata: str, reason: str) -> None:
    with pytest.raises(RtpParseError) as caught:
        RtpPacket.parse(bytes.fromhex(hexdata))
    assert caught.value.reason == reason


def test_rtcp_mux_demultiplexing() -> None:
    assert is_rtcp(capture("rtcp_sr_sdes.hex"))
    assert not is_rtcp(capture("rtp_pcmu_marker.hex"))
    assert not is_rtcp(b"\x80")


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=40),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpExtension,
        st.integers(0, 0xFFFF),
        st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4]),
    ),
    padding=st.integers(0, 255),
)


@FUZZ
@given(packets)
def test_build_parse_roundtrip(packet: RtpPacket) -> None:
    if packet.marker and 64 <= packet.payload_type <= 95:
        return  # marker + PT 64..95 reads as RTCP 192..223; RFC 5761 forbids these types
    assert RtpPacket.parse(bytes(packet)) == packet


@FUZZ
@given(st.binary(max_size=80))
def test_rtp_parser_raises_only_its_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError as err:
        assert err.reason
        return
    assert RtpPacket.parse(bytes(packet)) == packet


# -- RTCP --------------------------------------------------------------------------------------


def test_sender_report_and_sdes_golden() -> None:
    data = capture("rtcp_sr_sdes.hex")
    sr, sdes = rtcp.parse_compound(data)
    assert isinstance(sr, rtcp.SenderReport) and isinstance(sdes, rtcp.SourceDescription)
    assert sr.ssrc == 0x11223344 and sr.ntp_timestamp == 0xE6A0B1C280000000
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (65536, 100, 16000)
    (block,) = sr.reports
    assert block == rtcp.ReportBlock(0x55667788, 64, 5, 65541, 32, 0xA0B1C280, 65536)
    assert sdes.chunks[0].ssrc == 0x11223344 and sdes.chunks[0].cname == "a@b.c"
    assert rtcp.build_compound([sr, sdes]) == data


def test_receiver_report_and_bye_golden() -> None:
    data = capture("rtcp_rr_bye.hex")
    rr, bye = rtcp.parse_compound(data)
    assert rr == rtcp.ReceiverReport(0x99AABBCC, ())
    assert bye == rtcp.Bye((0x99AABBCC,), "gone")
    assert rtcp.build_compound([rr, bye]) == data


def test_negative_cumulative_loss_roundtrip() -> None:
    block = rtcp.ReportBlock(1, 0, -3, 10, 0)
    assert rtcp.ReportBlock.unpack(block.pack(), 0).cumulative_lost == -3


MALFORMED_RTCP = [
    ("81 c8", "RTCP packet too short: 2 bytes, the header needs 4"),
    ("41 c8 00 00", "RTCP version 1, expected 2"),
    ("80 10 00 00", "RTCP packet type 16 outside 192..223"),
    ("80 c9 00 05 00 00 00 01", "RTCP length of 5 words runs past the end of a 8-byte packet"),
    ("80 c8 00 01 00 00 00 01", "RTCP SR body of 4 bytes, sender info needs 24"),
    ("81 c9 00 01 00 00 00 01", "RTCP RR claims 1 report blocks but has room for fewer"),
    ("81 ca 00 01 00 00 00 01", "RTCP SDES item list is not terminated"),
    ("81 ca 00 02 00 00 00 01 01 09 61 62", "RTCP SDES item 1 runs past the end of the packet"),
    ("82 cb 00 01 00 00 00 01", "RTCP BYE claims 2 sources but has room for fewer"),
    ("81 cb 00 02 00 00 00 01 09 61 62 63", "RTCP BYE reason runs past the end of the packet"),
    ("a0 c9 00 01 00 00 00 00", "RTCP padding count is 0 or larger than the packet"),
    ("80 c9 00 01 00 00 00 01 80", "1 trailing bytes after the last RTCP packet"),
]


@pytest.mark.parametrize(("hexdata", "reason"), MALFORMED_RTCP)
def test_malformed_rtcp_precise_error(hexdata: str, reason: str) -> None:
    with pytest.raises(RtpParseError) as caught:
        rtcp.parse_compound(bytes.fromhex(hexdata))
    assert caught.value.reason == reason


@FUZZ
@given(st.binary(max_size=120))
def test_rtcp_parser_raises_only_its_error(data: bytes) -> None:
    try:
        rtcp.parse_compound(data)
    except RtpParseError as err:
        assert err.reason


# -- RFC 4733 telephone-events ---------------------------------------------------------------


def test_telephone_event_golden() -> None:
    data = capture("rtp_telephone_event.hex")
    packet = RtpPacket.parse(data)
    event = TelephoneEvent.parse(packet.payload)
    assert event == TelephoneEvent(event=5, end=True, volume=10, duration=800)
    assert bytes(event) == packet.payload
    with pytest.raises(RtpParseError, match="telephone-event payload of 3 bytes, needs 4"):
        TelephoneEvent.parse(b"\x05\x8a\x03")


def test_receiver_reports_each_event_once_despite_retransmissions() -> None:
    receiver = DtmfReceiver(8000)
    notices = []
    # digit 1 at ts 1000: start, updates, then the end packet three times (RFC 4733 2.5.1.4)
    for duration, end in [
        (160, False),
        (320, False),
        (480, False),
        (640, True),
        (640, True),
        (640, True),
    ]:
        notices += receiver.feed(1000, bytes(TelephoneEvent(1, end, 10, duration)), 0.0)
    # digit # at ts 3000: its end packets are all lost; the next event ends it
    notices += receiver.feed(3000, bytes(TelephoneEvent(11, False, 10, 160)), 0.1)
    notices += receiver.feed(5000, bytes(TelephoneEvent(4, True, 10, 800)), 0.2)
    assert [(n.digit, n.ended, n.duration_ms) for n in notices] == [
        ("1", False, 0),
        ("1", True, 80),
        ("#", False, 0),
        ("#", True, 20),
        ("4", False, 0),
        ("4", True, 100),
    ]
    assert receiver.expire(10.0) is None
    assert receiver.events == 3


def test_receiver_expires_an_event_that_never_ends() -> None:
    receiver = DtmfReceiver(8000, timeout=0.5)
    receiver.feed(1, bytes(TelephoneEvent(9, False, 10, 160)), 1.0)
    assert receiver.expire(1.2) is None
    notice = receiver.expire(1.6)
    assert notice is not None and notice.digit == "9" and notice.ended


def test_sender_packet_plan() -> None:
    sender = DtmfSender(8000, 160)
    sender.queue("7", duration_ms=100, gap_ms=40)
    plan = []
    while sender.active:
        packet = sender.next()
        plan.append(
            None if packet is None else (TelephoneEvent.parse(packet.payload), packet.marker)
        )
    events = [p for p in plan if p is not None]
    assert events[0] == (TelephoneEvent(7, False, 10, 160), True)
    assert [e.duration for e, _ in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e, _ in events] == [False] * 4 + [True] * 3
    assert plan[len(events) :] == [None, None]  # the inter-digit gap sends audio
    with pytest.raises(ValueError, match="'x' is not a DTMF digit"):
        sender.queue("1x")
