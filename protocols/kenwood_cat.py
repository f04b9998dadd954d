"""Sans-IO Kenwood CAT (TS-590/TS-890): ``;``-terminated ASCII commands, answers and error replies.

Each message is a dataclass with ``parse(data)`` and ``__bytes__``; :func:`parse_message`
dispatches one frame (terminator included) to the right class.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Literal

from protocols.framing import DelimiterFramer

TERMINATOR = b";"
MAX_FRAME = 64
FREQUENCY_DIGITS = 11
MAX_FREQUENCY_HZ = 10**FREQUENCY_DIGITS - 1


def cat_framer() -> DelimiterFramer:
    """The framer for a CAT byte stream: frames end with ``;`` (kept)."""
    return DelimiterFramer(TERMINATOR, MAX_FRAME)


class Mode(enum.Enum):
    """Operating mode digit of ``MD`` and ``IF`` (TS-590/TS-890 numbering)."""

    LSB = "1"
    USB = "2"
    CW = "3"
    FM = "4"
    AM = "5"
    FSK = "6"
    CW_R = "7"
    FSK_R = "9"

    @classmethod
    def from_digit(cls, digit: str) -> Mode:
        try:
            return cls(digit)
        except ValueError:
            legal = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown mode digit {digit!r} (legal: {legal})") from None

    @classmethod
    def from_name(cls, name: str) -> Mode:
        key = name.strip().upper().replace("-", "_")
        try:
            return cls[key]
        except KeyError:
            legal = ", ".join(m.name.replace("_", "-") for m in cls)
            raise ValueError(f"unknown mode {name!r} (legal: {legal})") from None

    @property
    def label(self) -> str:
        return self.name.replace("_", "-")


def _body(data: bytes, command: bytes) -> str:
    """Check the command letters and terminator; return the parameter text."""
    if not data.endswith(TERMINATOR):
        raise ValueError(f"{command.decode()}: frame must end with ';', got {data!r}")
    if not data.startswith(command):
        raise ValueError(f"expected a {command.decode()} frame, got {data!r}")
    try:
        return data[len(command) : -1].decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{command.decode()}: parameters are not ASCII: {data!r}") from None


def _digits(text: str, width: int, what: str) -> int:
    if len(text) != width or not text.isdigit() or not text.isascii():
        raise ValueError(f"{what} must be {width} digits, got {text!r}")
    return int(text)


@dataclass(frozen=True)
class Query:
    """A read command without parameters: ``FA;``, ``FB;``, ``MD;``, ``IF;``, ``ID;``, ``PS;``."""

    command: str
    READABLE: ClassVar[frozenset[str]] = frozenset({"FA", "FB", "MD", "IF", "ID", "PS"})

    def __post_init__(self) -> None:
        if self.command not in self.READABLE:
            raise ValueError(f"not a readable CAT command: {self.command!r}")

    @classmethod
    def parse(cls, data: bytes) -> Query:
        if len(data) != 3 or not data.endswith(TERMINATOR):
            raise ValueError(f"query must be two letters and ';', got {data!r}")
        return cls(data[:2].decode("ascii", "replace"))

    def __bytes__(self) -> bytes:
        return self.command.encode("ascii") + TERMINATOR


@dataclass(frozen=True)
class Frequency:
    """``FA`` / ``FB``: VFO A or B frequency in Hz (set command and answer)."""

    vfo: Literal["A", "B"]
    hz: int

    def __post_init__(self) -> None:
        if self.vfo not in ("A", "B"):
            raise ValueError(f"VFO must be 'A' or 'B', got {self.vfo!r}")
        if not 0 <= self.hz <= MAX_FREQUENCY_HZ:
            raise ValueError(f"frequency {self.hz} Hz out of range 0..{MAX_FREQUENCY_HZ}")

    @classmethod
    def parse(cls, data: bytes) -> Frequency:
        vfo: Literal["A", "B"] = "B" if data.startswith(b"FB") else "A"
        body = _body(data, b"F" + vfo.encode())
        return cls(vfo, _digits(body, FREQUENCY_DIGITS, f"F{vfo} frequency"))

    def __bytes__(self) -> bytes:
        return f"F{self.vfo}{self.hz:0{FREQUENCY_DIGITS}d};".encode("ascii")


@dataclass(frozen=True)
class OperatingMode:
    """``MD``: operating mode (set command and answer)."""

    mode: Mode

    @classmethod
    def parse(cls, data: bytes) -> OperatingMode:
        body = _body(data, b"MD")
        if len(body) != 1:
            raise ValueError(f"MD mode must be 1 character, got {body!r}")
        return cls(Mode.from_digit(body))

    def __bytes__(self) -> bytes:
        return b"MD" + self.mode.value.encode("ascii") + TERMINATOR


@dataclass(frozen=True)
class Transmit:
    """``TX``: key the transmitter (``source`` 0..2 on TS-890; omitted on TS-590)."""

    source: int | None = None

    def __post_init__(self) -> None:
        if self.source is not None and not 0 <= self.source <= 2:
            raise ValueError(f"TX source must be 0..2, got {self.source}")

    @classmethod
    def parse(cls, data: bytes) -> Transmit:
        body = _body(data, b"TX")
        if not body:
            return cls()
        return cls(_digits(body, 1, "TX source"))

    def __bytes__(self) -> bytes:
        source = "" if self.source is None else str(self.source)
        return f"TX{source};".encode("ascii")


@dataclass(frozen=True)
class Receive:
    """``RX``: unkey the transmitter."""

    @classmethod
    def parse(cls, data: bytes) -> Receive:
        body = _body(data, b"RX")
        if body:
            raise ValueError(f"RX takes no parameters, got {body!r}")
        return cls()

    def __bytes__(self) -> bytes:
        return b"RX;"


@dataclass(frozen=True)
class Identity:
    """``ID``: the radio's model number (TS-590S 021, TS-590SG 023, TS-890S 024)."""

    model: int

    def __post_init__(self) -> None:
        if not 0 <= self.model <= 999:
            raise ValueError(f"ID model must be 0..999, got {self.model}")

    @classmethod
    def parse(cls, data: bytes) -> Identity:
        return cls(_digits(_body(data, b"ID"), 3, "ID model"))

    def __bytes__(self) -> bytes:
        return f"ID{self.model:03d};".encode("ascii")


@dataclass(frozen=True)
class PowerStatus:
    """``PS``: power on/off (set command and answer)."""

    on: bool

    @classmethod
    def parse(cls, data: bytes) -> PowerStatus:
        body = _body(data, b"PS")
        if body not in ("0", "1"):
            raise ValueError(f"PS status must be '0' or '1', got {body!r}")
        return cls(body == "1")

    def __bytes__(self) -> bytes:
        return b"PS1;" if self.on else b"PS0;"


INFO_LENGTH = 38


@dataclass(frozen=True)
class Information:
    """``IF`` answer: the transceiver status line (38 bytes with ``IF`` and ``;``)."""

    frequency_hz: int
    rit_offset_hz: int
    rit: bool
    xit: bool
    memory_channel: int
    transmitting: bool
    mode: Mode
    vfo: int
    scan: int
    split: bool
    tone: int
    tone_number: int

    @classmethod
    def parse(cls, data: bytes) -> Information:
        body = _body(data, b"IF")
        if len(body) != INFO_LENGTH - 3:
            raise ValueError(f"IF answer must be {INFO_LENGTH} bytes, got {len(data)}: {data!r}")
        if body[11:16] != "     ":
            raise ValueError(f"IF P2 must be 5 spaces, got {body[11:16]!r}")
        sign, offset = body[16], body[17:21]
        if sign not in "+-":
            raise ValueError(f"IF RIT/XIT offset must start with '+' or '-', got {sign!r}")
        rit_offset = _digits(offset, 4, "IF RIT/XIT offset")
        flags = {name: body[i] for name, i in (("rit", 21), ("xit", 22), ("tx", 26), ("split", 30))}
        for name, flag in flags.items():
            if flag not in ("0", "1"):
                raise ValueError(f"IF {name} flag must be '0' or '1', got {flag!r}")
        if body[34] != "0":
            raise ValueError(f"IF P15 must be '0', got {body[34]!r}")
        return cls(
            frequency_hz=_digits(body[0:11], FREQUENCY_DIGITS, "IF frequency"),
            rit_offset_hz=-rit_offset if sign == "-" else rit_offset,
            rit=flags["rit"] == "1",
            xit=flags["xit"] == "1",
            memory_channel=_digits(body[23:26], 3, "IF memory channel"),
            transmitting=flags["tx"] == "1",
            mode=Mode.from_digit(body[27]),
            vfo=_digits(body[28], 1, "IF VFO"),
            scan=_digits(body[29], 1, "IF scan"),
            split=flags["split"] == "1",
            tone=_digits(body[31], 1, "IF tone"),
            tone_number=_digits(body[32:34], 2, "IF tone number"),
        )

    def __bytes__(self) -> bytes:
        sign = "-" if self.rit_offset_hz < 0 else "+"
        text = (
            f"IF{self.frequency_hz:011d}     {sign}{abs(self.rit_offset_hz):04d}"
            f"{int(self.rit)}{int(self.xit)}{self.memory_channel:03d}{int(self.transmitting)}"
            f"{self.mode.value}{self.vfo}{self.scan}{int(self.split)}{self.tone}"
            f"{self.tone_number:02d}0;"
        )
        return text.encode("ascii")


class CatErrorKind(enum.Enum):
    """The three CAT error replies; the value is the reply's own code."""

    SYNTAX = "?"
    COMMUNICATION = "E"
    OVERFLOW = "O"


_ERROR_REASONS = {
    CatErrorKind.SYNTAX: "command syntax error or not executable in the current state",
    CatErrorKind.COMMUNICATION: "communication error (framing or parity)",
    CatErrorKind.OVERFLOW: "receive buffer overflow",
}


@dataclass(frozen=True)
class CatError:
    """An error reply: ``?;``, ``E;`` or ``O;``."""

    kind: CatErrorKind

    @property
    def code(self) -> str:
        return self.kind.value

    @property
    def reason(self) -> str:
        return _ERROR_REASONS[self.kind]

    @classmethod
    def parse(cls, data: bytes) -> CatError:
        if len(data) != 2 or not data.endswith(TERMINATOR):
            raise ValueError(f"error reply must be one character and ';', got {data!r}")
        try:
            return cls(CatErrorKind(chr(data[0])))
        except ValueError:
            raise ValueError(f"unknown CAT error reply {data!r}") from None

    def __bytes__(self) -> bytes:
        return self.kind.value.encode("ascii") + TERMINATOR


CatMessage = (
    Query
    | Frequency
    | OperatingMode
    | Transmit
    | Receive
    | Identity
    | PowerStatus
    | Information
    | CatError
)

_BY_COMMAND: dict[bytes, type[Frequency | OperatingMode | Identity | PowerStatus | Information]] = {
    b"FA": Frequency,
    b"FB": Frequency,
    b"MD": OperatingMode,
    b"ID": Identity,
    b"PS": PowerStatus,
    b"IF": Information,
}


def parse_message(data: bytes) -> CatMessage:
    """Parse one complete frame (``;`` included) in either direction."""
    if not data.endswith(TERMINATOR):
        raise ValueError(f"CAT frame must end with ';', got {data!r}")
    if len(data) == 2:
        return CatError.parse(data)
    command = data[:2]
    if command == b"TX":
        return Transmit.parse(data)
    if command == b"RX":
        return Receive.parse(data)
    if len(data) == 3:
        return Query.parse(data)
    cls = _BY_COMMAND.get(command)
    if cls is None:
        raise ValueError(f"unsupported CAT command {command!r} in {data!r}")
    return cls.parse(data)
