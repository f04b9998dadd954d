"""SDP session descriptions (RFC 4566): parse and build audio and video offers and answers."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, replace

from sip.errors import SipParseError

_SESSION_ORDER = "vosiuepcbtrzka"
_MEDIA_ORDER = "micbka"


class Direction(enum.Enum):
    """Media direction attribute (RFC 4566 section 6, RFC 3264 section 6.1)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @classmethod
    def of(cls, send: bool, recv: bool) -> Direction:
        if send and recv:
            return cls.SENDRECV
        if send:
            return cls.SENDONLY
        return cls.RECVONLY if recv else cls.INACTIVE

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def reversed(self) -> Direction:
        """The direction seen from the other side (sendonly <-> recvonly)."""
        return Direction.of(self.receives, self.sends)

    def __and__(self, other: Direction) -> Direction:
        return Direction.of(self.sends and other.sends, self.receives and other.receives)


@dataclass(frozen=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> IN IP4|IP6 <address>``."""

    username: str
    session_id: int
    version: int
    address: str
    address_type: str = "IP4"
    network_type: str = "IN"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.version} "
            f"{self.network_type} {self.address_type} {self.address}"
        )


@dataclass(frozen=True)
class Connection:
    """``c=IN IP4|IP6 <address>``."""

    address: str
    address_type: str = "IP4"
    network_type: str = "IN"

    @classmethod
    def for_address(cls, address: str) -> Connection:
        try:
            version = ipaddress.ip_address(address).version
        except ValueError:
            version = 4  # a host name; RFC 4566 allows FQDNs
        return cls(address, "IP6" if version == 6 else "IP4")

    @property
    def is_null(self) -> bool:
        """RFC 2543 hold: ``c=IN IP4 0.0.0.0``."""
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        return f"{self.network_type} {self.address_type} {self.address}"


@dataclass(frozen=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]``."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


@dataclass(frozen=True)
class Fmtp:
    """``a=fmtp:<pt> <parameters>``."""

    payload_type: int
    parameters: str

    def __str__(self) -> str:
        return f"{self.payload_type} {self.parameters}"


@dataclass(frozen=True)
class SdpLine:
    """A line this module does not interpret (``i=``, ``b=``, other ``a=``), kept as is."""

    kind: str
    value: str


@dataclass(frozen=True)
class MediaDescription:
    """One ``m=`` section with its connection, codecs, ptime and direction."""

    media: str
    port: int
    protocol: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    rtpmaps: tuple[RtpMap, ...] = ()
    fmtps: tuple[Fmtp, ...] = ()
    ptime: int | None = None
    direction: Direction | None = None
    extra: tuple[SdpLine, ...] = ()
    port_count: int | None = None

    @property
    def payload_types(self) -> tuple[int, ...]:
        return tuple(int(f) for f in self.formats if f.isdigit())

    @property
    def rejected(self) -> bool:
        return self.port == 0

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        return next((m for m in self.rtpmaps if m.payload_type == payload_type), None)

    def fmtp(self, payload_type: int) -> str | None:
        return next((f.parameters for f in self.fmtps if f.payload_type == payload_type), None)

    def _codec_order(self) -> list[int]:
        """Payload types in m= line order, then unlisted ones by number."""
        listed = list(dict.fromkeys(self.payload_types))
        others = {m.payload_type for m in self.rtpmaps} | {f.payload_type for f in self.fmtps}
        return listed + sorted(others - set(listed))

    def normalized(self) -> MediaDescription:
        """rtpmap and fmtp attributes in canonical (serialization) order."""
        order = {pt: i for i, pt in enumerate(self._codec_order())}
        return replace(
            self,
            rtpmaps=tuple(sorted(self.rtpmaps, key=lambda m: order[m.payload_type])),
            fmtps=tuple(sorted(self.fmtps, key=lambda f: order[f.payload_type])),
            extra=tuple(sorted(self.extra, key=lambda x: _MEDIA_ORDER.index(x.kind))),
        )

    def lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out = [f"m={self.media} {port} {self.protocol} {' '.join(self.formats)}"]
        out += [f"{x.kind}={x.value}" for x in self.extra if x.kind == "i"]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"{x.kind}={x.value}" for x in self.extra if x.kind in "bk"]
        for pt in self._codec_order():
            out += [f"a=rtpmap:{m}" for m in self.rtpmaps if m.payload_type == pt]
            out += [f"a=fmtp:{f}" for f in self.fmtps if f.payload_type == pt]
        out += [f"a=ptime:{self.ptime}"] if self.ptime is not None else []
        out += [f"a={self.direction.value}"] if self.direction is not None else []
        return out + [f"{x.kind}={x.value}" for x in self.extra if x.kind == "a"]


@dataclass(frozen=True)
class SessionDescription:
    """A whole SDP body; ``bytes(sdp)`` gives CRLF-terminated wire text."""

    origin: Origin
    media: tuple[MediaDescription, ...] = ()
    connection: Connection | None = None
    session_name: str = "-"
    timing: str = "0 0"
    direction: Direction | None = None
    extra: tuple[SdpLine, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SipParseError("SDP is not valid UTF-8") from None
        return _parse(text)

    def media_direction(self, index: int) -> Direction:
        """Effective direction of an ``m=`` section: media level, else session, else sendrecv."""
        return self.media[index].direction or self.direction or Direction.SENDRECV

    def media_connection(self, index: int) -> Connection | None:
        return self.media[index].connection or self.connection

    def bump_version(self) -> SessionDescription:
        """The same session with ``o=`` version + 1, as RFC 3264 section 8 needs for re-offers."""
        return replace(self, origin=replace(self.origin, version=self.origin.version + 1))

    def with_direction(self, direction: Direction) -> SessionDescription:
        """Set every active stream to ``direction`` (hold: sendonly, resume: sendrecv)."""
        media = tuple(m if m.rejected else replace(m, direction=direction) for m in self.media)
        return replace(self, media=media, direction=None)

    def __str__(self) -> str:
        lines = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        lines += [f"{x.kind}={x.value}" for x in self.extra if x.kind in "iuep"]
        lines += [f"c={self.connection}"] if self.connection is not None else []
        lines += [f"{x.kind}={x.value}" for x in self.extra if x.kind == "b"]
        lines.append(f"t={self.timing}")
        lines += [f"{x.kind}={x.value}" for x in self.extra if x.kind in "rzk"]
        lines += [f"a={self.direction.value}"] if self.direction is not None else []
        lines += [f"{x.kind}={x.value}" for x in self.extra if x.kind == "a"]
        for media in self.media:
            lines += media.lines()
        return "".join(line + "\r\n" for line in lines)

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")


def _int(text: str, what: str, limit: int = 2**64 - 1) -> int:
    if not text.isdigit() or not text.isascii() or int(text) > limit:
        raise SipParseError(f"bad SDP {what} {text[:30]!r}")
    return int(text)


def _connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3 or parts[1] not in ("IP4", "IP6"):
        raise SipParseError(f"bad SDP connection {value[:60]!r}")
    address = parts[2].split("/")[0]
    if parts[1] == "IP6" and ":" not in address:
        raise SipParseError(f"bad SDP IPv6 connection address {address!r}")
    return Connection(parts[2], parts[1], parts[0])


def _media_line(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 4:
        raise SipParseError(f"bad SDP media line {value[:60]!r}")
    port_text, _, count = parts[1].partition("/")
    port = _int(port_text, "port", 65535)
    return MediaDescription(
        parts[0],
        port,
        parts[2],
        tuple(parts[3:]),
        port_count=_int(count, "port count") if count else None,
    )


def _attribute(media: MediaDescription, value: str) -> MediaDescription:
    name, _, arg = value.partition(":")
    if name in Direction._value2member_map_ and not arg:
        return replace(media, direction=Direction(name))
    if name == "ptime":
        return replace(media, ptime=_int(arg.strip(), "ptime", 10000))
    if name == "rtpmap":
        pt, _, spec = arg.partition(" ")
        fields = spec.strip().split("/")
        if len(fields) not in (2, 3) or not fields[0]:
            raise SipParseError(f"bad SDP rtpmap {arg[:60]!r}")
        channels = _int(fields[2], "channels", 255) if len(fields) == 3 else None
        rtpmap = RtpMap(
            _int(pt, "payload type", 127), fields[0], _int(fields[1], "clock rate"), channels
        )
        return replace(media, rtpmaps=(*media.rtpmaps, rtpmap))
    if name == "fmtp":
        pt, _, params = arg.partition(" ")
        return replace(
            media, fmtps=(*media.fmtps, Fmtp(_int(pt, "payload type", 127), params.strip()))
        )
    return replace(media, extra=(*media.extra, SdpLine("a", value)))


def _parse(text: str) -> SessionDescription:
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines or lines[0] != "v=0":
        raise SipParseError("SDP must start with 'v=0'")
    origin: Origin | None = None
    name: str | None = None
    timing: str | None = None
    session_extra: list[SdpLine] = []
    connection: Connection | None = None
    direction: Direction | None = None
    media: list[MediaDescription] = []
    for line in lines[1:]:
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SipParseError(f"bad SDP line {line[:60]!r}")
        kind, value = line[0], line[2:]
        if media:
            current = media[-1]
            if kind == "m":
                media.append(_media_line(value))
            elif kind == "c":
                media[-1] = replace(current, connection=_connection(value))
            elif kind == "a":
                media[-1] = _attribute(current, value)
            elif kind in _MEDIA_ORDER:
                media[-1] = replace(current, extra=(*current.extra, SdpLine(kind, value)))
            else:
                raise SipParseError(f"SDP line {kind!r} not allowed in a media section")
            continue
        if kind == "o":
            parts = value.split()
            if len(parts) != 6 or parts[4] not in ("IP4", "IP6"):
                raise SipParseError(f"bad SDP origin {value[:60]!r}")
            origin = Origin(
                parts[0], _int(parts[1], "session id"), _int(parts[2], "session version"),
                parts[5], parts[4], parts[3],
            )  # fmt: skip
        elif kind == "s":
            name = value
        elif kind == "c":
            connection = _connection(value)
        elif kind == "t":
            timing = value
        elif kind == "m":
            media.append(_media_line(value))
        elif kind == "a" and value in Direction._value2member_map_:
            direction = Direction(value)
        elif kind in _SESSION_ORDER:
            session_extra.append(SdpLine(kind, value))
        else:
            raise SipParseError(f"unknown SDP line type {kind!r}")
    if origin is None:
        raise SipParseError("SDP has no 'o=' line")
    if name is None or timing is None:
        raise SipParseError("SDP needs 's=' and 't=' lines")
    for index, section in enumerate(media):
        if section.connection is None and connection is None and section.port:
            raise SipParseError(f"SDP media {index} has no connection address")
    return SessionDescription(
        origin, tuple(m.normalized() for m in media), connection, name, timing, direction,
        tuple(sorted(session_extra, key=lambda x: _SESSION_ORDER.index(x.kind))),
    )  # fmt: skip
