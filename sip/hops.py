"""Where SIP messages go, sans-IO: transport addresses, the ``received``/``rport`` stamp on
a request's top Via (RFC 3261 section 18.2.1, RFC 3581), the address a response goes to
(section 18.2.2) and the next hop of a request (Route or Request-URI; RFC 3263 without
NAPTR/SRV: the host's address records and the default port)."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, replace

from sip.errors import SipTransportError
from sip.headers import Via
from sip.message import Header, SipRequest
from sip.uri import SipUri

logger = logging.getLogger(__name__)

UDP = "UDP"
TCP = "TCP"
TLS = "TLS"
TRANSPORTS = (UDP, TCP, TLS)
DEFAULT_PORTS = {UDP: 5060, TCP: 5060, TLS: 5061}


def bare_host(host: str) -> str:
    """An IPv6 reference without brackets; other hosts unchanged."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def format_host(host: str) -> str:
    """A host as written in a URI or Via: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(bare_host(text).split("%")[0])
    except ValueError:
        return None


def is_ip(host: str) -> bool:
    return _ip(host) is not None


@dataclass(frozen=True, slots=True)
class Address:
    """A transport address: ``UDP``/``TCP``/``TLS``, an IP literal (no brackets), a port."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport != UDP

    @property
    def hostport(self) -> str:
        return f"{format_host(self.host)}:{self.port}"

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    def __str__(self) -> str:
        return f"{self.transport.lower()}:{self.hostport}"


def stamp(via: Via, source: Address, *, force_rport: bool = False) -> Via:
    """``via`` with ``received`` added (when the sent-by host is not the packet's source
    address, or rport is asked for) and an empty ``rport`` filled with the source port
    (RFC 3581); ``force_rport`` treats every Via as asking for rport (NAT traversal)."""
    wants_rport = force_rport or (via.rport_requested and via.rport is None)
    if not wants_rport and via.host == source.host:
        return via  # the common case, without parsing addresses
    sent_by = _ip(via.host)
    new = via
    if wants_rport or sent_by is None or sent_by != _ip(source.host):
        new = new.with_param("received", source.host.split("%")[0])
    if wants_rport:
        new = new.with_param("rport", str(source.port))
    return new


def stamp_via(request: SipRequest, source: Address, *, force_rport: bool = False) -> SipRequest:
    """``request`` with its top Via stamped by ``stamp`` (the request itself if unchanged)."""
    via = request.top_via
    new = stamp(via, source, force_rport=force_rport)
    if new is via:
        return request
    headers = list(request.headers)
    index = next(i for i, h in enumerate(headers) if h.name == "Via")
    headers[index] = Header("Via", str(new))
    return replace(request, headers=tuple(headers))


def response_address(via: Via) -> Address:
    """Where a response goes over an unreliable transport, or over a new connection when
    the request's connection is gone (section 18.2.2, RFC 3581 section 4)."""
    transport = via.transport if via.transport in TRANSPORTS else UDP
    default = DEFAULT_PORTS[transport]
    received = via.received
    if received is not None:
        port = via.rport if via.rport is not None else (via.port or default)
        return Address(transport, bare_host(received), port)
    maddr = next((p.text for p in via.params if p.name.lower() == "maddr"), None)
    if maddr:
        address = _ip(maddr)
        # Never answer to a multicast or broadcast group: a unicast maddr only.
        if address is not None and not address.is_multicast and str(address) != "255.255.255.255":
            return Address(transport, str(address), via.port or default)
        logger.debug("ignoring Via maddr=%s (not a unicast address)", maddr)
    return Address(transport, bare_host(via.host), via.port or default)


@dataclass(frozen=True, slots=True)
class NextHop:
    """Where a request goes: ``host`` may still be a DNS name to resolve."""

    transport: str
    host: str
    port: int
    server_name: str | None = None  # for TLS: the name to verify


def next_hop(request: SipRequest) -> NextHop:
    """The next hop of an outgoing request: the first Route if any, else the Request-URI
    (section 8.1.2); transport from ``transport=`` or ``sips:``, default UDP."""
    target = request.routes[0].uri if request.get("Route") is not None else request.uri
    if not isinstance(target, SipUri):
        raise SipTransportError(f"cannot route to {target}: not a sip: or sips: URI")
    transport = (target.transport or ("tls" if target.scheme == "sips" else "udp")).upper()
    if transport not in TRANSPORTS:
        raise SipTransportError(f"unsupported transport {transport.lower()!r} in {target}")
    maddr = target.param("maddr")
    host = bare_host(maddr or target.host)
    port = target.port or DEFAULT_PORTS[transport]
    return NextHop(transport, host, port, None if is_ip(host) else host)
