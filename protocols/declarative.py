"""Declarative device protocols, sans-IO: render command frames from templates, match replies.

A *profile* (``devices/profiles/*.yaml``, checked by :mod:`protocols.declarative_profile`)
names the frame encoding (``ascii`` text or ``hex`` bytes), the framing, the checksum, one
template per command, reply and error patterns and the poll queries. This module holds the
compiled pieces: checksums, framers, :class:`Template`, :class:`Pattern` and :class:`Profile`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from protocols.framing import DelimiterFramer, Framer, LengthPrefixFramer, MarkerFramer

Value = int | str
Values = Mapping[str, Value]
Path = tuple[str | int, ...]
#: command name -> the fields its template may use (the driver's capability vocabulary)
Vocabulary = Mapping[str, frozenset[str]]

CHECKSUM_FIELD = "checksum"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(ValueError):
    """A value does not fit its template field (nothing was sent)."""


# --- checksums ---------------------------------------------------------------------------


def _sum8(data: bytes) -> int:
    return sum(data) & 0xFF


def _xor8(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


def _crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS: reflected polynomial 0xA001, initial 0xFFFF ("123456789" -> 0x4B37)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, initial 0xFFFF ("123456789" -> 0x29B1)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


@dataclass(frozen=True)
class ChecksumKind:
    """One checksum algorithm: its size on the wire and its usual byte order."""

    name: str
    size: int
    byteorder: Literal["big", "little"]
    compute: Callable[[bytes], int]


CHECKSUMS: dict[str, ChecksumKind] = {
    k.name: k
    for k in (
        ChecksumKind("sum8", 1, "big", _sum8),
        ChecksumKind("xor8", 1, "big", _xor8),
        # Modbus RTU sends the CRC low byte first
        ChecksumKind("crc16-modbus", 2, "little", _crc16_modbus),
        ChecksumKind("crc16-ccitt", 2, "big", _crc16_ccitt),
    )
}
CHECKSUM_KINDS = ("none", *CHECKSUMS)


@dataclass(frozen=True)
class Checksum:
    """A checksum over ``[start, end)`` of the frame without the checksum's own bytes.

    ``end`` None means "up to the checksum field"; a negative ``end`` counts from the end.
    """

    kind: ChecksumKind
    start: int = 0
    end: int | None = None
    byteorder: Literal["big", "little"] = "big"

    def over(self, body: bytes, at: int) -> int:
        end = at if self.end is None else (self.end if self.end >= 0 else len(body) + self.end)
        if not 0 <= self.start < end <= len(body):
            raise TemplateError(
                f"checksum range {self.start}..{end} does not fit a {len(body)}-byte frame"
            )
        return self.kind.compute(body[self.start : end])

    def to_bytes(self, value: int) -> bytes:
        return value.to_bytes(self.kind.size, self.byteorder)


# --- framing -----------------------------------------------------------------------------


class Spec(BaseModel):
    """A section of a profile as written: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Bytes = Annotated[StrictStr, Field(min_length=1, description="text, or hex bytes ('0D 0A')")]
Converter = Literal["int", "hex", "str"]


class DelimiterFraming(Spec):
    kind: Literal["delimiter"]
    delimiter: Bytes
    max_frame: int = Field(1024, ge=1, le=65536)


class FixedFraming(Spec):
    kind: Literal["fixed"]
    length: int = Field(ge=1, le=4096)
    header: StrictStr = Field("", description="frames start with it; used to resynchronise")


class MarkerFraming(Spec):
    kind: Literal["marker"]
    start: Bytes
    end: Bytes
    max_frame: int = Field(1024, ge=1, le=65536)


class LengthPrefixFraming(Spec):
    kind: Literal["length_prefix"]
    size: Literal[1, 2, 4] = 2
    byteorder: Literal["big", "little"] = "big"
    max_frame: int = Field(1024, ge=1, le=65536)


FramingSpec = Annotated[
    DelimiterFraming | FixedFraming | MarkerFraming | LengthPrefixFraming,
    Field(discriminator="kind"),
]
FRAMING_KINDS = ("delimiter", "fixed", "marker", "length_prefix")


# --- templates and patterns ----------------------------------------------------------------


@dataclass(frozen=True)
class _Literal:
    data: bytes


@dataclass(frozen=True)
class _Field:
    name: str
    spec: str  # ascii: a format spec ("02d"); hex: a wire format ("u16be")


@dataclass(frozen=True)
class _Sum:
    spec: str


@dataclass(frozen=True)
class _Skip:
    count: int


Segment = _Literal | _Field | _Sum | _Skip

_TEXT_SPEC = re.compile(r"(0)?([1-9]\d{0,2})?([dxXs])?")
_TEXT_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_HEX_FORMATS: dict[str, tuple[int, Literal["big", "little"]]] = {
    "u8": (1, "big"),
    "hex1": (1, "big"),
    "u16be": (2, "big"),
    "u16le": (2, "little"),
    "hex2": (2, "big"),
    "u32be": (4, "big"),
    "u32le": (4, "little"),
}
_HEX_TOKEN = re.compile(
    r"\s+|\{(?P<field>[^{}]*)\}|(?P<skip>\?\?)(?:\*(?P<skips>\d+))?"
    r"|(?P<hex>(?:[0-9A-Fa-f]{2})+)(?:\*(?P<times>\d+))?"
)


def checksum_count(segments: Sequence[Segment]) -> int:
    """How many ``{checksum}`` fields a parsed template has."""
    return sum(isinstance(s, _Sum) for s in segments)


def _split_field(body: str) -> tuple[str, str]:
    name, _, spec = body.partition(":")
    if NAME.fullmatch(name) is None:
        raise ValueError(f"bad field name {name!r} in {{{body}}}")
    return name, spec


def parse_text(template: str, charset: str) -> list[Segment]:
    """``<CALL,{layout:02d}>`` -> literal, field, literal (``{{``/``}}`` are braces)."""
    segments: list[Segment] = []
    position = 0
    for match in _TEXT_FIELD.finditer(template):
        if match.start() > position:
            segments.append(_Literal(template[position : match.start()].encode(charset)))
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            segments.append(_Literal(token[0].encode(charset)))
            continue
        if match.group(1) is None:
            raise ValueError(
                f"unbalanced {token!r} at column {match.start() + 1} (write {token * 2})"
            )
        name, spec = _split_field(match.group(1))
        if _TEXT_SPEC.fullmatch(spec) is None:
            raise ValueError(f"bad format {spec!r} for {name!r} (use d, 02d, x, 04X or s)")
        segments.append(_Sum(spec) if name == CHECKSUM_FIELD else _Field(name, spec))
    if position < len(template):
        segments.append(_Literal(template[position:].encode(charset)))
    return segments


def parse_hex(template: str, *, wildcards: bool) -> list[Segment]:
    """``AA BB {layout:u8} 00*9 {checksum}`` -> segments; ``??`` only in patterns."""
    segments: list[Segment] = []
    position = 0
    while position < len(template):
        match = _HEX_TOKEN.match(template, position)
        if match is None or match.end() == position:
            bad = template[position:].split()[0]
            raise ValueError(
                f"bad token {bad!r} at column {position + 1} (expected hex bytes such as AA,"
                " a field {name:u8}, {checksum}" + (", ??" if wildcards else "") + ")"
            )
        position = match.end()
        if match.group("field") is not None:
            name, spec = _split_field(match.group("field"))
            if name == CHECKSUM_FIELD:
                if spec:
                    raise ValueError("{checksum} takes no format in hex templates")
                segments.append(_Sum(""))
            elif spec not in _HEX_FORMATS:
                raise ValueError(
                    f"bad format {spec!r} for {name!r} (legal: {', '.join(_HEX_FORMATS)})"
                )
            else:
                segments.append(_Field(name, spec))
        elif match.group("skip") is not None:
            if not wildcards:
                raise ValueError(
                    f"'??' at column {match.start() + 1}: only reply patterns may skip"
                )
            segments.append(_Skip(int(match.group("skips") or 1)))
        elif match.group("hex") is not None:
            times = int(match.group("times") or 1)
            segments.append(_Literal(bytes.fromhex(match.group("hex")) * times))
    if not segments:
        raise ValueError("empty template")
    return segments


def _as_int(value: Value, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    raise TemplateError(f"{name!r} must be a number, got {value!r}")


def _format_text(value: Value, spec: str, name: str) -> str:
    match = _TEXT_SPEC.fullmatch(spec)
    assert match is not None
    zero, width, kind = match.groups()
    if kind == "s" or (kind is None and isinstance(value, str)):
        text = str(value)
        if width and len(text) > int(width):
            raise TemplateError(f"{name!r}={value!r} is longer than {{{name}:{spec}}} allows")
        return text.rjust(int(width or 0), "0" if zero else " ")
    number = _as_int(value, name)
    if kind in ("x", "X") and number < 0:
        raise TemplateError(f"{name!r}={number} cannot be written in hex")
    text = format(number, spec if kind else spec + "d")
    if width and len(text) > int(width):
        raise TemplateError(f"{name!r}={number} does not fit {{{name}:{spec}}}")
    return text


def _pack(value: Value, spec: str, name: str) -> bytes:
    size, order = _HEX_FORMATS[spec]
    number = _as_int(value, name)
    if not 0 <= number < 1 << (8 * size):
        raise TemplateError(f"{name!r}={number} does not fit {spec} (0..{(1 << (8 * size)) - 1})")
    return number.to_bytes(size, order)


def _segment_size(segment: Segment, checksum: Checksum | None) -> int:
    if isinstance(segment, _Literal):
        return len(segment.data)
    if isinstance(segment, _Skip):
        return segment.count
    if isinstance(segment, _Sum):
        return checksum.kind.size if checksum else 0
    return _HEX_FORMATS[segment.spec][0]


@dataclass(frozen=True)
class Template:
    """A command frame: literal bytes, fields and at most one checksum."""

    source: str
    segments: tuple[Segment, ...]
    encoding: Literal["ascii", "hex"]
    charset: str
    checksum: Checksum | None

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(s.name for s in self.segments if isinstance(s, _Field))

    @property
    def size(self) -> int | None:
        """The rendered length in bytes if it is fixed (hex templates), else None."""
        if self.encoding != "hex":
            return None
        return sum(_segment_size(s, self.checksum) for s in self.segments)

    def render(self, values: Values) -> bytes:
        """The frame for ``values``; raise :class:`TemplateError` if a value does not fit."""
        body = bytearray()
        at: int | None = None
        spec = ""
        for segment in self.segments:
            if isinstance(segment, _Literal):
                body += segment.data
            elif isinstance(segment, _Sum):
                at, spec = len(body), segment.spec
            elif isinstance(segment, _Field):
                if segment.name not in values:
                    raise TemplateError(f"no value for {{{segment.name}}}")
                value = values[segment.name]
                if self.encoding == "hex":
                    body += _pack(value, segment.spec, segment.name)
                else:
                    text = _format_text(value, segment.spec, segment.name)
                    try:
                        body += text.encode(self.charset)
                    except UnicodeEncodeError:
                        raise TemplateError(
                            f"{segment.name!r}={value!r} cannot be written in {self.charset}"
                        ) from None
        if at is None or self.checksum is None:
            return bytes(body)
        digest = self.checksum.over(bytes(body), at)
        if self.encoding == "hex":
            mark = self.checksum.to_bytes(digest)
        else:
            mark = format(digest, spec or f"0{2 * self.checksum.kind.size}X").encode("ascii")
        return bytes(body[:at] + mark + body[at:])


def _convert(raw: str, how: Converter | None) -> Value:
    if how == "str":
        return raw
    if how == "hex":
        return int(raw, 16)
    if how == "int" or re.fullmatch(r"-?\d+", raw):
        return int(raw)
    return raw


def _same(a: Value, b: Value) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    try:
        return _as_int(a, "") == _as_int(b, "")
    except TemplateError:
        return str(a) == str(b)


@dataclass(frozen=True)
class Pattern:
    """What a received frame must look like; named fields are captured.

    A capture whose name is also a value of the request (``known``) must equal it, so a
    reply is matched to the command that caused it (``<SCENE,03,OK>`` answers scene 3 only).
    """

    source: str
    encoding: Literal["ascii", "hex"]
    charset: str
    checksum: Checksum | None
    regex: re.Pattern[str] | None = None
    segments: tuple[Segment, ...] = ()
    convert: Mapping[str, Converter] = field(default_factory=dict)

    @property
    def captures(self) -> frozenset[str]:
        if self.regex is not None:
            return frozenset(n for n in self.regex.groupindex if n != CHECKSUM_FIELD)
        return frozenset(s.name for s in self.segments if isinstance(s, _Field))

    @property
    def size(self) -> int | None:
        if self.regex is not None:
            return None
        return sum(_segment_size(s, self.checksum) for s in self.segments)

    def match(self, frame: bytes, known: Values | None = None) -> dict[str, Value] | None:
        """The captures if ``frame`` fits (checksum and ``known`` values included), else None."""
        captures, _ = self._try(frame, known or {})
        return captures

    def mismatch(self, frame: bytes, known: Values | None = None) -> str:
        """Why ``frame`` does not fit (for the debug log), or "" if it does."""
        return self._try(frame, known or {})[1]

    def _try(self, frame: bytes, known: Values) -> tuple[dict[str, Value] | None, str]:
        if self.regex is not None:
            captures, why = self._match_text(frame)
        else:
            captures, why = self._match_bytes(frame)
        if captures is None:
            return None, why
        for name, value in captures.items():
            if name in known and not _same(value, known[name]):
                return None, f"{name}={value!r}, but the request had {known[name]!r}"
        return captures, ""

    def _match_text(self, frame: bytes) -> tuple[dict[str, Value] | None, str]:
        assert self.regex is not None
        try:
            text = frame.decode(self.charset)
        except UnicodeDecodeError as err:
            return None, f"not {self.charset} text: {err.reason} at byte {err.start}"
        match = self.regex.fullmatch(text)
        if match is None:
            return None, f"{text!r} does not match {self.regex.pattern!r}"
        captures: dict[str, Value] = {}
        for name, raw in match.groupdict().items():
            if raw is None or name == CHECKSUM_FIELD:
                continue
            try:
                captures[name] = _convert(raw, self.convert.get(name))
            except ValueError:
                return None, f"{name}={raw!r} is not {self.convert.get(name)}"
        if self.checksum is not None and match.groupdict().get(CHECKSUM_FIELD) is not None:
            start, end = match.span(CHECKSUM_FIELD)
            at = len(text[:start].encode(self.charset))
            size = len(text[start:end].encode(self.charset))
            body = frame[:at] + frame[at + size :]
            try:
                sent = int(match.group(CHECKSUM_FIELD), 16)
                computed = self.checksum.over(body, at)
            except (ValueError, TemplateError) as err:
                return None, f"checksum: {err}"
            if sent != computed:
                return None, f"checksum {sent:X} but the frame sums to {computed:X}"
        return captures, ""

    def _match_bytes(self, frame: bytes) -> tuple[dict[str, Value] | None, str]:
        size = self.size
        if len(frame) != size:
            return None, f"{len(frame)} bytes, the pattern has {size}"
        captures: dict[str, Value] = {}
        position = 0
        checksum_at: int | None = None
        for segment in self.segments:
            width = _segment_size(segment, self.checksum)
            chunk = frame[position : position + width]
            if isinstance(segment, _Literal) and chunk != segment.data:
                return (
                    None,
                    f"bytes {position}.. are {chunk.hex(' ')}, expected {segment.data.hex(' ')}",
                )
            if isinstance(segment, _Field):
                captures[segment.name] = int.from_bytes(chunk, _HEX_FORMATS[segment.spec][1])
            if isinstance(segment, _Sum):
                checksum_at = position
            position += width
        if checksum_at is not None and self.checksum is not None:
            width = self.checksum.kind.size
            body = frame[:checksum_at] + frame[checksum_at + width :]
            sent = frame[checksum_at : checksum_at + width]
            try:
                computed = self.checksum.to_bytes(self.checksum.over(body, checksum_at))
            except TemplateError as err:
                return None, f"checksum: {err}"
            if sent != computed:
                return None, f"checksum {sent.hex(' ')} but the frame sums to {computed.hex(' ')}"
        return captures, ""


# --- the compiled profile ------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One request and the reply that completes it (no reply: sent and done)."""

    path: str
    send: Template | None
    reply: Pattern | None
    state: Mapping[str, str]


@dataclass(frozen=True)
class Query:
    """A poll request, sent once per combination of its ``each`` ranges."""

    step: Step
    each: Mapping[str, range]

    def requests(self) -> Iterator[dict[str, Value]]:
        names = list(self.each)
        for combo in itertools.product(*(self.each[n] for n in names)):
            yield dict(zip(names, combo, strict=True))


@dataclass(frozen=True)
class Notification:
    """A frame the device sends on its own (front-panel change)."""

    path: str
    pattern: Pattern
    state: Mapping[str, str]


@dataclass(frozen=True)
class ErrorRule:
    """A frame that means the device refused the command; ``code`` is the device's own."""

    path: str
    pattern: Pattern
    code: Template | None
    reason: str
    reasons: Mapping[str, str]

    def describe(self, captures: Values) -> tuple[str, str]:
        if self.code is not None:
            try:
                code = self.code.render(captures).decode(self.code.charset)
            except TemplateError:
                code = "?"
        else:
            code = str(captures.get("code", "error"))
        reason = self.reasons.get(code) or self.reason or "the device refused the command"
        return code, reason


@dataclass(frozen=True)
class Profile:
    """A validated protocol description, ready to render and match frames."""

    name: str
    description: str
    encoding: Literal["ascii", "hex"]
    charset: str
    framing: DelimiterFraming | FixedFraming | MarkerFraming | LengthPrefixFraming
    terminator: bytes
    constants: Mapping[str, Value]
    maps: Mapping[str, Mapping[str, int]]
    absent: Mapping[str, int]
    state: Mapping[str, Any]
    commands: Mapping[str, tuple[Step, ...]]
    queries: tuple[Query, ...]
    notifications: tuple[Notification, ...]
    errors: tuple[ErrorRule, ...]

    def framer(self) -> Framer:
        """A fresh framer for a new connection."""
        spec = self.framing
        if isinstance(spec, DelimiterFraming):
            delimiter = bytes_of(spec.delimiter, self.encoding, self.charset)
            return DelimiterFramer(delimiter, spec.max_frame, keep_delimiter=False)
        if isinstance(spec, FixedFraming):
            header = bytes_of(spec.header, self.encoding, self.charset) if spec.header else b""
            return FixedLengthFramer(spec.length, header, self.recognises)
        if isinstance(spec, MarkerFraming):
            start = bytes_of(spec.start, self.encoding, self.charset)
            return MarkerFramer(
                start, bytes_of(spec.end, self.encoding, self.charset), spec.max_frame
            )
        return LengthPrefixFramer(
            spec.size, spec.max_frame, byteorder=spec.byteorder, include_header=True
        )

    def recognises(self, frame: bytes) -> bool:
        """True if any reply, notification or error pattern of the profile fits ``frame``."""
        patterns = [s.reply for steps in self.commands.values() for s in steps]
        patterns += [q.step.reply for q in self.queries]
        patterns += [n.pattern for n in self.notifications] + [e.pattern for e in self.errors]
        return any(p is not None and p.match(frame) is not None for p in patterns)

    def request(self, step: Step, values: Values) -> bytes:
        """The bytes to send for ``step`` (terminator included)."""
        assert step.send is not None
        return step.send.render({**self.constants, **values}) + self.terminator

    def known(self, values: Values) -> dict[str, Value]:
        """What a reply to a request with ``values`` must agree with."""
        return {**self.constants, **values}

    def error_in(self, frame: bytes, known: Values) -> tuple[str, str] | None:
        """``(code, reason)`` if ``frame`` is an error reply, else None."""
        for rule in self.errors:
            captures = rule.pattern.match(frame, known)
            if captures is not None:
                return rule.describe(captures)
        return None


class FixedLengthFramer(Framer):
    """Frames of ``length`` bytes; with a ``header``, noise before a header is dropped.

    ``accepts`` (optional) judges a candidate frame: one it refuses that holds another header
    is a truncated frame followed by a good one, so framing resumes at that header.
    """

    def __init__(
        self, length: int, header: bytes = b"", accepts: Callable[[bytes], bool] | None = None
    ) -> None:
        super().__init__(max(length, 1))
        self.length = length
        self.header = header
        self.accepts = accepts

    def _next_frame(self) -> bytes | None:
        while True:
            if self.header and not self._align():
                return None
            if len(self._buffer) < self.length:
                return None
            frame = bytes(self._buffer[: self.length])
            restart = frame.find(self.header, 1) if self.header else -1
            if restart > 0 and self.accepts is not None and not self.accepts(frame):
                self.discarded += 1
                del self._buffer[:restart]
                continue
            del self._buffer[: self.length]
            return frame

    def _align(self) -> bool:
        """Drop what precedes the first header; False if no header is buffered yet."""
        begin = self._buffer.find(self.header)
        if begin < 0:
            keep = len(self.header) - 1  # a header may be split across reads
            if len(self._buffer) > keep:
                self.discarded += 1
                del self._buffer[: len(self._buffer) - keep]
            return False
        if begin:
            self.discarded += 1
            del self._buffer[:begin]
        return True


def bytes_of(text: str, encoding: str, charset: str) -> bytes:
    if encoding == "hex":
        cleaned = "".join(text.split())
        if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", cleaned):
            raise ValueError(f"expected hex bytes such as '0D 0A', got {text!r}")
        return bytes.fromhex(cleaned)
    return text.encode(charset)


__all__ = [
    "CHECKSUMS",
    "CHECKSUM_KINDS",
    "FRAMING_KINDS",
    "Checksum",
    "ChecksumKind",
    "DelimiterFraming",
    "ErrorRule",
    "FixedFraming",
    "FixedLengthFramer",
    "LengthPrefixFraming",
    "MarkerFraming",
    "Notification",
    "Pattern",
    "Profile",
    "Query",
    "Spec",
    "Step",
    "Template",
    "TemplateError",
    "bytes_of",
    "checksum_count",
    "parse_hex",
    "parse_text",
]
