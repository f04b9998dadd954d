"""Typed SIP header values (RFC 3261 section 25): names, name-addr, Via, CSeq, params."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from sip.errors import SipParseError
from sip.uri import SipUri, Uri, parse_hostport, parse_uri

TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_WORD_CHARS = TOKEN_CHARS | frozenset('()<>:\\"/[]?{}')
_WS = " \t"
MAX_CSEQ = 2**31 - 1

COMPACT_FORMS = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
    "l": "Content-Length", "m": "Contact", "n": "Identity-Info", "o": "Event", "r": "Refer-To",
    "s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires",
    "y": "Identity",
}  # fmt: skip
_KNOWN_NAMES = (
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity",
    "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version", "Organization",
    "P-Asserted-Identity", "Path", "Priority", "Privacy", "Proxy-Authenticate",
    "Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To",
    "Referred-By", "Reply-To", "Require", "Retry-After", "Route", "RSeq", "Server",
    "Service-Route", "Session-Expires", "Subject", "Subscription-State", "Supported",
    "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
)  # fmt: skip
_CANONICAL = {name.lower(): name for name in (*_KNOWN_NAMES, *COMPACT_FORMS.values())}
LIST_HEADERS = frozenset(
    ("Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require", "Proxy-Require",
     "Unsupported", "Accept", "Accept-Encoding", "Accept-Language", "Content-Encoding",
     "Content-Language", "Allow-Events", "Path", "Service-Route", "In-Reply-To", "Alert-Info",
     "Call-Info", "Error-Info", "Warning", "P-Asserted-Identity")
)  # fmt: skip


def canonical_name(name: str) -> str:
    """Expand compact forms and give known names their usual spelling."""
    lowered = name.lower()
    if lowered in COMPACT_FORMS:
        return COMPACT_FORMS[lowered]
    return _CANONICAL.get(lowered, name)


_TOKEN_CLASS = "A-Za-z0-9\\-.!%*_+`'~"
_TOKEN_RE = re.compile(f"[{_TOKEN_CLASS}]+\\Z")
_TOKEN_RUN_RE = re.compile(f"[{_TOKEN_CLASS}]*")
_PARAM_VALUE_RUN_RE = re.compile(f"[{_TOKEN_CLASS}:\\[\\]]*")
_WS_RUN_RE = re.compile("[ \t]*")


def is_token(text: str) -> bool:
    return _TOKEN_RE.match(text) is not None


def _skip_ws(text: str, pos: int) -> int:
    return _WS_RUN_RE.match(text, pos).end()  # type: ignore[union-attr]  # always matches


# A quoted-string without escapes or control characters: the common case, read in one go.
_PLAIN_QUOTED_RE = re.compile(r'"([^"\\\x00-\x08\x0a-\x1f\x7f]*)"')
_NEEDS_ESCAPE_RE = re.compile(r'["\\\x00-\x08\x0a-\x1f\x7f]')


def read_quoted(text: str, pos: int) -> tuple[str, int]:
    """Read a quoted-string starting at ``text[pos] == '"'``; return (unescaped, end)."""
    plain = _PLAIN_QUOTED_RE.match(text, pos)
    if plain is not None:
        return plain.group(1), plain.end()
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text) or text[i + 1] in "\r\n":
                break
            out.append(text[i + 1])
            i += 2
        elif ch == '"':
            return "".join(out), i + 1
        elif (ord(ch) < 0x20 and ch != "\t") or ch == "\x7f":
            raise SipParseError(f"control character {ch!r} in quoted string")
        else:
            out.append(ch)
            i += 1
    raise SipParseError(f"unterminated quoted string in {text!r}")


def quote(text: str) -> str:
    """Quote a display name or parameter value, escaping what qdtext cannot carry."""
    if _NEEDS_ESCAPE_RE.search(text) is None:
        return f'"{text}"'
    if "\r" in text or "\n" in text:
        raise SipParseError(f"CR or LF cannot be quoted: {text!r}")
    escaped = "".join(
        "\\" + ch if ch in '"\\' or (ord(ch) < 0x20 and ch != "\t") or ch == "\x7f" else ch
        for ch in text
    )
    return f'"{escaped}"'


def split_list(value: str) -> list[str]:
    """Split a header value on commas outside quoted strings and angle brackets."""
    if "," not in value:
        return [value.strip(_WS)]
    parts: list[str] = []
    start, i, in_angle = 0, 0, False
    while i < len(value):
        ch = value[i]
        if ch == '"' and not in_angle:
            _, i = read_quoted(value, i)
            continue
        if ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == "," and not in_angle:
            parts.append(value[start:i].strip(_WS))
            start = i + 1
        i += 1
    parts.append(value[start:].strip(_WS))
    return parts


@dataclass(frozen=True)
class Param:
    """A header parameter; ``value`` is kept as written (quotes included), None if bare."""

    name: str
    value: str | None = None

    @property
    def text(self) -> str | None:
        """The value with quotes removed."""
        if self.value is not None and self.value.startswith('"'):
            return read_quoted(self.value, 0)[0]
        return self.value

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}={self.value}"


def parse_params(text: str, pos: int, what: str) -> tuple[Param, ...]:
    """Parse ``*( SEMI generic-param )`` from ``pos`` to the end of ``text``."""
    params: list[Param] = []
    pos = _skip_ws(text, pos)
    while pos < len(text):
        if text[pos] != ";":
            raise SipParseError(f"bad {what}: expected ';' at {text[pos:]!r}")
        pos = _skip_ws(text, pos + 1)
        start = pos
        pos = _TOKEN_RUN_RE.match(text, pos).end()  # type: ignore[union-attr]
        name = text[start:pos]
        if not name:
            raise SipParseError(f"bad {what}: empty parameter in {text!r}")
        pos = _skip_ws(text, pos)
        value = None
        if pos < len(text) and text[pos] == "=":
            pos = _skip_ws(text, pos + 1)
            if pos < len(text) and text[pos] == '"':
                _, end = read_quoted(text, pos)
                value, pos = text[pos:end], end
            else:
                start = pos
                pos = _PARAM_VALUE_RUN_RE.match(text, pos).end()  # type: ignore[union-attr]
                value = text[start:pos]
                if not value:
                    raise SipParseError(f"bad {what}: parameter {name!r} has an empty value")
            pos = _skip_ws(text, pos)
        params.append(Param(name, value))
    return tuple(params)


def find_param(params: tuple[Param, ...], name: str) -> Param | None:
    lowered = name.lower()
    return next((p for p in params if p.name.lower() == lowered), None)


@dataclass(frozen=True)
class NameAddr:
    """From, To, Contact, Route values: optional display name, URI, header params."""

    uri: Uri
    display_name: str | None = None
    params: tuple[Param, ...] = ()

    @classmethod
    def parse(cls, text: str, what: str = "name-addr", *, require_angle: bool = False) -> NameAddr:
        text = text.strip(_WS)
        display: str | None = None
        pos = 0
        if text.startswith('"'):
            display, pos = read_quoted(text, 0)
            pos = _skip_ws(text, pos)
            if pos >= len(text) or text[pos] != "<":
                raise SipParseError(f"bad {what} {text!r}: expected '<' after display name")
        elif "<" in text:
            pos = text.index("<")
            words = text[:pos].split()
            if any(not is_token(word) for word in words):
                raise SipParseError(f"bad {what} {text!r}: display name must be tokens or quoted")
            display = " ".join(words) if words else None
        if pos < len(text) and text[pos] == "<":
            end = text.find(">", pos)
            if end < 0:
                raise SipParseError(f"bad {what} {text!r}: missing '>'")
            inner = text[pos + 1 : end]
            if inner != inner.strip(_WS):
                raise SipParseError(f"bad {what} {text!r}: whitespace inside '<...>'")
            uri = parse_uri(inner)
            return cls(uri, display, parse_params(text, end + 1, what))
        if require_angle:
            raise SipParseError(f"bad {what} {text!r}: URI must be enclosed in '<>'")
        end = text.find(";")
        end = len(text) if end < 0 else end
        uri_text = text[:end].rstrip(_WS)
        if any(ch in uri_text for ch in "?, \t"):
            raise SipParseError(f"bad {what} {text!r}: URI with '?', ',' or spaces needs '<>'")
        return cls(parse_uri(uri_text), None, parse_params(text, end, what))

    @property
    def tag(self) -> str | None:
        param = find_param(self.params, "tag")
        return param.text if param else None

    def param(self, name: str) -> str | None:
        found = find_param(self.params, name)
        return None if found is None else (found.text or "")

    def with_param(self, name: str, value: str | None) -> NameAddr:
        kept = tuple(p for p in self.params if p.name.lower() != name.lower())
        return NameAddr(self.uri, self.display_name, (*kept, Param(name, value)))

    def __str__(self) -> str:
        out = f"{quote(self.display_name)} " if self.display_name is not None else ""
        return out + f"<{self.uri}>" + "".join(f";{p}" for p in self.params)


@dataclass(frozen=True)
class Via:
    """One Via hop: ``SIP/2.0/UDP host:port;branch=...;received=...;rport``."""

    transport: str
    host: str
    port: int | None = None
    params: tuple[Param, ...] = ()
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        pos, fields = 0, []
        for index in range(3):
            pos = _skip_ws(text, pos)
            start = pos
            pos = _TOKEN_RUN_RE.match(text, pos).end()  # type: ignore[union-attr]
            if pos == start:
                raise SipParseError(f"bad Via {text!r}: bad sent-protocol")
            fields.append(text[start:pos])
            pos = _skip_ws(text, pos)
            if index < 2:
                if pos >= len(text) or text[pos] != "/":
                    raise SipParseError(f"bad Via {text!r}: expected '/' in sent-protocol")
                pos += 1
        start = pos
        while pos < len(text) and text[pos] not in _WS + ";":
            pos += 1
        if pos == start:
            raise SipParseError(f"bad Via {text!r}: missing sent-by")
        host, port = parse_hostport(text[start:pos])
        params = parse_params(text, pos, "Via")
        via = cls(fields[2].upper(), host, port, params, f"{fields[0].upper()}/{fields[1]}")
        via._validate()
        return via

    def _validate(self) -> None:
        for param in self.params:
            name = param.name.lower()
            if name == "branch" and not param.value:
                raise SipParseError("bad Via: branch parameter without value")
            if name == "received" and param.value is not None:
                try:
                    ipaddress.ip_address(param.value.strip("[]"))
                except ValueError:
                    raise SipParseError(f"bad Via received {param.value!r}") from None
            if name in ("rport", "ttl") and param.value is not None:
                limit = 65535 if name == "rport" else 255
                if not param.value.isdigit() or int(param.value) > limit:
                    raise SipParseError(f"bad Via {name} {param.value!r}")

    @property
    def branch(self) -> str | None:
        param = find_param(self.params, "branch")
        return param.value if param else None

    @property
    def received(self) -> str | None:
        param = find_param(self.params, "received")
        return param.value if param else None

    @property
    def rport_requested(self) -> bool:
        return find_param(self.params, "rport") is not None

    @property
    def rport(self) -> int | None:
        param = find_param(self.params, "rport")
        return int(param.value) if param is not None and param.value else None

    def with_param(self, name: str, value: str | None) -> Via:
        kept = tuple(p for p in self.params if p.name.lower() != name.lower())
        return Via(self.transport, self.host, self.port, (*kept, Param(name, value)), self.protocol)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        params = "".join(f";{p}" for p in self.params)
        return f"{self.protocol}/{self.transport} {self.host}{port}{params}"


@dataclass(frozen=True)
class CSeq:
    """``CSeq: <seq> <METHOD>``; seq is below 2**31 (RFC 3261 section 8.1.1.5)."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or not parts[0].isascii():
            raise SipParseError(f"bad CSeq {text!r}")
        if int(parts[0]) > MAX_CSEQ or not is_token(parts[1]):
            raise SipParseError(f"bad CSeq {text!r}: number or method out of range")
        return cls(int(parts[0]), parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_call_id(text: str) -> str:
    word, _, host = text.partition("@")
    if not word or any(ch not in _WORD_CHARS for ch in word + host) or "@" in host:
        raise SipParseError(f"bad Call-ID {text!r}")
    return text


def is_sip_uri(uri: Uri) -> bool:
    return isinstance(uri, SipUri)
