"""The dial plan, sans-IO: endpoint addresses and the trunks and request URIs that reach them.

``parse_address("pdt:group/1001")`` checks and normalises an address; a ``Dialplan`` built
from the site's trunks turns it into ``Candidate`` s (trunk, request URI, next hop) in the
order to try them, and expands a directory endpoint into its routes for fallback dialling.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import urllib.parse
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from sip.errors import SipParseError
from sip.trunks import (
    CallKind,
    DialRule,
    Scheme,
    Transport,
    Trunk,
    fill_template,
)
from sip.uri import SipUri, TelUri, UriParam

logger = logging.getLogger(__name__)

MAX_ADDRESS = 512
MAX_GLOBAL_DIGITS = 15  # E.164
MAX_DIAL_DIGITS = 32
_SEPARATORS = str.maketrans("", "", " -.()")
_ID_RE = re.compile(r"[0-9]{1,16}\Z")
_CHANNEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")
_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-+]{0,63}\Z")
# RFC 3261 user characters that need no escaping (unreserved + user-unreserved, no ';?').
_USER_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,/"
)
_DEFAULT_PORT = {"udp": 5060, "tcp": 5060, "tls": 5061}
_TRANSPORTS: dict[str, Transport] = {"udp": "udp", "tcp": "tcp", "tls": "tls"}
SCHEMES = ("pstn", "sat", "pdt", "lte", "roip", "sip", "sips", "tel", "user")


class DialplanError(ValueError):
    """Root of the dial plan's errors; ``address`` is the text that was dialled."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(reason)
        self.address = address
        self.reason = reason


class AddressError(DialplanError):
    """The address itself is malformed (``bad PDT address 'pdt:grp/1': ...``)."""


class NoRouteError(DialplanError):
    """The address is well formed but no trunk (or local user) serves it."""


@dataclass(frozen=True)
class Address:
    """A normalised endpoint address.

    ``target`` is the number (``+8613800138000``), talk-group or unit id (``1001``),
    radio channel, local user name, or for ``sip:``/``sips:`` the URI as text (then
    ``uri`` holds it parsed). ``kind`` is set for PDT and LTE only.
    """

    scheme: Scheme
    target: str
    kind: CallKind | None = None
    uri: SipUri | None = None

    def __str__(self) -> str:
        if self.uri is not None:
            return str(self.uri)
        if self.kind is not None:
            return f"{self.scheme.value}:{self.kind.value}/{self.target}"
        return f"{self.scheme.value}:{self.target}"


@dataclass(frozen=True)
class Candidate:
    """One way to reach an address: send ``request_uri`` to ``destination`` over ``trunk``.

    ``trunk`` is None for a local user (``destination`` None: look the user up in the
    registrar) and for a SIP URI dialled directly. ``route`` is the index of the endpoint
    route it came from (0 for a plain address).
    """

    address: Address
    trunk: str | None
    request_uri: SipUri
    destination: tuple[str, int] | None
    transport: Transport
    headers: tuple[tuple[str, str], ...] = ()
    codecs: tuple[str, ...] = ()
    route: int = 0

    def __str__(self) -> str:
        via = f"trunk {self.trunk}" if self.trunk else "direct" if self.destination else "local"
        return f"{self.address} -> {self.request_uri} ({via})"


# -- addresses -------------------------------------------------------------------------------


def parse_address(text: str) -> Address:
    """Check and normalise an endpoint address; raise ``AddressError`` saying what is wrong."""
    if not isinstance(text, str):
        raise AddressError(repr(text), f"an address is text, not {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise AddressError(text, "empty address")
    if len(stripped) > MAX_ADDRESS:
        raise AddressError(text, f"address longer than {MAX_ADDRESS} characters")
    scheme, sep, rest = stripped.partition(":")
    legal = ", ".join(f"{s}:" for s in SCHEMES)
    if not sep:
        raise AddressError(text, f"address {stripped!r} has no scheme (expected one of {legal})")
    scheme = scheme.lower()
    match scheme:
        case "pstn":
            return Address(Scheme.PSTN, _number(text, rest, "PSTN number", allow_service=True))
        case "sat":
            return Address(Scheme.SAT, _number(text, rest, "satellite number"))
        case "pdt" | "lte":
            return _trunked(text, Scheme(scheme), rest)
        case "roip":
            if not _CHANNEL_RE.match(rest):
                raise AddressError(
                    text, f"bad radio channel {rest!r} in {stripped!r}: letters, digits, '_.-'"
                )
            return Address(Scheme.ROIP, rest)
        case "user":
            if not _USER_RE.match(rest):
                raise AddressError(
                    text, f"bad user name {rest!r} in {stripped!r}: letters, digits, '_.-+'"
                )
            return Address(Scheme.USER, rest)
        case "sip" | "sips":
            try:
                uri = SipUri.parse(stripped)
            except SipParseError as err:
                raise AddressError(text, err.reason) from None
            return Address(Scheme.SIP, str(uri), uri=uri)
        case "tel":
            return _tel(text, stripped)
    raise AddressError(text, f"unknown address scheme {scheme + ':'!r} (expected one of {legal})")


def _number(text: str, raw: str, what: str, *, allow_service: bool = False) -> str:
    number = raw.translate(_SEPARATORS)
    if not number:
        raise AddressError(text, f"empty {what} in {text.strip()!r}")
    allowed = "0123456789*#" if allow_service else "0123456789"
    body = number[1:] if number.startswith("+") else number
    bad = next((ch for ch in body if ch not in allowed), None)
    if bad is not None:
        if bad == "+":
            raise AddressError(text, f"bad {what} {raw!r}: '+' may only come first")
        legal = "digits, '*', '#'" if allow_service else "digits"
        raise AddressError(
            text, f"bad {what} {raw!r}: character {bad!r} not allowed ({legal}, a leading '+')"
        )
    if not body:
        raise AddressError(text, f"bad {what} {raw!r}: no digits after '+'")
    if number.startswith("+"):
        if not body.isdigit():
            raise AddressError(text, f"bad {what} {raw!r}: a '+' number has digits only")
        if len(body) > MAX_GLOBAL_DIGITS:
            raise AddressError(
                text, f"bad {what} {raw!r}: a '+' number has at most {MAX_GLOBAL_DIGITS} digits"
            )
    elif len(body) > MAX_DIAL_DIGITS:
        raise AddressError(text, f"bad {what} {raw!r}: longer than {MAX_DIAL_DIGITS} digits")
    return number


def _trunked(text: str, scheme: Scheme, rest: str) -> Address:
    name = scheme.value.upper()
    kind_text, slash, ident = rest.partition("/")
    if not slash:
        if scheme is Scheme.LTE and _ID_RE.match(rest):
            return Address(scheme, rest, CallKind.UNIT)  # a bare LTE number is a terminal
        forms = f"{scheme.value}:group/<id> or {scheme.value}:unit/<id>"
        raise AddressError(text, f"bad {name} address {text.strip()!r}: expected {forms}")
    try:
        kind = CallKind(kind_text.lower())
    except ValueError:
        raise AddressError(
            text,
            f"bad {name} address {text.strip()!r}: {kind_text!r} is not 'group' or 'unit'",
        ) from None
    if not _ID_RE.match(ident):
        raise AddressError(
            text, f"bad {name} address {text.strip()!r}: id {ident!r} must be 1-16 digits"
        )
    return Address(scheme, ident, kind)


def _tel(text: str, stripped: str) -> Address:
    try:
        tel = TelUri.parse(stripped)
    except SipParseError as err:
        raise AddressError(text, err.reason) from None
    for param in tel.params:
        if param.name.lower() in ("ext", "isub"):
            raise AddressError(
                text, f"cannot dial {stripped!r}: tel parameter {param.name!r} is not supported"
            )
    if any(ch.isalpha() for ch in tel.number):
        raise AddressError(text, f"cannot dial {stripped!r}: the number has letters")
    return Address(Scheme.PSTN, _number(text, tel.number, "tel number", allow_service=True))


# -- resolution ------------------------------------------------------------------------------


def _escape_user(user: str) -> str:
    return "".join(ch if ch in _USER_SAFE else f"%{ord(ch):02X}" for ch in user)


def _host_matches(host: str, domains: Sequence[str]) -> bool:
    host = host.lower().rstrip(".")
    for domain in domains:
        if domain.startswith("*."):
            if host.endswith(domain[1:]):
                return True
        elif host == domain:
            return True
    return False


def _prefix_length(rule: DialRule, address: Address) -> int | None:
    """How specifically ``rule`` matches ``address`` (length of the prefix), None if not."""
    if rule.scheme is not address.scheme:
        return None
    if rule.kinds and address.kind not in rule.kinds:
        return None
    if address.scheme is Scheme.SIP:
        assert address.uri is not None
        return 0 if _host_matches(address.uri.host, rule.domains) else None
    if not rule.prefixes:
        return 0
    lengths = [len(p) for p in rule.prefixes if address.target.startswith(p)]
    return max(lengths) if lengths else None


class Dialplan:
    """The site's trunks and endpoint directory, ready to answer "how do I call X?".

    ``domain`` and ``local_hosts`` name this hub: a ``sip:`` URI to them is a local
    user. ``local_users``, when given, are the SIP users that may be called.
    """

    def __init__(
        self,
        trunks: Sequence[Trunk],
        *,
        domain: str,
        endpoints: Mapping[str, Sequence[str]] | None = None,
        local_users: Collection[str] | None = None,
        local_hosts: Collection[str] = (),
    ) -> None:
        self.trunks = {trunk.id: trunk for trunk in trunks}
        self.domain = domain
        self.endpoints = {key: tuple(routes) for key, routes in (endpoints or {}).items()}
        self.local_users = None if local_users is None else frozenset(local_users)
        self._local_hosts = frozenset(h.lower() for h in (domain, *local_hosts))
        self._rules = [
            (index, trunk, rule_index, rule)
            for index, trunk in enumerate(trunks)
            for rule_index, rule in enumerate(trunk.rules)
        ]

    def resolve(self, address: str | Address) -> tuple[Candidate, ...]:
        """The candidates for one address, best first; raise ``AddressError`` or
        ``NoRouteError``."""
        parsed = address if isinstance(address, Address) else parse_address(address)
        text = str(parsed)
        if parsed.scheme is Scheme.USER:
            return (self._local(parsed, parsed.target, text),)
        if parsed.uri is not None and self._is_local(parsed.uri):
            if parsed.uri.user is None:
                raise NoRouteError(text, f"{text!r} names this hub but no user")
            return (self._local(parsed, urllib.parse.unquote(parsed.uri.user), text),)
        matches: list[tuple[tuple[int, int, int, int], Trunk, DialRule]] = []
        for index, trunk, rule_index, rule in self._rules:
            length = _prefix_length(rule, parsed)
            if length is not None:
                matches.append(((rule.priority, -length, index, rule_index), trunk, rule))
        matches.sort(key=lambda item: item[0])
        out: list[Candidate] = []
        reasons: list[str] = []
        seen: set[str] = set()
        for _, trunk, rule in matches:
            if trunk.id in seen:
                continue  # one attempt per trunk: its best rule
            try:
                out.append(self._via_trunk(parsed, trunk, rule))
            except NoRouteError as err:
                reasons.append(err.reason)
                continue
            seen.add(trunk.id)
        if parsed.uri is not None and not matches:
            out.append(self._direct(parsed))
        if not out:
            why = "; ".join(reasons) if reasons else f"no trunk serves {parsed.scheme.value}:"
            if parsed.kind is not None and not reasons:
                why = f"no trunk serves {parsed.scheme.value} {parsed.kind.value} calls"
            raise NoRouteError(text, f"no route to {text!r}: {why}")
        return tuple(out)

    def resolve_endpoint(self, endpoint_id: str) -> tuple[Candidate, ...]:
        """Every route of a directory endpoint in its order, each route's trunks in theirs.

        Routes that nothing serves are skipped (logged); ``NoRouteError`` if none is left.
        """
        routes = self.endpoints.get(endpoint_id)
        if routes is None:
            raise NoRouteError(endpoint_id, f"unknown endpoint {endpoint_id!r}")
        out: list[Candidate] = []
        reasons: list[str] = []
        for index, route in enumerate(routes):
            try:
                found = self.resolve(route)
            except DialplanError as err:
                logger.debug("endpoint %s: route %s skipped: %s", endpoint_id, route, err.reason)
                reasons.append(err.reason)
                continue
            out.extend(dataclasses.replace(c, route=index) for c in found)
        if not out:
            raise NoRouteError(
                endpoint_id, f"endpoint {endpoint_id!r} has no usable route: {'; '.join(reasons)}"
            )
        return tuple(out)

    def unroutable(self) -> list[str]:
        """Endpoint routes that no trunk serves, as lines for ``check-config``."""
        lines = []
        for endpoint_id, routes in self.endpoints.items():
            for route in routes:
                try:
                    self.resolve(route)
                except DialplanError as err:
                    lines.append(f"endpoint {endpoint_id!r}: {err.reason}")
        return lines

    # -- building candidates

    def _is_local(self, uri: SipUri) -> bool:
        return uri.host.lower() in self._local_hosts or (
            uri.port is not None and f"{uri.host}:{uri.port}".lower() in self._local_hosts
        )

    def _local(self, address: Address, user: str, text: str) -> Candidate:
        if self.local_users is not None and user not in self.local_users:
            raise NoRouteError(text, f"no SIP user {user!r} on this hub")
        uri = SipUri(self.domain, user=_escape_user(user))
        return Candidate(address, None, uri, None, "udp")

    def _direct(self, address: Address) -> Candidate:
        uri = address.uri
        assert uri is not None
        transport = _TRANSPORTS.get(uri.transport or "", "udp")
        if uri.scheme == "sips":
            transport = "tls"
        host = uri.host.strip("[]")
        port = uri.port or _DEFAULT_PORT[transport]
        return Candidate(address, None, uri, (host, port), transport)

    def _via_trunk(self, address: Address, trunk: Trunk, rule: DialRule) -> Candidate:
        kind = address.kind.value if address.kind is not None else ""
        if address.uri is not None:
            uri = address.uri
            number = uri.user or ""
        else:
            number = rule.add + address.target[rule.strip :]
            if not number:
                raise NoRouteError(
                    str(address), f"trunk {trunk.id!r}: strip {rule.strip} leaves no number"
                )
            uri = self._request_uri(trunk, rule, _escape_user(number), kind, address)
        headers = tuple(
            (name, fill_template(value, kind=kind, number=number, scheme=address.scheme.value))
            for name, value in rule.headers.items()
        )
        return Candidate(
            address,
            trunk.id,
            uri,
            (trunk.host.strip("[]"), trunk.port),
            trunk.transport,
            headers,
            tuple(trunk.codecs),
        )

    def _request_uri(
        self, trunk: Trunk, rule: DialRule, user: str, kind: str, address: Address
    ) -> SipUri:
        host = rule.host or trunk.uri_host
        port = None
        if host == trunk.host and trunk.port != _DEFAULT_PORT[trunk.transport]:
            port = trunk.port
        extra = {
            name: fill_template(value, kind=kind, number=user, scheme=address.scheme.value)
            for name, value in rule.params.items()
        }
        params: list[UriParam] = []
        if rule.wants_user_phone and "user" not in extra:
            params.append(UriParam("user", "phone"))
        if trunk.transport != "udp" and "transport" not in extra:
            params.append(UriParam("transport", trunk.transport))
        params.extend(UriParam(name, value or None) for name, value in extra.items())
        return SipUri(host, user=user, port=port, params=tuple(params))
