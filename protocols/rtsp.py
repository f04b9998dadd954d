"""RTSP/1.0 (RFC 2326) requests and responses, sans-IO: what a probe needs (OPTIONS and
DESCRIBE out, a response with headers and an optional body in).

``ResponseReader.feed(data)`` returns each complete response; bytes that are not an RTSP
response raise ``ValueError`` naming the problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_HEAD = 16_384  # bytes of status line + headers
MAX_BODY = 1_048_576
_STATUS = re.compile(r"^RTSP/(\d)\.(\d) (\d{3})(?: (.*))?$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass(frozen=True)
class RtspRequest:
    method: str
    url: str
    cseq: int
    headers: Mapping[str, str] = field(default_factory=dict)

    def __bytes__(self) -> bytes:
        if not _TOKEN.match(self.method) or any(c in self.url for c in " \r\n"):
            raise ValueError(f"not a valid RTSP request line: {self.method} {self.url!r}")
        lines = [f"{self.method} {self.url} RTSP/1.0", f"CSeq: {self.cseq}"]
        for name, value in self.headers.items():
            if "\r" in value or "\n" in value or not _TOKEN.match(name):
                raise ValueError(f"bad header {name!r}: {value!r}")
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


@dataclass(frozen=True)
class RtspResponse:
    status: int
    reason: str
    headers: Mapping[str, str]  # names in lower case; repeated headers joined by ", "
    body: bytes = b""

    @property
    def cseq(self) -> int | None:
        value = self.headers.get("cseq", "").strip()
        return int(value) if value.isdigit() else None

    def media_count(self) -> int:
        """Number of ``m=`` lines in an SDP body (streams the camera offers)."""
        text = self.body.decode("utf-8", errors="replace")
        return sum(1 for line in text.splitlines() if line.startswith("m="))


def parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    """Status line and headers (without the blank line); ``ValueError`` says what is wrong."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"RTSP head is not UTF-8 (byte {err.start})") from None
    lines = text.split("\r\n")
    match = _STATUS.match(lines[0])
    if match is None:
        raise ValueError(f"not an RTSP status line: {lines[0][:80]!r}")
    if match.group(1) != "1":
        raise ValueError(f"unsupported RTSP version {match.group(1)}.{match.group(2)}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name):
            raise ValueError(f"malformed RTSP header line: {line[:80]!r}")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return int(match.group(3)), match.group(4) or "", headers


class ResponseReader:
    """Splits a byte stream into RTSP responses (head, then ``Content-Length`` bytes)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending: tuple[int, str, dict[str, str], int] | None = None

    def feed(self, data: bytes) -> list[RtspResponse]:
        self._buffer += data
        out: list[RtspResponse] = []
        while True:
            if self._pending is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEAD:
                        raise ValueError(f"RTSP head longer than {MAX_HEAD} bytes")
                    return out
                status, reason, headers = parse_head(bytes(self._buffer[:end]))
                del self._buffer[: end + 4]
                length_text = headers.get("content-length", "0").strip()
                if not length_text.isdigit():
                    raise ValueError(f"bad Content-Length: {length_text!r}")
                length = int(length_text)
                if length > MAX_BODY:
                    raise ValueError(f"RTSP body of {length} bytes exceeds {MAX_BODY}")
                self._pending = (status, reason, headers, length)
            status, reason, headers, length = self._pending
            if len(self._buffer) < length:
                return out
            body = bytes(self._buffer[:length])
            del self._buffer[:length]
            self._pending = None
            out.append(RtspResponse(status, reason, headers, body))
