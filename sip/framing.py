"""Stream (TCP/TLS) framing of SIP messages by Content-Length, with bounded sizes."""

from __future__ import annotations

import re

from sip.errors import SipParseError

_CONTENT_LENGTH_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*$", re.I | re.M)


class SipStreamFramer:
    """Cut a byte stream into complete SIP messages (RFC 3261 section 18.3).

    ``feed`` returns every message completed by the new bytes. Keep-alive CRLFs
    between messages (RFC 5626) are skipped. A framing error (no or bad
    Content-Length, header section or body too large) raises ``SipParseError``;
    the stream cannot be resynchronised, so the transport must close it.
    """

    def __init__(self, *, max_header_bytes: int = 16384, max_body_bytes: int = 262144) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        messages: list[bytes] = []
        while True:
            while self._buffer[:2] == b"\r\n":
                del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self.max_header_bytes:
                    raise SipParseError(f"header section exceeds {self.max_header_bytes} bytes")
                return messages
            if end + 4 > self.max_header_bytes:
                raise SipParseError(f"header section exceeds {self.max_header_bytes} bytes")
            head = bytes(self._buffer[:end])
            head = re.sub(rb"\r\n[ \t]+", b" ", head)
            lengths = _CONTENT_LENGTH_RE.findall(head)
            if len(lengths) != 1:
                raise SipParseError("stream message needs exactly one Content-Length")
            declared = lengths[0]
            if not declared.isdigit() or len(declared) > 12:
                raise SipParseError(f"bad Content-Length {declared[:20]!r}")
            size = int(declared)
            if size > self.max_body_bytes:
                raise SipParseError(f"body of {size} bytes exceeds {self.max_body_bytes} bytes")
            total = end + 4 + size
            if len(self._buffer) < total:
                return messages
            messages.append(bytes(self._buffer[:total]))
            del self._buffer[:total]
