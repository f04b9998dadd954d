"""SDP offer/answer (RFC 3264): codec negotiation, hold directions, re-offers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sip.sdp import (
    Connection,
    Direction,
    Fmtp,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
)


@dataclass(frozen=True)
class Codec:
    """A codec we can run; ``static_pt`` for RFC 3551 static types, else dynamic."""

    name: str
    clock_rate: int
    channels: int = 1
    static_pt: int | None = None
    fmtp: str | None = None

    def matches(self, rtpmap: RtpMap) -> bool:
        return (
            rtpmap.encoding.lower() == self.name.lower()
            and rtpmap.clock_rate == self.clock_rate
            and (rtpmap.channels or 1) == self.channels
        )

    @property
    def is_dtmf(self) -> bool:
        return self.name.lower() == "telephone-event"

    def rtpmap(self, payload_type: int) -> RtpMap:
        channels = self.channels if self.channels != 1 else None
        return RtpMap(payload_type, self.name, self.clock_rate, channels)


PCMU = Codec("PCMU", 8000, static_pt=0)
PCMA = Codec("PCMA", 8000, static_pt=8)
G722 = Codec("G722", 8000, static_pt=9)  # RTP clock 8000 for a 16 kHz codec (RFC 3551)
OPUS = Codec("opus", 48000, channels=2, fmtp="useinbandfec=1")
TELEPHONE_EVENT = Codec("telephone-event", 8000, fmtp="0-16")
H264 = Codec("H264", 90000, fmtp="profile-level-id=42e01f;packetization-mode=1")
DEFAULT_AUDIO_CODECS = (PCMU, PCMA, G722, OPUS, TELEPHONE_EVENT)
_STATIC_RTPMAPS = {c.static_pt: c for c in (PCMU, PCMA, G722)}
_FIRST_DYNAMIC_PT = 96


@dataclass(frozen=True)
class MediaCapabilities:
    """What this side can do: RTP address and ports, codecs in preference order."""

    address: str
    audio_port: int | None
    audio_codecs: tuple[Codec, ...] = DEFAULT_AUDIO_CODECS
    video_port: int | None = None
    video_codecs: tuple[Codec, ...] = (H264,)
    ptime: int | None = 20
    direction: Direction = Direction.SENDRECV
    username: str = "cchub"
    protocol: str = "RTP/AVP"


@dataclass(frozen=True)
class NegotiatedCodec:
    """A codec chosen for a stream, with the payload type both sides use."""

    codec: Codec
    payload_type: int
    fmtp: str | None


def _offered_codec(media: MediaDescription, payload_type: int) -> RtpMap | None:
    rtpmap = media.rtpmap(payload_type)
    if rtpmap is None and payload_type in _STATIC_RTPMAPS:
        return _STATIC_RTPMAPS[payload_type].rtpmap(payload_type)
    return rtpmap


def negotiate(media: MediaDescription, codecs: tuple[Codec, ...]) -> list[NegotiatedCodec]:
    """Codecs common to an offered stream and ``codecs``, in our preference order,
    with the offerer's payload type numbers."""
    chosen: list[NegotiatedCodec] = []
    for codec in codecs:
        for payload_type in media.payload_types:
            rtpmap = _offered_codec(media, payload_type)
            if rtpmap is not None and codec.matches(rtpmap):
                fmtp = media.fmtp(payload_type) if codec.static_pt is None else None
                chosen.append(NegotiatedCodec(codec, payload_type, fmtp or codec.fmtp))
                break
    if all(c.codec.is_dtmf for c in chosen):
        return []
    return chosen


def _section(
    kind: str,
    port: int,
    protocol: str,
    chosen: list[NegotiatedCodec],
    ptime: int | None,
    direction: Direction,
) -> MediaDescription:
    return MediaDescription(
        kind,
        port,
        protocol,
        tuple(str(c.payload_type) for c in chosen),
        rtpmaps=tuple(c.codec.rtpmap(c.payload_type) for c in chosen),
        fmtps=tuple(Fmtp(c.payload_type, c.fmtp) for c in chosen if c.fmtp),
        ptime=ptime if kind == "audio" else None,
        direction=direction,
    )


def _local(caps: MediaCapabilities, kind: str) -> tuple[int | None, tuple[Codec, ...]]:
    if kind == "audio":
        return caps.audio_port, caps.audio_codecs
    if kind == "video":
        return caps.video_port, caps.video_codecs
    return None, ()


def _origin(caps: MediaCapabilities, session_id: int | None) -> Origin:
    connection = Connection.for_address(caps.address)
    sid = session_id if session_id is not None else secrets.randbelow(2**62)
    return Origin(caps.username, sid, 0, caps.address, connection.address_type)


def create_offer(
    caps: MediaCapabilities, *, session_id: int | None = None, video: bool = False
) -> SessionDescription:
    """An initial offer: audio (and video when asked) with all our codecs."""
    media = []
    for kind in ("audio", "video") if video else ("audio",):
        port, codecs = _local(caps, kind)
        if port is None:
            continue
        chosen, next_dynamic = [], _FIRST_DYNAMIC_PT
        for codec in codecs:
            pt = codec.static_pt
            if pt is None:
                pt, next_dynamic = next_dynamic, next_dynamic + 1
            chosen.append(NegotiatedCodec(codec, pt, codec.fmtp))
        media.append(_section(kind, port, caps.protocol, chosen, caps.ptime, caps.direction))
    connection = Connection.for_address(caps.address)
    return SessionDescription(_origin(caps, session_id), tuple(media), connection)


def answer(
    offer: SessionDescription, caps: MediaCapabilities, *, session_id: int | None = None
) -> SessionDescription:
    """The RFC 3264 answer to ``offer``: one ``m=`` line per offered stream, same order;
    a stream with nothing in common (or that we cannot take) is rejected with port 0;
    directions mirror the offer (sendonly -> recvonly, inactive -> inactive)."""
    sections: list[MediaDescription] = []
    for index, offered in enumerate(offer.media):
        port, codecs = _local(caps, offered.media)
        chosen = negotiate(offered, codecs) if port and not offered.rejected else []
        if port is None or not chosen or offered.protocol.upper() != caps.protocol.upper():
            sections.append(
                MediaDescription(offered.media, 0, offered.protocol, offered.formats[:1])
            )
            continue
        wanted = offer.media_direction(index)
        connection = offer.media_connection(index)
        if connection is not None and connection.is_null:
            wanted = Direction.of(wanted.sends, False)  # RFC 2543 hold: it will not receive
        direction = wanted.reversed() & caps.direction
        sections.append(_section(offered.media, port, caps.protocol, chosen, caps.ptime, direction))
    connection = Connection.for_address(caps.address)
    return SessionDescription(_origin(caps, session_id), tuple(sections), connection)


def hold_offer(previous: SessionDescription) -> SessionDescription:
    """Re-offer putting the call on hold (sendonly), with the origin version bumped."""
    return previous.with_direction(Direction.SENDONLY).bump_version()


def resume_offer(previous: SessionDescription) -> SessionDescription:
    """Re-offer taking the call off hold (sendrecv), with the origin version bumped."""
    return previous.with_direction(Direction.SENDRECV).bump_version()


def accepted_codecs(sdp: SessionDescription, index: int = 0) -> list[RtpMap]:
    """The codecs of a (received) answer's stream, first is the one to send with."""
    media = sdp.media[index]
    out = []
    for pt in media.payload_types:
        rtpmap = media.rtpmap(pt) or (
            _STATIC_RTPMAPS[pt].rtpmap(pt) if pt in _STATIC_RTPMAPS else None
        )
        if rtpmap is not None:
            out.append(rtpmap)
    return out
