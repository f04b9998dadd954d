"""Sans-IO Kramer Protocol 3000: ``#ROUTE 1,1,3`` commands, ``~01@ROUTE 1,1,3 OK`` replies.

Host messages start with ``#`` (optionally ``#nn@`` to address a machine on a shared bus) and
end with CR; device messages start with ``~nn@`` and end with CR LF. Errors are
``~nn@ERR 003`` (general) or ``~nn@ROUTE ERR 003`` (for a command). A route change made at the
front panel or by another controller is announced unsolicited, without ``OK``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from protocols.framing import DelimiterFramer

CR = b"\r"
CRLF = b"\r\n"
MAX_LINE = 512  # the device's own input limit is 64 characters; its answers can be longer
MAX_PORT = 999
MAX_MACHINE = 255


def p3k_framer() -> DelimiterFramer:
    """Device lines end with CR LF; cut at LF (a lone CR is stripped by the parser)."""
    return DelimiterFramer(b"\n", MAX_LINE)


class Layer(enum.IntEnum):
    """``ROUTE`` layer numbers (signal types) of Protocol 3000."""

    VIDEO = 1
    AUDIO = 2
    DATA = 3
    IR = 4
    USB = 5


ERROR_REASONS: dict[int, str] = {
    0: "no error",
    1: "protocol syntax error",
    2: "command not available",
    3: "parameter out of range",
    4: "unauthorized access",
    5: "internal firmware error",
    6: "protocol busy",
    7: "wrong CRC",
    8: "timed out",
    10: "not enough space for data",
    11: "not enough space in the file system",
    12: "file does not exist",
    13: "file cannot be created",
    14: "file cannot be opened",
    15: "feature not supported",
    21: "packet CRC error",
    22: "packet number not expected (missing packet)",
    23: "packet size is wrong",
    30: "EDID corrupted",
    31: "device specific error",
    32: "file has the same CRC (not changed)",
    33: "wrong operation mode",
    34: "device/chip not initialized",
}


def error_code(code: int) -> str:
    """The device's own code as written on the wire: ``ERR 003``."""
    return f"ERR {code:03d}"


def _ascii(data: bytes, what: str) -> str:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not ASCII: {data!r}") from None
    if not text.isprintable():
        raise ValueError(f"{what} has control characters: {data!r}")
    return text


def _check_machine(machine: int | None) -> None:
    if machine is not None and not 0 <= machine <= MAX_MACHINE:
        raise ValueError(f"machine number must be 0..{MAX_MACHINE}, got {machine}")


_NAME = r"[A-Za-z][A-Za-z0-9\-_]*\??"
_NAME_RE = re.compile(_NAME)


# --- host -> device ----------------------------------------------------------------------


@dataclass(frozen=True)
class P3kCommand:
    """``#ROUTE 1,1,3`` (``name`` ``ROUTE``, ``params`` ``("1","1","3")``); ``name`` "" is ``#``."""

    name: str
    params: tuple[str, ...] = ()
    machine: int | None = None  # address ``#nn@`` for a device on a shared RS-485 bus

    def __post_init__(self) -> None:
        _check_machine(self.machine)
        if self.name and _NAME_RE.fullmatch(self.name) is None:
            raise ValueError(f"not a Protocol 3000 command name: {self.name!r}")
        for param in self.params:
            if any(c in param for c in ",|\r\n#~") or not param.isprintable():
                raise ValueError(f"bad parameter {param!r} for {self.name}")

    @classmethod
    def handshake(cls, machine: int | None = None) -> P3kCommand:
        return cls("", (), machine)

    def body(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name} {','.join(self.params)}"

    def __bytes__(self) -> bytes:
        address = f"{self.machine:02d}@" if self.machine is not None else ""
        return f"#{address}{self.body()}".encode("ascii") + CR

    @classmethod
    def parse_body(cls, body: str, machine: int | None = None) -> P3kCommand:
        """One command of a chain, without ``#`` and CR: ``ROUTE 1,1,3``, ``ROUTE? 1,1``."""
        text = body.strip()
        if not text:
            return cls.handshake(machine)
        name, _, rest = text.partition(" ")
        if _NAME_RE.fullmatch(name) is None:
            raise ValueError(f"not a Protocol 3000 command: {body!r}")
        params = tuple(p.strip() for p in rest.split(",")) if rest.strip() else ()
        return cls(name.upper(), params, machine)


_HOST_RE = re.compile(r"#(?:(\d{1,3})@)?(.*)")


def parse_commands(line: bytes) -> list[P3kCommand]:
    """Parse one host line (``#`` .. CR, ``|``-chained commands allowed), as a device does."""
    text = _ascii(line.rstrip(b"\r\n"), "Protocol 3000 command")
    match = _HOST_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"Protocol 3000 commands start with '#', got {line!r}")
    machine = int(match[1]) if match[1] is not None else None
    return [P3kCommand.parse_body(part, machine) for part in match[2].split("|")]


def route(layer: Layer | int, output: int, source: int, machine: int | None = None) -> P3kCommand:
    """``#ROUTE layer,output,input`` (input 0 disconnects)."""
    _check_port(output, "output", 1)
    _check_port(source, "input", 0)
    return P3kCommand("ROUTE", (str(int(layer)), str(output), str(source)), machine)


def route_query(layer: Layer | int, output: int, machine: int | None = None) -> P3kCommand:
    """``#ROUTE? layer,output``: which input feeds ``output`` on ``layer``."""
    _check_port(output, "output", 1)
    return P3kCommand("ROUTE?", (str(int(layer)), str(output)), machine)


def _check_port(value: int, what: str, minimum: int) -> None:
    if not minimum <= value <= MAX_PORT:
        raise ValueError(f"{what} must be {minimum}..{MAX_PORT}, got {value}")


# --- device -> host ----------------------------------------------------------------------


@dataclass(frozen=True)
class P3kReply:
    """``~01@ROUTE 1,1,3 OK`` (``ok``), or without ``OK``: a query answer or a change notice.

    The handshake answer ``~01@ OK`` has ``name`` "".
    """

    machine: int | None
    name: str
    params: tuple[str, ...] = ()
    ok: bool = False

    def __post_init__(self) -> None:
        _check_machine(self.machine)

    def __bytes__(self) -> bytes:
        address = f"{self.machine:02d}@" if self.machine is not None else ""
        body = self.name
        if self.params:
            body += " " + ",".join(self.params)
        if self.ok:
            body += " OK"
        return f"~{address}{body}".encode("ascii") + CRLF

    @property
    def command(self) -> str:
        """The command name without the query mark."""
        return self.name.rstrip("?")


@dataclass(frozen=True)
class P3kError:
    """``~01@ROUTE ERR 003`` (``name`` ROUTE) or ``~01@ERR 001`` (``name`` ""): rejected."""

    machine: int | None
    code: int
    name: str = ""

    def __post_init__(self) -> None:
        _check_machine(self.machine)
        if not 0 <= self.code <= 999:
            raise ValueError(f"error code must be 0..999, got {self.code}")

    @property
    def device_code(self) -> str:
        return error_code(self.code)

    @property
    def reason(self) -> str:
        return ERROR_REASONS.get(self.code, "unknown error")

    @property
    def command(self) -> str:
        return self.name.rstrip("?")

    def __bytes__(self) -> bytes:
        address = f"{self.machine:02d}@" if self.machine is not None else ""
        name = f"{self.name} " if self.name else ""
        return f"~{address}{name}{self.device_code}".encode("ascii") + CRLF


@dataclass(frozen=True)
class P3kText:
    """A line without ``~``: the start-up message (``Kramer Electronics LTD. , VS-88HN ...``)."""

    text: str

    def __bytes__(self) -> bytes:
        return self.text.encode("ascii") + CRLF


P3kMessage = P3kReply | P3kError | P3kText

_DEVICE_RE = re.compile(r"~(?:(\d{1,3})@)?(.*)")
_ERROR_RE = re.compile(rf"(?:({_NAME})\s+)?ERR\s?(\d{{3}})", re.IGNORECASE)
_REPLY_RE = re.compile(rf"({_NAME})(?:\s+(.*?))?(?:\s+(OK))?", re.IGNORECASE)


def parse_message(data: bytes) -> P3kMessage:
    """Parse one device line (CR LF included); raise ``ValueError`` for anything else."""
    text = _ascii(data.rstrip(b"\r\n"), "Protocol 3000 line")
    if not text.strip():
        raise ValueError("empty Protocol 3000 line")
    if not text.startswith("~"):
        return P3kText(text)
    match = _DEVICE_RE.fullmatch(text)
    assert match is not None  # '~' then anything
    machine = int(match[1]) if match[1] is not None else None
    if machine is not None and machine > MAX_MACHINE:
        raise ValueError(f"machine number {machine} out of range in {data!r}")
    body = match[2].strip()
    if body.upper() == "OK" or not body:
        return P3kReply(machine, "", (), ok=body.upper() == "OK")
    if error := _ERROR_RE.fullmatch(body):
        return P3kError(machine, int(error[2]), (error[1] or "").upper())
    reply = _REPLY_RE.fullmatch(body)
    if reply is None:
        raise ValueError(f"not a Protocol 3000 reply: {data!r}")
    params = tuple(p.strip() for p in reply[2].split(",")) if reply[2] else ()
    return P3kReply(machine, reply[1].upper(), params, ok=reply[3] is not None)


# --- route reports -------------------------------------------------------------------------


@dataclass(frozen=True)
class TieChange:
    """``layer`` output ``output`` now takes input ``input`` (0: disconnected)."""

    layer: Layer
    output: int
    input: int


_ARROW_RE = re.compile(r"(\d{1,3})>(\d{1,3})")
_ARROW_LAYERS = {"VID": (Layer.VIDEO,), "AUD": (Layer.AUDIO,), "AV": (Layer.VIDEO, Layer.AUDIO)}


def tie_changes(message: P3kReply) -> list[TieChange]:
    """Route changes a reply reports: ``ROUTE 1,2,3`` or ``VID 3>2`` / ``AV 3>2,4>1``.

    Raise ``ValueError`` for a malformed route report; other replies report nothing.
    """
    if message.command == "ROUTE" and len(message.params) == 3:
        try:
            layer, output, source = (int(p) for p in message.params)
            return [TieChange(Layer(layer), output, source)]
        except ValueError:
            raise ValueError(f"bad ROUTE report {message.params!r}") from None
    layers = _ARROW_LAYERS.get(message.command)
    if layers is None:
        return []
    out = []
    for param in message.params:
        arrow = _ARROW_RE.fullmatch(param)
        if arrow is None:
            raise ValueError(f"bad {message.command} report {param!r} (expected IN>OUT)")
        out += [TieChange(layer, int(arrow[2]), int(arrow[1])) for layer in layers]
    return out


@dataclass(frozen=True)
class IoCount:
    """``~01@INFO-IO IN 8,OUT 8``: the matrix size."""

    inputs: int
    outputs: int

    @classmethod
    def from_reply(cls, message: P3kReply) -> IoCount:
        found: dict[str, int] = {}
        for param in message.params:
            key, _, value = param.strip().partition(" ")
            if key.upper() in ("IN", "OUT") and value.strip().isdigit():
                found[key.upper()] = int(value)
        if set(found) != {"IN", "OUT"}:
            raise ValueError(f"INFO-IO answer must be 'IN n,OUT m', got {message.params!r}")
        return cls(found["IN"], found["OUT"])


__all__ = [
    "ERROR_REASONS",
    "IoCount",
    "Layer",
    "P3kCommand",
    "P3kError",
    "P3kMessage",
    "P3kReply",
    "P3kText",
    "TieChange",
    "error_code",
    "p3k_framer",
    "parse_commands",
    "parse_message",
    "route",
    "route_query",
    "tie_changes",
]
