"""Ogg pages (RFC 3533) and the Ogg/Opus mapping (RFC 7845): write pages, read packets back."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from media.errors import RtpParseError

_PAGE = struct.Struct("<4sBBqIIIB")
CONTINUED, BOS, EOS = 0x01, 0x02, 0x04


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_CRC = _crc_table()


def crc32(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, initial value 0)."""
    crc = 0
    table = _CRC
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


def build_page(
    packets: list[bytes], *, serial: int, sequence: int, granule: int, flags: int = 0
) -> bytes:
    """One page holding whole ``packets`` (at most 255 lacing values in all)."""
    lacing = bytearray()
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes((len(packet) % 255,))
    if len(lacing) > 255:
        raise ValueError(f"{len(lacing)} lacing values do not fit one Ogg page")
    header = _PAGE.pack(b"OggS", 0, flags, granule, serial, sequence, 0, len(lacing))
    page = bytearray(header + lacing + b"".join(packets))
    struct.pack_into("<I", page, 22, crc32(bytes(page)))
    return bytes(page)


def opus_head(pre_skip: int, input_rate: int) -> bytes:
    return b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, input_rate, 0, 0)


def opus_tags(vendor: str, comments: list[str]) -> bytes:
    out = b"OpusTags" + struct.pack("<I", len(vendor.encode())) + vendor.encode()
    out += struct.pack("<I", len(comments))
    for comment in comments:
        out += struct.pack("<I", len(comment.encode())) + comment.encode()
    return out


@dataclass(frozen=True, slots=True)
class OggPage:
    flags: int
    granule: int
    serial: int
    sequence: int
    packets: tuple[bytes, ...]
    continues: bool  # the last packet goes on in the next page


def read_pages(data: bytes) -> Iterator[OggPage]:
    """Pages in ``data``, stopping silently at a truncated tail (a recording cut by a crash).

    Raises :class:`RtpParseError` for a page that is complete but corrupt (bad magic or CRC).
    """
    at = 0
    while at + _PAGE.size <= len(data):
        magic, version, flags, granule, serial, sequence, crc, count = _PAGE.unpack_from(data, at)
        if magic != b"OggS" or version != 0:
            raise RtpParseError(f"no Ogg page at byte {at}")
        lacing = data[at + _PAGE.size : at + _PAGE.size + count]
        end = at + _PAGE.size + count + sum(lacing)
        if len(lacing) < count or end > len(data):
            return
        page = bytearray(data[at:end])
        struct.pack_into("<I", page, 22, 0)
        if crc32(bytes(page)) != crc:
            raise RtpParseError(f"Ogg page {sequence} at byte {at}: CRC mismatch")
        body = at + _PAGE.size + count
        packets, current = [], b""
        for value in lacing:
            current += data[body : body + value]
            body += value
            if value < 255:
                packets.append(current)
                current = b""
        yield OggPage(flags, granule, serial, sequence, tuple(packets), bool(current))
        at = end


def read_opus_packets(data: bytes) -> tuple[int, int, list[bytes]]:
    """(pre_skip, input_rate, audio packets) of a single-stream Ogg/Opus file."""
    pages = list(read_pages(data))
    if not pages or not pages[0].packets or not pages[0].packets[0].startswith(b"OpusHead"):
        raise RtpParseError("not an Ogg/Opus file: the first packet is not OpusHead")
    head = pages[0].packets[0]
    pre_skip, rate = struct.unpack_from("<HI", head, 10)
    packets = [p for page in pages[2:] for p in page.packets]
    return pre_skip, rate, packets
