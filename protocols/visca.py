"""Sans-IO Sony VISCA for PTZ cameras, on serial (``8x .. FF``) and over IP (UDP 52381).

A command is answered by an ACK (``y0 4z FF``, socket z) and, once done, a completion
(``y0 5z FF``); an inquiry by ``y0 50 <data> FF``; a failure by ``y0 6z <code> FF``. VISCA over
IP wraps each message in an 8-byte header: payload type, payload length, sequence number.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from protocols.framing import DelimiterFramer, Framer

TERMINATOR = 0xFF
MAX_MESSAGE = 16  # the longest VISCA packet
BROADCAST = 8
IP_PORT = 52381
IP_HEADER = struct.Struct(">HHI")
MAX_SEQUENCE = 0xFFFFFFFF


def serial_framer() -> DelimiterFramer:
    """Serial VISCA: every packet ends with ``FF`` (data bytes never reach 0xFF)."""
    return DelimiterFramer(bytes([TERMINATOR]), MAX_MESSAGE)


class DatagramFramer(Framer):
    """VISCA over IP: one datagram is one message; nothing is carried over to the next."""

    def feed(self, data: bytes) -> list[bytes]:
        return [bytes(data)] if data else []

    def _next_frame(self) -> bytes | None:  # pragma: no cover - feed is overridden
        return None


def _check_address(address: int) -> None:
    if not 1 <= address <= BROADCAST:
        raise ValueError(f"VISCA address must be 1..7 (8 = broadcast), got {address}")


def _check_body(body: bytes) -> None:
    if not body or len(body) > MAX_MESSAGE - 2:
        raise ValueError(f"VISCA body must be 1..{MAX_MESSAGE - 2} bytes, got {len(body)}")
    if TERMINATOR in body:
        raise ValueError(f"VISCA body may not contain FF: {body.hex(' ')}")


def nibbles(value: int, count: int) -> bytes:
    """``0x1234`` in 4 nibbles -> ``01 02 03 04`` (negative values as two's complement)."""
    value &= (1 << (4 * count)) - 1
    return bytes((value >> (4 * (count - 1 - i))) & 0x0F for i in range(count))


def from_nibbles(data: bytes, *, signed: bool = False) -> int:
    """Inverse of :func:`nibbles`: ``01 02 03 04`` -> ``0x1234``."""
    if any(b > 0x0F for b in data):
        raise ValueError(f"expected nibbles 00-0F, got {data.hex(' ')}")
    value = 0
    for byte in data:
        value = (value << 4) | byte
    bits = 4 * len(data)
    if signed and bits and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


# --- controller -> camera ------------------------------------------------------------------


class Category(enum.IntEnum):
    COMMAND = 0x01
    INQUIRY = 0x09


@dataclass(frozen=True)
class Packet:
    """``8x <body> FF``: a command (body ``01 ..``) or inquiry (``09 ..``) to camera ``address``."""

    address: int
    body: bytes

    def __post_init__(self) -> None:
        _check_address(self.address)
        _check_body(self.body)

    @property
    def is_inquiry(self) -> bool:
        return self.body[0] == Category.INQUIRY

    def __bytes__(self) -> bytes:
        return bytes([0x80 | self.address]) + self.body + bytes([TERMINATOR])

    @classmethod
    def parse(cls, data: bytes) -> Packet:
        """Parse what a camera receives."""
        if len(data) < 3 or data[-1] != TERMINATOR:
            raise ValueError(f"VISCA packet must be 8x .. FF, got {data.hex(' ')}")
        header = data[0]
        if header & 0xF0 != 0x80 or not 1 <= header & 0x0F <= BROADCAST:
            raise ValueError(f"VISCA command header must be 81..88, got {header:02X}")
        return cls(header & 0x0F, bytes(data[1:-1]))


class PanDirection(enum.IntEnum):
    LEFT = 0x01
    RIGHT = 0x02
    STOP = 0x03


class TiltDirection(enum.IntEnum):
    UP = 0x01
    DOWN = 0x02
    STOP = 0x03


MAX_PAN_SPEED = 0x18
MAX_TILT_SPEED = 0x17


def pan_tilt_drive(
    address: int, pan: int, tilt: int, pan_speed: int = 8, tilt_speed: int = 8
) -> Packet:
    """``8x 01 06 01 VV WW 0p 0t FF``; ``pan`` -1 left / 1 right, ``tilt`` 1 up / -1 down."""
    if not 1 <= pan_speed <= MAX_PAN_SPEED or not 1 <= tilt_speed <= MAX_TILT_SPEED:
        raise ValueError(f"speeds must be 1..18h / 1..17h, got {pan_speed}, {tilt_speed}")
    p = {-1: PanDirection.LEFT, 1: PanDirection.RIGHT, 0: PanDirection.STOP}.get(pan)
    t = {1: TiltDirection.UP, -1: TiltDirection.DOWN, 0: TiltDirection.STOP}.get(tilt)
    if p is None or t is None:
        raise ValueError(f"pan and tilt must be -1, 0 or 1, got {pan}, {tilt}")
    return Packet(address, bytes([0x01, 0x06, 0x01, pan_speed, tilt_speed, p, t]))


def home(address: int) -> Packet:
    return Packet(address, bytes([0x01, 0x06, 0x04]))


class ZoomAction(enum.IntEnum):
    STOP = 0x00
    TELE = 0x02  # zoom in
    WIDE = 0x03  # zoom out


def zoom(address: int, action: ZoomAction) -> Packet:
    """``8x 01 04 07 0p FF``: stop, tele (in) or wide (out) at standard speed."""
    return Packet(address, bytes([0x01, 0x04, 0x07, int(action)]))


class MemoryAction(enum.IntEnum):
    RESET = 0x00
    SET = 0x01
    RECALL = 0x02


MAX_PRESET = 0x7F


def memory(address: int, action: MemoryAction, preset: int) -> Packet:
    """``8x 01 04 3F 0n pp FF``: reset, set (store) or recall preset ``pp``."""
    if not 0 <= preset <= MAX_PRESET:
        raise ValueError(f"preset must be 0..{MAX_PRESET}, got {preset}")
    return Packet(address, bytes([0x01, 0x04, 0x3F, int(action), preset]))


def power(address: int, on: bool) -> Packet:
    return Packet(address, bytes([0x01, 0x04, 0x00, 0x02 if on else 0x03]))


def if_clear(address: int) -> Packet:
    """``8x 01 00 01 FF``: clear the camera's command buffers (answered by a completion)."""
    return Packet(address, bytes([0x01, 0x00, 0x01]))


POWER_INQUIRY = bytes([0x09, 0x04, 0x00])
PAN_TILT_INQUIRY = bytes([0x09, 0x06, 0x12])
ZOOM_INQUIRY = bytes([0x09, 0x04, 0x47])


def inquiry(address: int, body: bytes) -> Packet:
    return Packet(address, body)


# --- camera -> controller ------------------------------------------------------------------


ERROR_REASONS: dict[int, str] = {
    0x01: "message length error",
    0x02: "syntax error",
    0x03: "command buffer full",
    0x04: "command canceled",
    0x05: "no socket (to be canceled)",
    0x41: "command not executable",
}


def _reply_header(address: int) -> int:
    return 0x80 | (address << 4)


@dataclass(frozen=True)
class Ack:
    """``y0 4z FF``: the command was accepted into socket ``socket``."""

    address: int
    socket: int

    def __bytes__(self) -> bytes:
        return bytes([_reply_header(self.address), 0x40 | self.socket, TERMINATOR])


@dataclass(frozen=True)
class Completion:
    """``y0 5z FF`` (a command done in socket z) or ``y0 50 <data> FF`` (an inquiry answer)."""

    address: int
    socket: int
    data: bytes = b""

    def __bytes__(self) -> bytes:
        return bytes([_reply_header(self.address), 0x50 | self.socket]) + self.data + b"\xff"


@dataclass(frozen=True)
class ViscaError:
    """``y0 6z ee FF``: the camera's own error code ``ee`` (``02`` syntax, ``41`` not now...)."""

    address: int
    socket: int
    code: int

    @property
    def reason(self) -> str:
        return ERROR_REASONS.get(self.code, "unknown error")

    @property
    def device_code(self) -> str:
        return f"{self.code:02X}"

    def __bytes__(self) -> bytes:
        header = _reply_header(self.address)
        return bytes([header, 0x60 | self.socket, self.code, TERMINATOR])


@dataclass(frozen=True)
class Notice:
    """Any other camera message: address set ``88 30 0w FF``, network change ``y0 38 FF``."""

    data: bytes = field(default=b"")

    def __bytes__(self) -> bytes:
        return self.data


Reply = Ack | Completion | ViscaError | Notice


def parse_reply(data: bytes) -> Reply:
    """Parse one camera message (``FF`` included); raise ``ValueError`` for anything else."""
    if len(data) < 3 or data[-1] != TERMINATOR:
        raise ValueError(f"VISCA reply must be y0 .. FF (3+ bytes), got {data.hex(' ')}")
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"VISCA reply longer than {MAX_MESSAGE} bytes: {data.hex(' ')}")
    header, kind = data[0], data[1]
    if header == 0x80 | BROADCAST:
        return Notice(bytes(data))  # a broadcast (88 ..): address set, IF_Clear echo
    address = (header >> 4) - 8
    if header & 0x0F or not 1 <= address <= 7:
        raise ValueError(f"VISCA reply header must be 90..F0 or 88, got {header:02X}")
    socket, body = kind & 0x0F, data[2:-1]
    if kind & 0xF0 == 0x40 and not body:
        return Ack(address, socket)
    if kind & 0xF0 == 0x50:
        return Completion(address, socket, bytes(body))
    if kind & 0xF0 == 0x60 and len(body) == 1:
        return ViscaError(address, socket, body[0])
    return Notice(bytes(data))


# --- typed inquiry answers ----------------------------------------------------------------


def parse_power(data: bytes) -> bool:
    """Power inquiry answer ``02`` (on) / ``03`` (standby)."""
    if data not in (b"\x02", b"\x03"):
        raise ValueError(f"power answer must be 02 or 03, got {data.hex(' ')}")
    return data == b"\x02"


def parse_pan_tilt(data: bytes) -> tuple[int, int]:
    """Pan-tilt position answer ``0w 0w 0w 0w 0z 0z 0z 0z`` -> signed (pan, tilt)."""
    if len(data) != 8:
        raise ValueError(f"pan-tilt answer must be 8 nibbles, got {data.hex(' ')}")
    return from_nibbles(data[:4], signed=True), from_nibbles(data[4:], signed=True)


def parse_zoom(data: bytes) -> int:
    """Zoom position answer ``0p 0q 0r 0s`` -> 0 (wide) .. 0x4000 (tele)."""
    if len(data) != 4:
        raise ValueError(f"zoom answer must be 4 nibbles, got {data.hex(' ')}")
    return from_nibbles(data)


# --- VISCA over IP -------------------------------------------------------------------------


class PayloadType(enum.IntEnum):
    COMMAND = 0x0100
    INQUIRY = 0x0110
    REPLY = 0x0111
    DEVICE_SETTING = 0x0120
    CONTROL = 0x0200
    CONTROL_REPLY = 0x0201


CONTROL_RESET = b"\x01"
CONTROL_ERRORS = {b"\x0f\x01": "abnormality in the sequence number", b"\x0f\x02": "bad message"}


@dataclass(frozen=True)
class IpMessage:
    """One VISCA-over-IP datagram: header (type, length, sequence) and payload."""

    payload_type: PayloadType
    sequence: int
    payload: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.sequence <= MAX_SEQUENCE:
            raise ValueError(f"sequence number must be 0..{MAX_SEQUENCE}, got {self.sequence}")
        if not 1 <= len(self.payload) <= MAX_MESSAGE:
            raise ValueError(f"payload must be 1..{MAX_MESSAGE} bytes, got {len(self.payload)}")

    def __bytes__(self) -> bytes:
        header = IP_HEADER.pack(int(self.payload_type), len(self.payload), self.sequence)
        return header + self.payload

    @classmethod
    def parse(cls, data: bytes) -> IpMessage:
        if len(data) < IP_HEADER.size + 1:
            raise ValueError(f"VISCA-over-IP datagram too short ({len(data)} bytes)")
        kind, length, sequence = IP_HEADER.unpack_from(data)
        payload = data[IP_HEADER.size :]
        if length != len(payload):
            raise ValueError(f"payload length field says {length}, datagram has {len(payload)}")
        try:
            payload_type = PayloadType(kind)
        except ValueError:
            raise ValueError(f"unknown VISCA-over-IP payload type {kind:04X}") from None
        return cls(payload_type, sequence, bytes(payload))

    @classmethod
    def wrap(cls, packet: Packet, sequence: int) -> IpMessage:
        """A camera packet as a datagram; over IP the address byte is always 81."""
        kind = PayloadType.INQUIRY if packet.is_inquiry else PayloadType.COMMAND
        return cls(kind, sequence, bytes(Packet(1, packet.body)))

    @classmethod
    def reset(cls, sequence: int = 0) -> IpMessage:
        """``02 00 00 01 <seq> 01``: RESET the camera's sequence number counter."""
        return cls(PayloadType.CONTROL, sequence, CONTROL_RESET)


__all__ = [
    "ERROR_REASONS",
    "IP_PORT",
    "PAN_TILT_INQUIRY",
    "POWER_INQUIRY",
    "ZOOM_INQUIRY",
    "Ack",
    "Completion",
    "DatagramFramer",
    "IpMessage",
    "MemoryAction",
    "Notice",
    "Packet",
    "PayloadType",
    "Reply",
    "ViscaError",
    "ZoomAction",
    "from_nibbles",
    "home",
    "if_clear",
    "inquiry",
    "memory",
    "nibbles",
    "pan_tilt_drive",
    "parse_pan_tilt",
    "parse_power",
    "parse_reply",
    "parse_zoom",
    "power",
    "serial_framer",
    "zoom",
]
