"""SDP golden tests and RFC 3264 offer/answer: codecs, hold, rejection, re-offers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sip.errors import SipParseError
from sip.offer_answer import (
    G722,
    OPUS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    MediaCapabilities,
    accepted_codecs,
    answer,
    create_offer,
    hold_offer,
    resume_offer,
)
from sip.sdp import Connection, Direction, RtpMap, SessionDescription

DATA = Path(__file__).parent / "data" / "sdp"
CAPS = MediaCapabilities(address="203.0.113.5", audio_port=30000, video_port=30002)


def load(name: str) -> SessionDescription:
    return SessionDescription.parse((DATA / name).read_bytes())


@pytest.mark.parametrize("name", ["offer_audio_video.sdp", "answer_ipv6_recvonly.sdp"])
def test_golden_round_trip(name: str) -> None:
    data = (DATA / name).read_bytes()
    assert bytes(SessionDescription.parse(data)) == data


def test_offer_fields() -> None:
    offer = load("offer_audio_video.sdp")
    assert offer.origin.username == "alice" and offer.origin.version == 2890844526
    assert offer.connection == Connection("192.0.2.10")
    audio, video = offer.media
    assert (audio.media, audio.port, audio.payload_types) == ("audio", 49170, (0, 8, 9, 111, 101))
    assert audio.rtpmap(111) == RtpMap(111, "opus", 48000, 2)
    assert audio.fmtp(101) == "0-16" and audio.ptime == 20
    assert offer.media_direction(0) is Direction.SENDRECV
    assert video.rtpmap(96) == RtpMap(96, "H264", 90000)


def test_ipv6_answer_fields() -> None:
    sdp = load("answer_ipv6_recvonly.sdp")
    assert sdp.connection == Connection("2001:db8::20", "IP6")
    assert sdp.media_direction(0) is Direction.RECVONLY


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("v=1\r\n", "SDP must start with 'v=0'"),
        ("v=0\r\ns=-\r\nt=0 0\r\n", "SDP has no 'o=' line"),
        ("v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 99999 RTP/AVP 0\r\n",
         "bad SDP port '99999'"),
        ("v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
         "SDP media 0 has no connection address"),
        ("v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\nc=IN IP6 1.2.3.4\r\nt=0 0\r\n",
         "bad SDP IPv6 connection address '1.2.3.4'"),
    ],
)  # fmt: skip
def test_sdp_errors(text: str, reason: str) -> None:
    with pytest.raises(SipParseError) as caught:
        SessionDescription.parse(text.encode())
    assert caught.value.reason == reason


def test_answer_negotiates_by_local_preference_keeping_offer_payload_types() -> None:
    offer = load("offer_audio_video.sdp")
    caps = replace(CAPS, audio_codecs=(OPUS, PCMA, TELEPHONE_EVENT))
    result = answer(offer, caps, session_id=7)
    audio, video = result.media
    assert audio.port == 30000 and audio.payload_types == (111, 8, 101)
    assert audio.rtpmap(111) == RtpMap(111, "opus", 48000, 2)
    assert audio.fmtp(111) == "minptime=10;useinbandfec=1"
    assert audio.fmtp(101) == "0-16"
    assert video.port == 30002 and video.payload_types == (96,)
    assert result.connection == Connection("203.0.113.5")
    assert result.origin.session_id == 7 and result.origin.version == 0
    assert accepted_codecs(result)[0].encoding == "opus"
    assert SessionDescription.parse(bytes(result)) == result


def test_answer_maps_dynamic_payload_numbers_from_the_offer() -> None:
    offer = SessionDescription.parse(
        b"v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"m=audio 5004 RTP/AVP 120 9 127\r\na=rtpmap:120 OPUS/48000/2\r\n"
        b"a=rtpmap:127 telephone-event/8000\r\n"
    )
    audio = answer(offer, CAPS).media[0]
    assert audio.payload_types == (9, 120, 127)  # our order: PCMU, PCMA absent, G722, opus, te
    assert audio.rtpmap(9) == G722.rtpmap(9)


def test_no_common_codec_rejects_stream_with_port_zero() -> None:
    offer = SessionDescription.parse(
        b"v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"m=audio 5004 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"m=video 5006 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"
    )
    result = answer(offer, CAPS)
    assert [m.port for m in result.media] == [0, 0]
    assert [m.media for m in result.media] == ["audio", "video"]
    assert SessionDescription.parse(bytes(result)) == result


def test_video_rejected_without_local_video_port() -> None:
    result = answer(load("offer_audio_video.sdp"), replace(CAPS, video_port=None))
    assert [m.port for m in result.media] == [30000, 0]


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        (Direction.SENDONLY, Direction.RECVONLY),
        (Direction.RECVONLY, Direction.SENDONLY),
        (Direction.INACTIVE, Direction.INACTIVE),
        (Direction.SENDRECV, Direction.SENDRECV),
    ],
)
def test_answer_mirrors_hold_direction(offered: Direction, expected: Direction) -> None:
    offer = load("offer_audio_video.sdp").with_direction(offered)
    assert answer(offer, CAPS).media_direction(0) is expected


def test_session_level_direction_and_rfc2543_hold() -> None:
    data = (
        b"v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
        b"a=sendrecv\r\nm=audio 5004 RTP/AVP 0\r\n"
    )
    assert answer(SessionDescription.parse(data), CAPS).media_direction(0) is Direction.RECVONLY
    inactive = data.replace(b"0.0.0.0", b"192.0.2.1").replace(b"sendrecv", b"inactive")
    result = answer(SessionDescription.parse(inactive), CAPS)
    assert result.media_direction(0) is Direction.INACTIVE


def test_offer_and_hold_resume_reoffers() -> None:
    offer = create_offer(CAPS, session_id=42, video=True)
    audio = offer.media[0]
    assert audio.payload_types == (0, 8, 9, 96, 97)
    assert audio.rtpmap(96) == OPUS.rtpmap(96) and audio.rtpmap(0) == PCMU.rtpmap(0)
    assert offer.media[1].payload_types == (96,)
    held = hold_offer(offer)
    assert held.origin.version == 1 and held.origin.session_id == 42
    assert all(held.media_direction(i) is Direction.SENDONLY for i in range(2))
    resumed = resume_offer(held)
    assert resumed.origin.version == 2 and resumed.media_direction(0) is Direction.SENDRECV
    assert SessionDescription.parse(bytes(resumed)) == resumed
    assert answer(held, CAPS).media_direction(0) is Direction.RECVONLY
