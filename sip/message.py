"""SIP requests and responses: RFC 3261 parser, validator and canonical serializer."""

from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Self

from sip.errors import SipParseError
from sip.headers import (
    LIST_HEADERS,
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    is_token,
    parse_call_id,
    split_list,
)
from sip.uri import SipUri, Uri, parse_uri

SIP_VERSION = "SIP/2.0"
_FOLD_RE = re.compile(r"\r\n[ \t]+")
_VERSION_RE = re.compile(r"SIP/(\d+)\.(\d+)\Z", re.IGNORECASE)
_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} GMT\Z"
)
_SINGLE = ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Type", "Expires")
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
_NAME_ADDR = frozenset(("From", "To", "Contact", "Route", "Record-Route", "Path", "Reply-To"))
_MAX_DELTA = 2**32 - 1
_ENC = "utf-8"
_ERRORS = "surrogateescape"


@dataclass(frozen=True)
class Header:
    """One header field as name and canonical value (folding removed)."""

    name: str
    value: str


class _HeaderAccess:
    """Typed, case-insensitive access to the headers of a request or response."""

    headers: tuple[Header, ...]
    body: bytes

    def get(self, name: str) -> str | None:
        """First value of a header (compact or long name, any case), or None."""
        wanted = canonical_name(name).lower()
        return next((h.value for h in self.headers if h.name.lower() == wanted), None)

    def get_all(self, name: str) -> list[str]:
        wanted = canonical_name(name).lower()
        return [h.value for h in self.headers if h.name.lower() == wanted]

    def _required(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise SipParseError(f"missing {name} header")
        return value

    @cached_property
    def vias(self) -> tuple[Via, ...]:
        return tuple(Via.parse(value) for value in self.get_all("Via"))

    @property
    def top_via(self) -> Via:
        if not self.vias:
            raise SipParseError("missing Via header")
        return self.vias[0]

    @cached_property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self._required("From"), "From")

    @cached_property
    def to(self) -> NameAddr:
        return NameAddr.parse(self._required("To"), "To")

    @property
    def call_id(self) -> str:
        return self._required("Call-ID")

    @cached_property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._required("CSeq"))

    @property
    def max_forwards(self) -> int | None:
        value = self.get("Max-Forwards")
        return None if value is None else int(value)

    @cached_property
    def contacts(self) -> tuple[NameAddr, ...]:
        """Contact values; empty for ``Contact: *`` (see ``contact_is_star``)."""
        return tuple(NameAddr.parse(v, "Contact") for v in self.get_all("Contact") if v != "*")

    @property
    def contact_is_star(self) -> bool:
        return self.get_all("Contact") == ["*"]

    @cached_property
    def routes(self) -> tuple[NameAddr, ...]:
        return tuple(NameAddr.parse(v, "Route") for v in self.get_all("Route"))

    @cached_property
    def record_routes(self) -> tuple[NameAddr, ...]:
        return tuple(NameAddr.parse(v, "Record-Route") for v in self.get_all("Record-Route"))

    @property
    def content_type(self) -> str | None:
        value = self.get("Content-Type")
        return None if value is None else value.split(";")[0].strip().lower()

    def _header_bytes(self) -> bytes:
        lines = "".join(f"{h.name}: {h.value}\r\n" for h in self.headers)
        lines += f"Content-Length: {len(self.body)}\r\n\r\n"
        return lines.encode(_ENC, _ERRORS) + self.body


@dataclass(frozen=True)
class SipRequest(_HeaderAccess):
    """A SIP request; ``bytes(request)`` gives its canonical wire form."""

    method: str
    uri: Uri
    headers: tuple[Header, ...] = ()
    body: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> SipRequest:
        message = parse_message(data)
        if not isinstance(message, SipRequest):
            raise SipParseError("expected a request, got a response", is_response=True)
        return message

    def with_headers(self, *headers: Header) -> Self:
        return replace(self, headers=(*self.headers, *headers))

    def __bytes__(self) -> bytes:
        return self.wire

    @cached_property
    def wire(self) -> bytes:
        """The wire form, built once (messages are immutable)."""
        start = f"{self.method} {self.uri} {SIP_VERSION}\r\n".encode(_ENC, _ERRORS)
        return start + self._header_bytes()


@dataclass(frozen=True)
class SipResponse(_HeaderAccess):
    """A SIP response; ``bytes(response)`` gives its canonical wire form."""

    status: int
    reason: str
    headers: tuple[Header, ...] = ()
    body: bytes = field(default=b"")

    @classmethod
    def parse(cls, data: bytes) -> SipResponse:
        message = parse_message(data)
        if not isinstance(message, SipResponse):
            raise SipParseError("expected a response, got a request", method=message.method)
        return message

    def with_headers(self, *headers: Header) -> Self:
        return replace(self, headers=(*self.headers, *headers))

    def __bytes__(self) -> bytes:
        return self.wire

    @cached_property
    def wire(self) -> bytes:
        """The wire form, built once (messages are immutable)."""
        start = f"{SIP_VERSION} {self.status} {self.reason}\r\n".encode(_ENC, _ERRORS)
        return start + self._header_bytes()


SipMessage = SipRequest | SipResponse


def _split_headers(text: str) -> list[tuple[str, str]]:
    """Unfold continuation lines and split ``name: value`` pairs (names as written)."""
    raw: list[tuple[str, str]] = []
    for line in _FOLD_RE.sub(" ", text).split("\r\n"):
        if not line:
            continue
        if "\r" in line or "\n" in line:
            raise SipParseError("bare CR or LF in header section")
        if line[0] in " \t":
            raise SipParseError("continuation line before the first header")
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_token(name):
            raise SipParseError(f"bad header line {line[:60]!r}")
        raw.append((name, value.strip(" \t")))
    return raw


def _parse_start_line(line: str) -> tuple[str, str, str]:
    """Return ('response', code, reason) or ('request', method, uri)."""
    if line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        code, sp, reason = rest.partition(" ")
        if not _VERSION_RE.match(version):
            raise SipParseError(f"bad status line {line[:60]!r}", is_response=True)
        if len(code) != 3 or not code.isdigit() or not code.isascii() or not sp:
            raise SipParseError(f"bad status code in {line[:60]!r}", is_response=True)
        if not 100 <= int(code) <= 699 or version.upper() != SIP_VERSION:
            raise SipParseError(f"bad status line {line[:60]!r}", is_response=True)
        if any(ord(ch) < 0x20 and ch != "\t" for ch in reason):
            raise SipParseError("control character in reason phrase", is_response=True)
        return "response", code, reason
    parts = line.split(" ")
    method = parts[0]
    if not is_token(method):
        raise SipParseError(f"bad request line {line[:60]!r}: bad method {method[:30]!r}")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(
            f"bad request line {line[:60]!r}: need 'METHOD SP URI SP SIP/2.0'", method=method
        )
    uri, version = parts[1], parts[2]
    if not _VERSION_RE.match(version):
        raise SipParseError(f"bad SIP version {version[:20]!r}", method=method)
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"unsupported SIP version {version!r}", status=505, method=method)
    return "request", method, uri


def _digits(name: str, value: str, limit: int) -> int:
    if not value.isdigit() or not value.isascii() or int(value) > limit:
        raise SipParseError(f"bad {name} {value[:40]!r}: expected an integer 0..{limit}")
    return int(value)


def _validate_header(name: str, value: str) -> tuple[str, object]:
    """Check one (split) header value; return its canonical text and, for Via, name-addr
    and CSeq headers, the parsed value (kept so that accessors need not parse again)."""
    if name == "Via":
        via = Via.parse(value)
        return str(via), via
    if name in _NAME_ADDR:
        if name == "Contact" and value == "*":
            return value, None
        return _name_addr(name, value)
    if name == "CSeq":
        cseq = CSeq.parse(value)
        return str(cseq), cseq
    if name == "Call-ID":
        return parse_call_id(value), None
    if name == "Max-Forwards":
        return str(_digits(name, value, 255)), None
    if name in ("Expires", "Min-Expires"):
        return str(_digits(name, value, _MAX_DELTA)), None
    if name == "Retry-After":
        _digits(name, value.split(";")[0].split("(")[0].strip(), _MAX_DELTA)
    elif name == "Date" and not _DATE_RE.match(value):
        raise SipParseError(f"bad Date {value[:40]!r}: expected RFC 1123 date in GMT")
    elif name == "Warning" and (len(value) < 4 or not value[:3].isdigit() or value[3] != " "):
        raise SipParseError(f"bad Warning {value[:40]!r}: expected a 3-digit code")
    return value, None


@functools.lru_cache(maxsize=4096)
def _name_addr(name: str, value: str) -> tuple[str, NameAddr]:
    """A validated name-addr header value and its canonical text (memoised: To, Contact
    and Route values repeat; NameAddr is immutable; errors are not cached)."""
    addr = NameAddr.parse(value, name, require_angle=name in ("Route", "Record-Route"))
    expires = addr.param("expires") if name == "Contact" else None
    if expires is not None:
        _digits("Contact expires", expires, _MAX_DELTA)
    return str(addr), addr


# Parsed header values primed into a message's cached accessors (cached_property names).
_PRIMED = {
    "Via": "vias", "From": "from_", "To": "to", "CSeq": "cseq", "Contact": "contacts",
    "Route": "routes", "Record-Route": "record_routes",
}  # fmt: skip


def _build_headers(
    raw: list[tuple[str, str]],
) -> tuple[tuple[Header, ...], list[str], dict[str, list[object]]]:
    headers: list[Header] = []
    lengths: list[str] = []
    parsed: dict[str, list[object]] = {}
    for written, value in raw:
        name = canonical_name(written)
        if name == "Content-Length":
            lengths.append(value)
            continue
        values = split_list(value) if name in LIST_HEADERS and value else [value]
        if name in ("Via", "Contact", "Route", "Record-Route") and not all(values):
            raise SipParseError(f"bad {name}: empty value in {value[:60]!r}")
        for item in values:
            if item or len(values) == 1:
                text, obj = _validate_header(name, item)
                headers.append(Header(name, text))
                if obj is not None:
                    parsed.setdefault(name, []).append(obj)
    counts: dict[str, int] = {}
    for header in headers:
        counts[header.name] = counts.get(header.name, 0) + 1
    for name in _SINGLE:
        if counts.get(name, 0) > 1:
            raise SipParseError(f"multiple {name} headers")
    contacts = [h.value for h in headers if h.name == "Contact"]
    if "*" in contacts and len(contacts) > 1:
        raise SipParseError("Contact '*' must be the only Contact")
    return tuple(headers), lengths, parsed


def _prime(message: SipMessage, parsed: dict[str, list[object]]) -> None:
    """Store the values parsed while validating in the message's cached accessors."""
    cache = message.__dict__
    for name, attribute in _PRIMED.items():
        values = parsed.get(name, [])
        if name in ("From", "To", "CSeq"):
            cache[attribute] = values[0]
        else:
            cache[attribute] = tuple(values)


def _body(rest: bytes, lengths: list[str]) -> bytes:
    if not lengths:
        return rest  # datagram without Content-Length: the body is the rest of the packet
    if len(set(lengths)) > 1 or len(lengths) > 1:
        raise SipParseError("multiple Content-Length headers")
    declared = lengths[0]
    if not declared.isdigit() or not declared.isascii():
        raise SipParseError(f"bad Content-Length {declared[:20]!r}")
    size = int(declared)
    if size > len(rest):
        raise SipParseError(f"body shorter than Content-Length ({len(rest)} < {size} bytes)")
    return rest[:size]


def parse_message(data: bytes) -> SipMessage:
    """Parse one complete message (a datagram, or a frame from ``SipStreamFramer``)."""
    data = data.lstrip(b"\r\n")
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise SipParseError("no empty line after the header section")
    text = head.decode(_ENC, _ERRORS)
    start_line, _, header_text = text.partition("\r\n")
    kind, first, second = _parse_start_line(start_line)
    method = first if kind == "request" else None
    try:
        headers, lengths, parsed = _build_headers(_split_headers(header_text))
        names = {h.name for h in headers}
        missing = [name for name in _REQUIRED if name not in names]
        if missing:
            raise SipParseError(f"missing required header(s): {', '.join(missing)}")
        body = _body(rest, lengths)
        if kind == "response":
            response = SipResponse(int(first), second, headers, body)
            _prime(response, parsed)
            return response
        uri = parse_uri(second)
        if isinstance(uri, SipUri) and uri.headers:
            raise SipParseError(f"Request-URI must not carry headers: {second[:60]!r}")
        request = SipRequest(first, uri, headers, body)
        _prime(request, parsed)
        if request.cseq.method != first:
            raise SipParseError(
                f"bad CSeq: method {request.cseq.method!r} does not match request method {first!r}"
            )
        return request
    except SipParseError as err:
        raise SipParseError(
            err.reason, status=err.status, method=method, is_response=kind == "response"
        ) from None


REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    410: "Gone", 413: "Request Entity Too Large", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}  # fmt: skip


def reason_phrase(status: int) -> str:
    """The RFC 3261 reason phrase for ``status`` (a class default for unknown codes)."""
    return REASONS.get(status) or REASONS.get(status // 100 * 100, "Unknown")


def new_tag() -> str:
    """A fresh random tag for a To or From header."""
    return secrets.token_hex(6)


def create_response(
    request: SipRequest,
    status: int,
    reason: str,
    *,
    to_tag: str | None = None,
    headers: tuple[Header, ...] = (),
    body: bytes = b"",
) -> SipResponse:
    """Build a response to ``request`` (RFC 3261 section 8.2.6): copies Via, From, To,
    Call-ID, CSeq; adds ``to_tag`` to To when given and To has no tag yet."""
    copied = [h for h in request.headers if h.name in ("Via", "From", "Call-ID", "CSeq")]
    to_value = request.get("To") or ""
    if to_tag is not None and request.to.tag is None:
        to_value = str(request.to.with_param("tag", to_tag))
    return SipResponse(status, reason, (*copied, Header("To", to_value), *headers), body)


def _raw_headers(data: bytes) -> dict[str, list[str]]:
    """Header values by canonical name, scanned leniently (for error responses)."""
    head = data.lstrip(b"\r\n").partition(b"\r\n\r\n")[0].decode(_ENC, _ERRORS)
    header_text = head.partition("\r\n")[2]
    found: dict[str, list[str]] = {}
    for line in _FOLD_RE.sub(" ", header_text).split("\r\n"):
        name, colon, value = line.partition(":")
        if colon and name and name[0] not in " \t":
            found.setdefault(canonical_name(name.strip()), []).append(value.strip(" \t"))
    return found


def _canonical_or_raw(name: str, value: str) -> str:
    try:
        return _validate_header(name, value)[0]
    except SipParseError:
        return value


def bad_request_response(
    data: bytes, error: SipParseError, *, to_tag: str | None = None
) -> SipResponse | None:
    """The 400 (or 505) answer to a malformed request, or None when it must be dropped:
    a response, an ACK, no parsable request line, or no Via or CSeq (what the client
    matches a response on). From, To and Call-ID are copied when present, so RFC 4475's
    ``insuf`` (none of the three) still gets the 400 its section 3.3.1 asks for."""
    if error.method is None or error.is_response or error.method == "ACK":
        return None
    found = _raw_headers(data)
    if not found.get("Via") or not found.get("CSeq"):
        return None
    headers: list[Header] = []
    for value in found["Via"]:
        try:
            headers.extend(Header("Via", v) for v in split_list(value) if v)
        except SipParseError:
            return None
    for name in ("From", "To", "Call-ID", "CSeq"):
        if not found.get(name):
            continue
        value = found[name][0]
        if name == "To" and "tag=" not in value.replace(" ", "").lower():
            value += f";tag={to_tag or new_tag()}"
        headers.append(Header(name, value))
    headers = [Header(h.name, _canonical_or_raw(h.name, h.value)) for h in headers]
    reason = "".join(ch for ch in error.reason if ch.isprintable())[:120]
    return SipResponse(error.status, reason or "Bad Request", tuple(headers))
