"""Sans-IO PJLink class 1 (TCP 4352): greeting, MD5 authentication, ``%1POWR 1`` / ``%1POWR=OK``.

On connect the display greets with ``PJLINK 0`` (no security) or ``PJLINK 1 <random>``; then
the controller prefixes its first command with ``md5(random + password)`` in hex. A wrong
digest is answered ``PJLINK ERRA`` and the display hangs up. Every message ends with CR.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass

from protocols.framing import DelimiterFramer

CR = b"\r"
PORT = 4352
MAX_LINE = 256  # the spec's longest message is 136 bytes
COMMANDS = ("POWR", "INPT", "AVMT", "ERST", "LAMP", "INST", "NAME", "INF1", "INF2", "INFO", "CLSS")


def pjlink_framer() -> DelimiterFramer:
    return DelimiterFramer(CR, MAX_LINE)


def digest(random: str, password: str) -> str:
    """The authentication prefix: lowercase hex MD5 of the random number then the password."""
    return hashlib.md5((random + password).encode("utf-8"), usedforsecurity=False).hexdigest()


def _ascii(data: bytes, what: str) -> str:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not ASCII: {data!r}") from None
    if not text.isprintable():
        raise ValueError(f"{what} has control characters: {data!r}")
    return text


# --- greeting and authentication (display -> controller) --------------------------------

_RANDOM_RE = re.compile(r"[0-9A-Fa-f]{8}")


@dataclass(frozen=True)
class Greeting:
    """``PJLINK 0`` (no security) or ``PJLINK 1 498e4a67`` (``random`` for the digest)."""

    random: str | None = None

    def __post_init__(self) -> None:
        if self.random is not None and _RANDOM_RE.fullmatch(self.random) is None:
            raise ValueError(f"PJLink random number must be 8 hex digits, got {self.random!r}")

    @property
    def secured(self) -> bool:
        return self.random is not None

    def __bytes__(self) -> bytes:
        text = f"PJLINK 1 {self.random}" if self.random is not None else "PJLINK 0"
        return text.encode("ascii") + CR


@dataclass(frozen=True)
class AuthError:
    """``PJLINK ERRA``: the digest was wrong (or missing); the display closes the connection."""

    def __bytes__(self) -> bytes:
        return b"PJLINK ERRA" + CR


# --- commands (controller -> display) --------------------------------------------------

_BODY_RE = re.compile(r"[A-Z0-9]{4}")


@dataclass(frozen=True)
class Command:
    """``%1POWR 1`` (set) or ``%1POWR ?`` (query); ``bytes`` never carries the digest."""

    body: str
    param: str = "?"
    pjlink_class: int = 1

    def __post_init__(self) -> None:
        if _BODY_RE.fullmatch(self.body) is None:
            raise ValueError(f"PJLink command must be 4 upper-case characters, got {self.body!r}")
        if not 1 <= len(self.param) <= 128 or not self.param.isprintable():
            raise ValueError(f"bad PJLink parameter {self.param!r}")
        if self.pjlink_class not in (1, 2):
            raise ValueError(f"PJLink class must be 1 or 2, got {self.pjlink_class}")

    @property
    def is_query(self) -> bool:
        return self.param == "?"

    def __bytes__(self) -> bytes:
        return f"%{self.pjlink_class}{self.body} {self.param}".encode("ascii") + CR

    def encode(self, auth: str | None = None) -> bytes:
        """The wire bytes, prefixed with the 32-hex-digit digest when ``auth`` is given."""
        return (auth.encode("ascii") if auth else b"") + bytes(self)

    @classmethod
    def parse(cls, data: bytes) -> tuple[str | None, Command]:
        """Parse what a display receives: ``(digest or None, command)``."""
        text = _ascii(data.rstrip(b"\r"), "PJLink command")
        auth = None
        if len(text) >= 32 and re.fullmatch(r"[0-9a-fA-F]{32}", text[:32]):
            auth, text = text[:32].lower(), text[32:]
        match = re.fullmatch(r"%([12])([A-Z0-9]{4}) (.+)", text)
        if match is None:
            raise ValueError(f"PJLink command must look like '%1POWR 1', got {data!r}")
        return auth, cls(match[2], match[3], int(match[1]))


def power(on: bool) -> Command:
    return Command("POWR", "1" if on else "0")


def select_input(source: str) -> Command:
    if re.fullmatch(r"[1-9][1-9A-Z]", source) is None:
        raise ValueError(f"PJLink input must be type 1-9 and number 1-9/A-Z ('31'), got {source!r}")
    return Command("INPT", source)


def query(body: str) -> Command:
    return Command(body, "?")


# --- responses (display -> controller) -------------------------------------------------


class ErrorCode(enum.Enum):
    """The display's own codes; ``ERRA`` is an authentication failure."""

    ERR1 = "undefined command"
    ERR2 = "out of parameter"
    ERR3 = "unavailable time"
    ERR4 = "projector/display failure"
    ERRA = "authorization error"


@dataclass(frozen=True)
class Response:
    """``%1POWR=OK``, ``%1POWR=1``, ``%1INPT=ERR3``; ``data`` is what follows ``=``."""

    body: str
    data: str
    pjlink_class: int = 1

    def __post_init__(self) -> None:
        if _BODY_RE.fullmatch(self.body) is None:
            raise ValueError(f"PJLink response must name a 4-character command: {self.body!r}")

    @property
    def error(self) -> ErrorCode | None:
        return ErrorCode.__members__.get(self.data)

    @property
    def ok(self) -> bool:
        return self.data == "OK"

    def __bytes__(self) -> bytes:
        return f"%{self.pjlink_class}{self.body}={self.data}".encode("ascii") + CR

    @classmethod
    def parse(cls, data: bytes) -> Response:
        text = _ascii(data.rstrip(b"\r"), "PJLink response")
        match = re.fullmatch(r"%([12])([A-Z0-9]{4})=(.*)", text)
        if match is None:
            raise ValueError(f"PJLink response must look like '%1POWR=OK', got {data!r}")
        return cls(match[2], match[3], int(match[1]))


PjlinkMessage = Greeting | AuthError | Response


def parse_message(data: bytes) -> PjlinkMessage:
    """Parse one line from a display (CR included); raise ``ValueError`` for anything else."""
    text = _ascii(data.rstrip(b"\r"), "PJLink line")
    if text == "PJLINK ERRA":
        return AuthError()
    if text.startswith("PJLINK "):
        match = re.fullmatch(r"PJLINK (0|1 ([0-9A-Fa-f]{8}))", text)
        if match is None:
            raise ValueError(f"PJLink greeting must be 'PJLINK 0' or 'PJLINK 1 <8 hex>': {data!r}")
        return Greeting(match[2])
    return Response.parse(data)


# --- typed answers --------------------------------------------------------------------------


class PowerState(enum.Enum):
    OFF = "0"  # standby
    ON = "1"
    COOLING = "2"
    WARMING = "3"

    @property
    def label(self) -> str:
        return self.name.lower()


def parse_power(data: str) -> PowerState:
    try:
        return PowerState(data)
    except ValueError:
        raise ValueError(f"POWR answer must be 0-3, got {data!r}") from None


ERST_PARTS = ("fan", "lamp", "temperature", "cover", "filter", "other")
ERST_LEVELS = {"0": "ok", "1": "warning", "2": "error"}


def parse_error_status(data: str) -> dict[str, str]:
    """``ERST`` answer ``000020`` -> ``{fan: ok, ..., filter: error, other: ok}``."""
    if len(data) != len(ERST_PARTS) or any(c not in ERST_LEVELS for c in data):
        raise ValueError(f"ERST answer must be 6 digits 0-2, got {data!r}")
    return {part: ERST_LEVELS[c] for part, c in zip(ERST_PARTS, data, strict=True)}


@dataclass(frozen=True)
class Lamp:
    hours: int
    on: bool


def parse_lamps(data: str) -> list[Lamp]:
    """``LAMP`` answer ``12345 1 678 0`` -> two lamps (hours, lit)."""
    words = data.split(" ")
    if not words or len(words) % 2 or len(words) > 16:
        raise ValueError(f"LAMP answer must be pairs of 'hours on', got {data!r}")
    lamps = []
    for hours, lit in zip(words[::2], words[1::2], strict=True):
        if not hours.isdigit() or len(hours) > 5 or lit not in ("0", "1"):
            raise ValueError(f"bad LAMP pair {hours!r} {lit!r} in {data!r}")
        lamps.append(Lamp(int(hours), lit == "1"))
    return lamps


def parse_inputs(data: str) -> list[str]:
    """``INST`` answer ``11 12 31`` -> ``["11", "12", "31"]``."""
    inputs = data.split(" ") if data else []
    for item in inputs:
        if re.fullmatch(r"[1-9][1-9A-Z]", item) is None:
            raise ValueError(f"bad input {item!r} in INST answer {data!r}")
    return inputs


__all__ = [
    "ERST_PARTS",
    "PORT",
    "AuthError",
    "Command",
    "ErrorCode",
    "Greeting",
    "Lamp",
    "PjlinkMessage",
    "PowerState",
    "Response",
    "digest",
    "parse_error_status",
    "parse_inputs",
    "parse_lamps",
    "parse_message",
    "parse_power",
    "pjlink_framer",
    "power",
    "query",
    "select_input",
]
