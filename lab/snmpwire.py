"""Just enough SNMP BER for the lab's UDP fault proxy: build a GET, patch a response's error-status.

Sans-IO; malformed datagrams raise ``ValueError``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ErrorStatus(enum.IntEnum):
    """RFC 3416 error-status values an agent can answer with."""

    tooBig = 1
    noSuchName = 2
    badValue = 3
    readOnly = 4
    genErr = 5
    noAccess = 6
    resourceUnavailable = 13
    authorizationError = 16


@dataclass(frozen=True)
class Tlv:
    tag: int
    start: int  # offset of the tag byte
    value: int  # offset of the first value byte
    end: int  # offset just past the value


def read_tlv(data: bytes, offset: int) -> Tlv:
    if offset + 2 > len(data):
        raise ValueError(f"truncated BER header at offset {offset}")
    tag, first = data[offset], data[offset + 1]
    pos = offset + 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError(f"bad BER length at offset {offset + 1}")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    else:
        length = first
    if pos + length > len(data):
        raise ValueError(f"BER value at offset {offset} runs past the end")
    return Tlv(tag, offset, pos, pos + length)


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _length(len(value)) + value


def _integer(n: int) -> bytes:
    return _tlv(0x02, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True))


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.strip(".").split(".")]
    if len(parts) < 2:
        raise ValueError(f"OID too short: {dotted!r}")
    body = bytearray([parts[0] * 40 + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


def encode_get(community: str, oid: str, request_id: int, version: str = "2c") -> bytes:
    """An SNMPv1/v2c GetRequest for one OID."""
    varbind = _tlv(0x30, _oid(oid) + b"\x05\x00")
    pdu = _tlv(0xA0, _integer(request_id) + _integer(0) + _integer(0) + _tlv(0x30, varbind))
    ver = 1 if version == "2c" else 0
    return _tlv(0x30, _integer(ver) + _tlv(0x04, community.encode()) + pdu)


def _pdu_header(message: bytes) -> tuple[Tlv, Tlv, Tlv, Tlv]:
    outer = read_tlv(message, 0)
    if outer.tag != 0x30:
        raise ValueError("not an SNMP message (expected SEQUENCE)")
    version = read_tlv(message, outer.value)
    community = read_tlv(message, version.end)
    if version.tag != 0x02 or community.tag != 0x04:
        raise ValueError("not an SNMPv1/v2c message")
    pdu = read_tlv(message, community.end)
    if pdu.tag & 0xE0 != 0xA0:
        raise ValueError(f"unexpected PDU tag 0x{pdu.tag:02x}")
    request_id = read_tlv(message, pdu.value)
    status = read_tlv(message, request_id.end)
    index = read_tlv(message, status.end)
    if status.tag != 0x02 or index.tag != 0x02:
        raise ValueError("malformed PDU header")
    return pdu, request_id, status, index


def request_id_of(message: bytes) -> int:
    _, request_id, _, _ = _pdu_header(message)
    return int.from_bytes(message[request_id.value : request_id.end], "big", signed=True)


def with_error_status(message: bytes, status: ErrorStatus, index: int = 1) -> bytes:
    """The same response with ``error-status``/``error-index`` set (one-byte fields only)."""
    _, _, st, ix = _pdu_header(message)
    if st.end - st.value != 1 or ix.end - ix.value != 1 or not 0 <= index < 128:
        raise ValueError("error-status/error-index are not one-byte integers")
    out = bytearray(message)
    out[st.value] = int(status)
    out[ix.value] = index
    return bytes(out)


def error_status_of(message: bytes) -> int:
    _, _, status, _ = _pdu_header(message)
    return int.from_bytes(message[status.value : status.end], "big", signed=True)
