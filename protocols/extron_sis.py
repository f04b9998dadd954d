"""Sans-IO Extron SIS for switchers and matrices: tie commands, tie reports, view-tie, error codes.

Commands (``1*3!``, ``3!``) are sent bare; responses are CRLF-terminated lines. Tie reports
(``Out03 In01 All``) also arrive unsolicited when someone switches at the front panel.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from protocols.framing import DelimiterFramer

EOL = b"\r\n"
MAX_LINE = 512
MAX_PORT = 999


def sis_framer() -> DelimiterFramer:
    """The framer for a SIS byte stream: CRLF-terminated lines (kept)."""
    return DelimiterFramer(EOL, MAX_LINE)


class TieKind(enum.Enum):
    """What a tie carries; value is the command character, ``label`` the report word."""

    ALL = "!"
    VIDEO = "&"
    AUDIO = "$"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def from_label(cls, label: str) -> TieKind:
        for kind, text in _LABELS.items():
            if text == label:
                return kind
        raise ValueError(f"unknown tie type {label!r} (legal: All, Vid, Aud)")

    @classmethod
    def from_name(cls, name: str) -> TieKind:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown tie type {name!r} (legal: all, video, audio)") from None


_LABELS = {TieKind.ALL: "All", TieKind.VIDEO: "Vid", TieKind.AUDIO: "Aud"}


def _check_port(value: int, what: str, minimum: int) -> None:
    if not minimum <= value <= MAX_PORT:
        raise ValueError(f"{what} must be {minimum}..{MAX_PORT}, got {value}")


def _ascii(data: bytes, what: str) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not ASCII: {data!r}") from None


def _line(data: bytes) -> str:
    """Strip one trailing CRLF (or LF) from a response line."""
    if data.endswith(EOL):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    return _ascii(data, "SIS response")


# --- commands (host -> device) ---------------------------------------------------------

_TIE_RE = re.compile(r"(\d{1,3})\*(\d{1,3})([!&$])")
_VIEW_RE = re.compile(r"(\d{1,3})([!&$])")


@dataclass(frozen=True)
class Tie:
    """Tie ``input`` to ``output`` (input 0 unties): ``1*3!``, ``1*3&``, ``1*3$``."""

    input: int
    output: int
    kind: TieKind = TieKind.ALL

    def __post_init__(self) -> None:
        _check_port(self.input, "input", 0)
        _check_port(self.output, "output", 1)

    @classmethod
    def parse(cls, data: bytes) -> Tie:
        match = _TIE_RE.fullmatch(_ascii(data, "tie command"))
        if match is None:
            raise ValueError(f"tie command must look like '1*3!', got {data!r}")
        return cls(int(match[1]), int(match[2]), TieKind(match[3]))

    def __bytes__(self) -> bytes:
        return f"{self.input}*{self.output}{self.kind.value}".encode("ascii")

    def expected_report(self) -> TieReport:
        return TieReport(self.output, self.input, self.kind)


@dataclass(frozen=True)
class ViewTie:
    """Ask which input feeds ``output``: ``3!`` (answer ``01``)."""

    output: int
    kind: TieKind = TieKind.ALL

    def __post_init__(self) -> None:
        _check_port(self.output, "output", 1)

    @classmethod
    def parse(cls, data: bytes) -> ViewTie:
        match = _VIEW_RE.fullmatch(_ascii(data, "view-tie command"))
        if match is None:
            raise ValueError(f"view-tie command must look like '3!', got {data!r}")
        return cls(int(match[1]), TieKind(match[2]))

    def __bytes__(self) -> bytes:
        return f"{self.output}{self.kind.value}".encode("ascii")


SisCommand = Tie | ViewTie


def parse_command(data: bytes) -> SisCommand:
    """Parse one host command (as a simulator receives it), CR/LF padding allowed."""
    text = data.strip(b"\r\n")
    return Tie.parse(text) if b"*" in text else ViewTie.parse(text)


# --- responses (device -> host) --------------------------------------------------------

_REPORT_RE = re.compile(r"Out(\d{1,3}) In(\d{1,3}) (\w+)")


@dataclass(frozen=True)
class TieReport:
    """``Out03 In01 All``: the reply to a tie, or an unsolicited front-panel change."""

    output: int
    input: int
    kind: TieKind = TieKind.ALL

    def __post_init__(self) -> None:
        _check_port(self.output, "output", 1)
        _check_port(self.input, "input", 0)

    @classmethod
    def parse(cls, data: bytes) -> TieReport:
        match = _REPORT_RE.fullmatch(_line(data))
        if match is None:
            raise ValueError(f"tie report must look like 'Out03 In01 All', got {data!r}")
        return cls(int(match[1]), int(match[2]), TieKind.from_label(match[3]))

    def __bytes__(self) -> bytes:
        return f"Out{self.output:02d} In{self.input:02d} {self.kind.label}".encode() + EOL


@dataclass(frozen=True)
class TieStatus:
    """The answer to a view-tie: the input number (``01``; 0 means untied)."""

    input: int

    def __post_init__(self) -> None:
        _check_port(self.input, "input", 0)

    @classmethod
    def parse(cls, data: bytes) -> TieStatus:
        text = _line(data)
        if not 1 <= len(text) <= 3 or not text.isdigit() or not text.isascii():
            raise ValueError(f"view-tie answer must be 1-3 digits, got {data!r}")
        return cls(int(text))

    def __bytes__(self) -> bytes:
        return f"{self.input:02d}".encode() + EOL


ERROR_REASONS: dict[str, str] = {
    "E01": "invalid input number",
    "E10": "invalid command",
    "E11": "invalid preset number",
    "E12": "invalid output number",
    "E13": "invalid value",
    "E14": "not valid for this configuration",
    "E17": "timeout",
    "E22": "busy",
    "E24": "privilege violation",
    "E25": "device not present",
    "E26": "maximum number of connections exceeded",
}

_ERROR_RE = re.compile(r"E(\d{2})")


@dataclass(frozen=True)
class SisError:
    """``E13``: the device rejected the command; ``code`` is the device's own code."""

    code: str

    def __post_init__(self) -> None:
        if _ERROR_RE.fullmatch(self.code) is None:
            raise ValueError(f"SIS error code must look like 'E13', got {self.code!r}")

    @property
    def reason(self) -> str:
        return ERROR_REASONS.get(self.code, "unknown error")

    @classmethod
    def parse(cls, data: bytes) -> SisError:
        text = _line(data)
        if _ERROR_RE.fullmatch(text) is None:
            raise ValueError(f"SIS error must look like 'E13', got {data!r}")
        return cls(text)

    def __bytes__(self) -> bytes:
        return self.code.encode("ascii") + EOL


@dataclass(frozen=True)
class Notice:
    """Any other line: the copyright banner on connect, ``Reconfig``, date lines."""

    text: str

    @classmethod
    def parse(cls, data: bytes) -> Notice:
        text = _line(data)
        if not text.isprintable():
            raise ValueError(f"SIS line has control characters: {data!r}")
        return cls(text)

    def __bytes__(self) -> bytes:
        return self.text.encode("ascii") + EOL


SisResponse = TieReport | TieStatus | SisError | Notice


def parse_response(data: bytes) -> SisResponse:
    """Parse one response line (CRLF included) into its message type."""
    text = _line(data)
    if text.startswith("Out"):
        return TieReport.parse(data)
    if text.isdigit():
        return TieStatus.parse(data)
    if text[:1] == "E" and text[1:].isdigit():
        return SisError.parse(data)
    if not text:
        raise ValueError("empty SIS line")
    return Notice.parse(data)
