"""RTP packets (RFC 3550 section 5): sans-IO parse and build, with CSRC, extension and padding."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from media.errors import RtpParseError

RTP_VERSION = 2
HEADER_SIZE = 12
_HEADER = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")
# RFC 5761 section 4: with rtcp-mux, second bytes 192..223 are RTCP packet types.
_RTCP_TYPES = range(192, 224)


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The fixed header and where the payload lies in the datagram (the receive fast path)."""

    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload_start: int
    payload_end: int


def is_rtcp(data: bytes) -> bool:
    """True when a datagram on a multiplexed port is RTCP rather than RTP (RFC 5761)."""
    return len(data) >= 2 and data[1] in _RTCP_TYPES


def parse_header(data: bytes) -> RtpHeader:
    """Check a datagram's RTP framing and return its header; raises :class:`RtpParseError`."""
    size = len(data)
    if size < HEADER_SIZE:
        raise RtpParseError(f"RTP packet too short: {size} bytes, the fixed header needs 12")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    version = first >> 6
    if version != RTP_VERSION:
        raise RtpParseError(f"RTP version {version}, expected 2")
    if second in _RTCP_TYPES:
        raise RtpParseError(f"RTCP packet type {second} where RTP was expected")
    start = HEADER_SIZE + 4 * (first & 0x0F)
    if start > size:
        raise RtpParseError(
            f"CSRC list of {first & 0x0F} entries runs past the end of a {size}-byte packet"
        )
    if first & 0x10:
        if start + 4 > size:
            raise RtpParseError(f"header extension at byte {start} runs past the end ({size})")
        words = _EXTENSION.unpack_from(data, start)[1]
        start += 4 + 4 * words
        if start > size:
            raise RtpParseError(
                f"header extension of {words} words runs past the end of a {size}-byte packet"
            )
    end = size
    if first & 0x20:
        pad = data[-1]
        if pad == 0:
            raise RtpParseError("padding bit set but the padding count is 0")
        if pad > size - start:
            raise RtpParseError(
                f"padding count {pad} exceeds the {size - start} bytes after the header"
            )
        end -= pad
    return RtpHeader(second & 0x7F, bool(second & 0x80), sequence, timestamp, ssrc, start, end)


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """A header extension (RFC 3550 section 5.3.1): 16-bit profile field and 32-bit words."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if len(self.data) % 4:
            raise ValueError(f"extension data must be whole 32-bit words, got {len(self.data)}")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet; ``bytes(packet)`` is its wire form, ``RtpPacket.parse`` the reverse."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type < 128:
            raise ValueError(f"payload type {self.payload_type} outside 0..127")
        if len(self.csrc) > 15:
            raise ValueError(f"at most 15 CSRCs, got {len(self.csrc)}")
        if not 0 <= self.padding < 256:
            raise ValueError(f"padding {self.padding} outside 0..255")

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        header = parse_header(data)
        count = data[0] & 0x0F
        csrc = struct.unpack_from(f"!{count}I", data, HEADER_SIZE) if count else ()
        extension = None
        if data[0] & 0x10:
            at = HEADER_SIZE + 4 * count
            profile, words = _EXTENSION.unpack_from(data, at)
            extension = RtpExtension(profile, bytes(data[at + 4 : at + 4 + 4 * words]))
        return cls(
            payload_type=header.payload_type,
            sequence=header.sequence,
            timestamp=header.timestamp,
            ssrc=header.ssrc,
            payload=bytes(data[header.payload_start : header.payload_end]),
            marker=header.marker,
            csrc=tuple(csrc),
            extension=extension,
            padding=len(data) - header.payload_end,
        )

    def __bytes__(self) -> bytes:
        first = (
            (RTP_VERSION << 6)
            | (0x20 if self.padding else 0)
            | (0x10 if self.extension is not None else 0)
            | len(self.csrc)
        )
        parts = [
            _HEADER.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXTENSION.pack(ext.profile, len(ext.data) // 4) + ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def build_packet(
    payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes, marker: bool
) -> bytes:
    """The common case (no CSRC, extension or padding) without building a dataclass."""
    return (
        _HEADER.pack(
            0x80,
            (0x80 if marker else 0) | payload_type,
            sequence & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            ssrc,
        )
        + payload
    )
