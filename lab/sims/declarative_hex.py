"""The splicing processor's binary protocol (15-byte ``AA BB`` frames, sum8), parsed by hand.

Independent of the template engine on purpose: ``devices/profiles/splicer-hex.yaml``
describes the same protocol, and the tests drive one against the other.
"""

from __future__ import annotations

import struct

from lab.sims.declarative_wall import Dialect, Refused, WallState, Window, dialect

HEADER = b"\xaa\xbb"
FRAME = 15
MAX_SCENE = 64

# error codes (frame EE, d0 = the refused command, d1 = the code)
UNKNOWN, BAD_CHECKSUM, OUT_OF_RANGE, NO_SCENE, NOT_OPEN = 0x01, 0x02, 0x03, 0x04, 0x05
ERROR = 0xEE


def checksum(body: bytes) -> int:
    """Low byte of the sum of ``addr .. d9`` (bytes 2..13 of the frame)."""
    return sum(body) & 0xFF


def frame(address: int, command: int, data: bytes = b"") -> bytes:
    """A complete frame: header, address, command, 10 data bytes (zero-padded), sum."""
    body = bytes([address, command]) + data.ljust(10, b"\x00")
    return HEADER + body + bytes([checksum(body)])


@dialect("splicer-hex")
class HexSplicer(Dialect):
    """Frames in, frames out; frames for another address are ignored (an RS-485 bus)."""

    OUT_OF_RANGE = OUT_OF_RANGE
    NOT_OPEN = NOT_OPEN

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes, state: WallState, error: str | None = None) -> list[bytes]:
        self._buffer += data
        replies: list[bytes] = []
        while True:
            start = self._buffer.find(HEADER)
            if start < 0:
                self._buffer = self._buffer[-1:]  # a header may be split across reads
                return replies
            self._buffer = self._buffer[start:]
            if len(self._buffer) < FRAME:
                return replies
            raw, self._buffer = self._buffer[:FRAME], self._buffer[FRAME:]
            reply = self._frame(raw, state, error)
            if reply is not None:
                replies.append(reply)

    def _frame(self, raw: bytes, state: WallState, error: str | None) -> bytes | None:
        address, command, data = raw[2], raw[3], raw[4:14]
        if address != state.address:
            return None
        if checksum(raw[2:14]) != raw[14]:
            return frame(state.address, ERROR, bytes([command, BAD_CHECKSUM]))
        if error is not None:
            try:
                code = int(error, 16) & 0xFF
            except ValueError:
                code = UNKNOWN
            return frame(state.address, ERROR, bytes([command, code]))
        try:
            return frame(state.address, command | 0x80, self.handle(command, data, state))
        except Refused as refused:
            return frame(state.address, ERROR, bytes([command, int(refused.code)]))

    def handle(self, command: int, data: bytes, state: WallState) -> bytes:
        """One command's data bytes in, the reply's data bytes out."""
        if command == 0x01:
            scene = data[0]
            if not 1 <= scene <= MAX_SCENE:
                raise Refused(OUT_OF_RANGE)
            if scene not in state.scenes:
                raise Refused(NO_SCENE)
            state.windows = dict(state.scenes[scene])
            state.scene = scene
            return bytes([scene])
        if command == 0x02:
            window, source = data[0], data[1]
            x, y, w, h = struct.unpack(">4H", data[2:10])
            self.window_number(window, state)
            if not 1 <= source <= state.inputs or not w or not h:
                raise Refused(OUT_OF_RANGE)
            state.windows = {**state.windows, window: Window(source=source, x=x, y=y, w=w, h=h)}
            return bytes([window, source])
        if command == 0x03:
            window = data[0]
            self.open_window(window, state)
            state.windows = {k: v for k, v in state.windows.items() if k != window}
            return bytes([window])
        if command == 0x04:
            window = data[0]
            current = self.open_window(window, state)
            x, y, w, h = struct.unpack(">4H", data[2:10])
            if not w or not h:
                raise Refused(OUT_OF_RANGE)
            moved = Window(source=current.source, x=x, y=y, w=w, h=h)
            state.windows = {**state.windows, window: moved}
            return bytes([window])
        if command == 0x05:
            window, source = data[0], data[1]
            current = self.open_window(window, state)
            if not 1 <= source <= state.inputs:
                raise Refused(OUT_OF_RANGE)
            state.windows = {**state.windows, window: current.model_copy(update={"source": source})}
            return bytes([window, source])
        if command == 0x10:
            return bytes([state.scene, state.max_windows, state.inputs])
        if command == 0x11:
            window = data[0]
            self.window_number(window, state)
            shown = state.windows.get(window)
            if shown is None:
                return bytes([window, 0])
            return bytes([window, shown.source]) + struct.pack(
                ">4H", shown.x, shown.y, shown.w, shown.h
            )
        raise Refused(UNKNOWN)

    def reports(self, state: WallState, old: WallState) -> list[bytes]:
        if state.scene != old.scene:
            return [
                frame(state.address, 0x90, bytes([state.scene, state.max_windows, state.inputs]))
            ]
        return []


__all__ = ["HexSplicer", "checksum", "frame"]
