"""RTCP (RFC 3550 section 6): SR, RR, SDES and BYE packets and compound packets, sans-IO."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from media.errors import RtpParseError

SR, RR, SDES, BYE, APP = 200, 201, 202, 203, 204
SDES_CNAME = 1
_COMMON = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!IIIII")
_BLOCK = struct.Struct("!IB3sIIII")
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01


def ntp_time(unix: float) -> int:
    """64-bit NTP timestamp for a UNIX time."""
    seconds = unix + NTP_EPOCH_OFFSET
    whole = int(seconds)
    return (whole << 32) | int((seconds - whole) * (1 << 32))


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report (RFC 3550 section 6.4.1)."""

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int = 0
    delay_since_last_sr: int = 0

    def pack(self) -> bytes:
        lost = max(-(1 << 23), min((1 << 23) - 1, self.cumulative_lost)) & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc,
            self.fraction_lost,
            lost.to_bytes(3, "big"),
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.last_sr,
            self.delay_since_last_sr,
        )

    @classmethod
    def unpack(cls, data: bytes, at: int) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, at)
        cumulative = int.from_bytes(lost, "big")
        if cumulative & 0x800000:
            cumulative -= 1 << 24
        return cls(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class SdesChunk:
    ssrc: int
    items: tuple[tuple[int, bytes], ...]

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class SourceDescription:
    chunks: tuple[SdesChunk, ...]


@dataclass(frozen=True, slots=True)
class Bye:
    sources: tuple[int, ...]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OtherRtcp:
    """An RTCP packet type this engine does not interpret (APP, RTPFB, ...), kept as bytes."""

    packet_type: int
    count: int
    body: bytes


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | OtherRtcp


def _header(packet_type: int, count: int, body: bytes) -> bytes:
    return _COMMON.pack(0x80 | count, packet_type, len(body) // 4) + body


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def build(packet: RtcpPacket) -> bytes:
    """Wire form of one RTCP packet."""
    if isinstance(packet, SenderReport):
        body = _SENDER_INFO.pack(
            packet.ssrc,
            packet.ntp_timestamp >> 32,
            packet.ntp_timestamp & 0xFFFFFFFF,
            packet.rtp_timestamp & 0xFFFFFFFF,
            packet.packet_count & 0xFFFFFFFF,
        ) + struct.pack("!I", packet.octet_count & 0xFFFFFFFF)
        body += b"".join(block.pack() for block in packet.reports)
        return _header(SR, len(packet.reports), body)
    if isinstance(packet, ReceiverReport):
        body = struct.pack("!I", packet.ssrc) + b"".join(b.pack() for b in packet.reports)
        return _header(RR, len(packet.reports), body)
    if isinstance(packet, SourceDescription):
        chunks = []
        for chunk in packet.chunks:
            items = b"".join(bytes((kind, len(value))) + value for kind, value in chunk.items)
            # a chunk ends with a null item and is padded to a 32-bit boundary (6.5)
            raw = struct.pack("!I", chunk.ssrc) + items + b"\x00"
            chunks.append(_pad4(raw))
        return _header(SDES, len(packet.chunks), b"".join(chunks))
    if isinstance(packet, Bye):
        body = b"".join(struct.pack("!I", s) for s in packet.sources)
        if packet.reason:
            reason = packet.reason.encode()[:255]
            body += _pad4(bytes((len(reason),)) + reason)
        return _header(BYE, len(packet.sources), body)
    return _header(packet.packet_type, packet.count, _pad4(packet.body))


def build_compound(packets: Iterable[RtcpPacket]) -> bytes:
    return b"".join(build(p) for p in packets)


def _parse_reports(body: bytes, at: int, count: int, kind: str) -> tuple[ReportBlock, ...]:
    if at + 24 * count > len(body):
        raise RtpParseError(f"RTCP {kind} claims {count} report blocks but has room for fewer")
    return tuple(ReportBlock.unpack(body, at + 24 * i) for i in range(count))


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    at = 0
    for _ in range(count):
        if at + 4 > len(body):
            raise RtpParseError("RTCP SDES chunk runs past the end of the packet")
        ssrc = struct.unpack_from("!I", body, at)[0]
        at += 4
        items = []
        while True:
            if at >= len(body):
                raise RtpParseError("RTCP SDES item list is not terminated")
            kind = body[at]
            if kind == 0:
                at = (at + 4) & ~3  # skip the null item and the padding to a word
                break
            if at + 2 > len(body) or at + 2 + body[at + 1] > len(body):
                raise RtpParseError(f"RTCP SDES item {kind} runs past the end of the packet")
            length = body[at + 1]
            items.append((kind, bytes(body[at + 2 : at + 2 + length])))
            at += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == SR:
        if len(body) < 24:
            raise RtpParseError(f"RTCP SR body of {len(body)} bytes, sender info needs 24")
        ssrc, ntp_hi, ntp_lo, rtp_ts, packets = _SENDER_INFO.unpack_from(body)
        octets = struct.unpack_from("!I", body, 20)[0]
        reports = _parse_reports(body, 24, count, "SR")
        return SenderReport(ssrc, (ntp_hi << 32) | ntp_lo, rtp_ts, packets, octets, reports)
    if packet_type == RR:
        if len(body) < 4:
            raise RtpParseError("RTCP RR without a sender SSRC")
        ssrc = struct.unpack_from("!I", body)[0]
        return ReceiverReport(ssrc, _parse_reports(body, 4, count, "RR"))
    if packet_type == SDES:
        return _parse_sdes(body, count)
    if packet_type == BYE:
        if 4 * count > len(body):
            raise RtpParseError(f"RTCP BYE claims {count} sources but has room for fewer")
        sources = struct.unpack_from(f"!{count}I", body) if count else ()
        reason = ""
        at = 4 * count
        if at < len(body):
            length = body[at]
            if at + 1 + length > len(body):
                raise RtpParseError("RTCP BYE reason runs past the end of the packet")
            reason = body[at + 1 : at + 1 + length].decode("utf-8", "replace")
        return Bye(tuple(sources), reason)
    return OtherRtcp(packet_type, count, bytes(body))


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet; raises :class:`RtpParseError` on any malformed part."""
    packets: list[RtcpPacket] = []
    at = 0
    if len(data) < 4:
        raise RtpParseError(f"RTCP packet too short: {len(data)} bytes, the header needs 4")
    while at < len(data):
        if at + 4 > len(data):
            raise RtpParseError(f"{len(data) - at} trailing bytes after the last RTCP packet")
        first, packet_type, words = _COMMON.unpack_from(data, at)
        if first >> 6 != 2:
            raise RtpParseError(f"RTCP version {first >> 6}, expected 2")
        if not 192 <= packet_type <= 223:
            raise RtpParseError(f"RTCP packet type {packet_type} outside 192..223")
        end = at + 4 + 4 * words
        if end > len(data):
            raise RtpParseError(
                f"RTCP length of {words} words runs past the end of a {len(data)}-byte packet"
            )
        body = data[at + 4 : end]
        if first & 0x20:
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise RtpParseError("RTCP padding count is 0 or larger than the packet")
            body = body[: -body[-1]]
        packets.append(_parse_one(packet_type, first & 0x1F, body))
        at = end
    return packets
