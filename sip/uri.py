"""SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966) and opaque absolute URIs."""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

from sip.errors import SipParseError

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_UNRESERVED = _ALNUM + "-_.!~*'()"
_USER_CHARS = frozenset(_UNRESERVED + "&=+$,;?/%")
_PASSWORD_CHARS = frozenset(_UNRESERVED + "&=+$,%")
_PARAM_CHARS = frozenset(_UNRESERVED + "[]/:&+$%")
_HEADER_CHARS = frozenset(_UNRESERVED + "[]/?:+$%")
_TEL_CHARS = frozenset("0123456789abcdefABCDEF*#+-.()")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_HOSTNAME_RE = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?)*\.?\Z"
)
_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_OPAQUE_FORBIDDEN = frozenset(' \t<>"')


@dataclass(frozen=True)
class UriParam:
    """One ``;name[=value]`` URI parameter, kept as written (escapes included)."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}={self.value}"


@dataclass(frozen=True)
class UriHeader:
    """One ``name=value`` pair of a SIP URI's ``?`` header part."""

    name: str
    value: str


_OUTSIDE: dict[frozenset[str], re.Pattern[str]] = {}


def _outside(allowed: frozenset[str]) -> re.Pattern[str]:
    """A regex finding the first character not in ``allowed`` (compiled once per set)."""
    pattern = _OUTSIDE.get(allowed)
    if pattern is None:
        pattern = re.compile("[^" + "".join(re.escape(ch) for ch in sorted(allowed)) + "]")
        _OUTSIDE[allowed] = pattern
    return pattern


def _check_chars(text: str, allowed: frozenset[str], what: str) -> None:
    found = _outside(allowed).search(text)
    if found is not None:
        bad = found.group()
        raise SipParseError(f"bad {what} {text!r}: character {bad!r} not allowed")
    if _ESCAPE_RE.search(text):
        raise SipParseError(f"bad {what} {text!r}: '%' not followed by two hex digits")


def parse_host(text: str) -> str:
    """Validate a host: hostname, IPv4 address or bracketed IPv6 reference."""
    if text.startswith("["):
        if not text.endswith("]"):
            raise SipParseError(f"bad host {text!r}: unterminated IPv6 reference")
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise SipParseError(f"bad host {text!r}: not an IPv6 address") from None
        return text
    if not _HOSTNAME_RE.match(text):
        raise SipParseError(f"bad host {text!r}")
    return text


def parse_hostport(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 in brackets) and validate both parts."""
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[: end + 1], text[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise SipParseError(f"bad host {text!r}")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_part = text.partition(":")
        port_text = port_part if sep else None
    parse_host(host)
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
        raise SipParseError(f"bad port {port_text!r} in {text!r}")
    return host, int(port_text)


@dataclass(frozen=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI; user, password and params are kept escaped."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: tuple[UriParam, ...] = ()
    headers: tuple[UriHeader, ...] = ()
    scheme: str = "sip"

    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, sep, rest = text.partition(":")
        scheme = scheme.lower()
        if not sep or scheme not in ("sip", "sips"):
            raise SipParseError(f"bad SIP URI {text!r}")
        user = password = None
        if "@" in rest:
            userinfo, _, rest = rest.partition("@")
            user, colon, pw = userinfo.partition(":")
            if not user:
                raise SipParseError(f"bad SIP URI {text!r}: empty user before '@'")
            _check_chars(user, _USER_CHARS, "URI user")
            if colon:
                _check_chars(pw, _PASSWORD_CHARS, "URI password")
                password = pw
        rest, qmark, header_text = rest.partition("?")
        hostport, *param_texts = rest.split(";")
        if not hostport:
            raise SipParseError(f"bad SIP URI {text!r}: no host")
        host, port = parse_hostport(hostport)
        params = []
        for item in param_texts:
            name, eq, value = item.partition("=")
            if not name:
                raise SipParseError(f"bad SIP URI {text!r}: empty parameter")
            _check_chars(item, _PARAM_CHARS | {"="} if eq else _PARAM_CHARS, "URI parameter")
            params.append(UriParam(name, value if eq else None))
        headers = []
        if qmark:
            for item in header_text.split("&"):
                name, eq, value = item.partition("=")
                if not name or not eq:
                    raise SipParseError(f"bad SIP URI {text!r}: bad header {item!r}")
                _check_chars(name + value, _HEADER_CHARS, "URI header")
                headers.append(UriHeader(name, value))
        return cls(host, user, password, port, tuple(params), tuple(headers), scheme)

    def param(self, name: str) -> str | None:
        """Value of a parameter ('' when present without value), None when absent."""
        for p in self.params:
            if p.name.lower() == name.lower():
                return "" if p.value is None else p.value
        return None

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return value.lower() if value else None

    def __str__(self) -> str:
        out = f"{self.scheme}:"
        if self.user is not None:
            out += self.user + (f":{self.password}" if self.password is not None else "") + "@"
        out += self.host + (f":{self.port}" if self.port is not None else "")
        out += "".join(f";{p}" for p in self.params)
        if self.headers:
            out += "?" + "&".join(f"{h.name}={h.value}" for h in self.headers)
        return out


@dataclass(frozen=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966): the number as written plus its parameters."""

    number: str
    params: tuple[UriParam, ...] = ()

    @classmethod
    def parse(cls, text: str) -> TelUri:
        scheme, sep, rest = text.partition(":")
        if not sep or scheme.lower() != "tel":
            raise SipParseError(f"bad tel URI {text!r}")
        number, *param_texts = rest.split(";")
        if not number or any(ch not in _TEL_CHARS for ch in number):
            raise SipParseError(f"bad tel URI {text!r}: bad number {number!r}")
        params = []
        for item in param_texts:
            name, eq, value = item.partition("=")
            if not name:
                raise SipParseError(f"bad tel URI {text!r}: empty parameter")
            _check_chars(item, _PARAM_CHARS | {"="}, "tel URI parameter")
            params.append(UriParam(name, value if eq else None))
        return cls(number, tuple(params))

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    def __str__(self) -> str:
        return "tel:" + self.number + "".join(f";{p}" for p in self.params)


@dataclass(frozen=True)
class AbsoluteUri:
    """Any other scheme (``http:``, ``urn:``, ...): kept opaque, as written."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


@functools.lru_cache(maxsize=4096)
def parse_uri(text: str) -> Uri:
    """Parse any URI found in a request line or name-addr (memoised: URIs repeat from
    message to message and the values are immutable; errors are not cached)."""
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME_RE.match(scheme):
        raise SipParseError(f"bad URI {text!r}: no scheme")
    lowered = scheme.lower()
    if lowered in ("sip", "sips"):
        return SipUri.parse(text)
    if lowered == "tel":
        return TelUri.parse(text)
    if not rest or any(ch in _OPAQUE_FORBIDDEN or ord(ch) < 0x20 for ch in rest):
        raise SipParseError(f"bad URI {text!r}")
    return AbsoluteUri(scheme, rest)
