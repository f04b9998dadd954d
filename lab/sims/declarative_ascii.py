"""The LCD splicing controller's ASCII protocol (``<SCENE,03>``), parsed by hand.

Independent of the template engine on purpose: ``devices/profiles/lcd-wall-ascii.yaml``
describes the same protocol, and the tests drive one against the other.
"""

from __future__ import annotations

import re

from lab.sims.declarative_wall import Dialect, Refused, WallState, Window, dialect

MAX_LINE = 256
MAX_SCENE = 32
_TWO = re.compile(r"\d{2}")
_FOUR = re.compile(r"\d{4}")

UNKNOWN, OUT_OF_RANGE, NO_SCENE, NOT_OPEN, LOCKED = "01", "02", "03", "04", "05"


def _numbers(args: list[str], widths: tuple[int, ...]) -> list[int]:
    """The arguments as numbers, each exactly as wide as the protocol writes it."""
    if len(args) != len(widths):
        raise Refused(UNKNOWN)
    out = []
    for arg, width in zip(args, widths, strict=True):
        if (_TWO if width == 2 else _FOUR).fullmatch(arg) is None:
            raise Refused(OUT_OF_RANGE)
        out.append(int(arg))
    return out


@dialect("lcd-wall-ascii")
class AsciiWall(Dialect):
    """``<SCENE,03>`` -> ``<SCENE,03,OK>``; lines end in CR, LF or CR LF."""

    OUT_OF_RANGE = OUT_OF_RANGE
    NOT_OPEN = NOT_OPEN

    def __init__(self) -> None:
        self._buffer = b""
        self._overflow = False

    def feed(self, data: bytes, state: WallState, error: str | None = None) -> list[bytes]:
        replies: list[bytes] = []
        self._buffer += data
        while (cut := re.search(rb"[\r\n]", self._buffer)) is not None:
            line, self._buffer = self._buffer[: cut.start()], self._buffer[cut.end() :]
            if self._overflow:
                self._overflow = False  # the tail of an overlong line
                continue
            if line:
                replies.append(self._line(line, state, error))
        if len(self._buffer) > MAX_LINE:
            self._buffer, self._overflow = b"", True
            replies.append(b"<ERR,01>\r\n")
        return replies

    def _line(self, line: bytes, state: WallState, error: str | None) -> bytes:
        if error is not None:
            return f"<ERR,{error}>\r\n".encode()
        try:
            text = line.decode("ascii")
            if not (text.startswith("<") and text.endswith(">")):
                raise Refused(UNKNOWN)
            reply = self.handle(text[1:-1].split(","), state)
        except (UnicodeDecodeError, Refused) as err:
            code = err.code if isinstance(err, Refused) else UNKNOWN
            return f"<ERR,{code}>\r\n".encode()
        return f"<{reply}>\r\n".encode()

    def handle(self, parts: list[str], state: WallState) -> str:
        """One command (``["SCENE", "03"]``); returns the reply without brackets."""
        command, args = parts[0], parts[1:]
        if command == "GET":
            return self._get(args, state)
        if state.locked and command in ("SCENE", "WINOPEN", "WINCLOSE", "WINMOVE", "WINSRC"):
            raise Refused(LOCKED)
        if command == "SCENE":
            (scene,) = _numbers(args, (2,))
            if not 1 <= scene <= MAX_SCENE:
                raise Refused(OUT_OF_RANGE)
            if scene not in state.scenes:
                raise Refused(NO_SCENE)
            state.windows = dict(state.scenes[scene])
            state.scene = scene
            return f"SCENE,{scene:02d},OK"
        if command == "WINOPEN":
            window, source, x, y, w, h = _numbers(args, (2, 2, 4, 4, 4, 4))
            self.window_number(window, state)
            if not 1 <= source <= state.inputs or not w or not h:
                raise Refused(OUT_OF_RANGE)
            state.windows = {**state.windows, window: Window(source=source, x=x, y=y, w=w, h=h)}
            return f"WINOPEN,{window:02d},OK"
        if command == "WINCLOSE":
            (window,) = _numbers(args, (2,))
            self.open_window(window, state)
            state.windows = {k: v for k, v in state.windows.items() if k != window}
            return f"WINCLOSE,{window:02d},OK"
        if command == "WINMOVE":
            window, x, y, w, h = _numbers(args, (2, 4, 4, 4, 4))
            current = self.open_window(window, state)
            if not w or not h:
                raise Refused(OUT_OF_RANGE)
            moved = Window(source=current.source, x=x, y=y, w=w, h=h)
            state.windows = {**state.windows, window: moved}
            return f"WINMOVE,{window:02d},OK"
        if command == "WINSRC":
            window, source = _numbers(args, (2, 2))
            current = self.open_window(window, state)
            if not 1 <= source <= state.inputs:
                raise Refused(OUT_OF_RANGE)
            state.windows = {**state.windows, window: current.model_copy(update={"source": source})}
            return f"WINSRC,{window:02d},{source:02d},OK"
        if command == "ROUTE":
            source, output = _numbers(args, (2, 2))
            if not 0 <= source <= state.inputs or not 1 <= output <= state.outputs:
                raise Refused(OUT_OF_RANGE)
            state.ties = {**state.ties, output: source}
            return f"ROUTE,{source:02d},{output:02d},OK"
        raise Refused(UNKNOWN)

    def _get(self, args: list[str], state: WallState) -> str:
        what, rest = (args[0], args[1:]) if args else ("", [])
        if what == "SCENE" and not rest:
            return f"SCENE,{state.scene:02d}"
        if what == "WIN":
            (window,) = _numbers(rest, (2,))
            self.window_number(window, state)
            shown = state.windows.get(window)
            if shown is None:
                return f"WIN,{window:02d},00,0000,0000,0000,0000"
            return (
                f"WIN,{window:02d},{shown.source:02d},{shown.x:04d},{shown.y:04d},"
                f"{shown.w:04d},{shown.h:04d}"
            )
        if what == "ROUTE":
            (output,) = _numbers(rest, (2,))
            if not 1 <= output <= state.outputs:
                raise Refused(OUT_OF_RANGE)
            return f"ROUTE,{state.ties.get(output, 0):02d},{output:02d}"
        raise Refused(UNKNOWN)

    def reports(self, state: WallState, old: WallState) -> list[bytes]:
        if state.scene != old.scene:
            return [f"<SCENE,{state.scene:02d}>\r\n".encode()]
        return []


__all__ = ["AsciiWall"]
