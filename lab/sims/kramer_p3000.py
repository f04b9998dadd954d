"""Kramer Protocol 3000 matrix simulator on TCP (port 5000 on the real device) or a serial pty.

``KramerMatrix`` is the sans-IO core (one ``#...`` line in, ``~01@...`` lines out);
``KramerP3000Simulator`` serves it and announces every route change to the other clients.
"""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from lab.registry import register
from lab.sims.streams import Session, SessionOutbox, StreamSimulator
from lab.simulator import SimState, SimStatus

CRLF = "\r\n"
MAX_COMMAND = 64  # "input string max length: 64 characters"
_COMMAND = re.compile(r"#(?:(\d{1,3})@)?(.*)")
_ARROW = re.compile(r"(\d+|\*)>(\d+|\*)")
LAYERS = {1: "video", 2: "audio"}


class KramerState(SimState):
    model: str = "VS-88UT"
    firmware: str = "1.12.0003"
    machine: int = Field(1, ge=0, le=255, description="machine number, the ~nn@ of replies")
    inputs: int = Field(8, ge=1, le=64)
    outputs: int = Field(8, ge=1, le=64)
    video_ties: dict[int, int] = Field({}, description="output -> input, 0 = disconnected")
    audio_ties: dict[int, int] = Field({}, description="output -> input, 0 = disconnected")
    afv: bool = Field(True, description="audio follows video: a video route switches audio")

    @model_validator(mode="after")
    def _in_range(self) -> KramerState:
        for ties in (self.video_ties, self.audio_ties):
            for out, inp in ties.items():
                if not 1 <= out <= self.outputs or not 0 <= inp <= self.inputs:
                    raise ValueError(f"route {inp}>{out} is outside {self.inputs}x{self.outputs}")
        return self


class P3kError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


SYNTAX, NOT_AVAILABLE, OUT_OF_RANGE = 1, 2, 3


class KramerMatrix:
    """The switcher's command interpreter: ``handle("#ROUTE 1,1,3")`` -> replies, notices."""

    def __init__(self, state: KramerState) -> None:
        self.state = state
        self.notices: list[str] = []  # route changes to announce to the other clients

    def _prefix(self) -> str:
        return f"~{self.state.machine:02d}@"

    def handle(self, line: str) -> list[str]:
        """One host line (without CR); returns the reply lines (no CR LF)."""
        match = _COMMAND.fullmatch(line)
        if match is None or len(line) > MAX_COMMAND:
            return [f"{self._prefix()}ERR {SYNTAX:03d}"]
        if match[1] is not None and int(match[1]) != self.state.machine:
            return []  # addressed to another machine on the bus
        out = []
        for part in match[2].split("|"):
            name, _, rest = part.strip().partition(" ")
            name = name.upper()
            params = [p.strip() for p in rest.split(",")] if rest.strip() else []
            try:
                out.append(self._prefix() + self._command(name, params))
            except P3kError as err:
                label = f"{name} " if name else ""
                out.append(f"{self._prefix()}{label}ERR {err.code:03d}")
        return out

    def _command(self, name: str, params: list[str]) -> str:
        s = self.state
        if name == "":
            return " OK"
        if name == "ROUTE":
            layer, output, source = self._ints(params, 3)
            self._route(layer, output, source)
            return f"ROUTE {layer},{output},{source} OK"
        if name == "ROUTE?":
            layer, output = self._ints(params, 2)
            ties = self._ties(layer)
            self._check(output, 1, s.outputs)
            return f"ROUTE {layer},{output},{ties.get(output, 0)}"
        if name in ("VID", "V", "AUD", "A", "AV"):
            long = {"V": "VID", "A": "AUD"}.get(name, name)
            pairs = [self._arrow(p) for p in params] if params else None
            if not pairs:
                raise P3kError(SYNTAX)
            layers = {"VID": [1], "AUD": [2], "AV": [1, 2]}[long]
            for source, output in pairs:
                for layer in layers:
                    self._route(layer, output, source)
            return f"{long} {','.join(params)} OK"
        if name in ("VID?", "V?", "AUD?", "A?"):
            layer = 2 if name.startswith("A") else 1
            (output,) = self._ints(params, 1)
            self._check(output, 1, s.outputs)
            label = "AUD" if layer == 2 else "VID"
            return f"{label} {self._ties(layer).get(output, 0)}>{output}"
        if name == "INFO-IO?":
            return f"INFO-IO IN {s.inputs},OUT {s.outputs}"
        if name == "MODEL?":
            return f"MODEL {s.model}"
        if name == "VERSION?":
            return f"VERSION {s.firmware}"
        raise P3kError(NOT_AVAILABLE)

    @staticmethod
    def _ints(params: list[str], count: int) -> list[int]:
        if len(params) != count or not all(p.isdigit() for p in params):
            raise P3kError(SYNTAX)
        return [int(p) for p in params]

    @staticmethod
    def _check(value: int, low: int, high: int) -> None:
        if not low <= value <= high:
            raise P3kError(OUT_OF_RANGE)

    def _arrow(self, param: str) -> tuple[int, int]:
        match = _ARROW.fullmatch(param)
        if match is None or "*" in param:
            raise P3kError(SYNTAX)
        return int(match[1]), int(match[2])

    def _ties(self, layer: int) -> dict[int, int]:
        if layer not in LAYERS:
            raise P3kError(OUT_OF_RANGE)
        return self.state.video_ties if layer == 1 else self.state.audio_ties

    def _route(self, layer: int, output: int, source: int) -> None:
        s = self.state
        self._ties(layer)
        self._check(output, 1, s.outputs)
        self._check(source, 0, s.inputs)
        layers = [1, 2] if layer == 1 and s.afv else [layer]
        for each in layers:
            ties = dict(self._ties(each))
            if ties.get(output, 0) != source:
                ties[output] = source
                if each == 1:
                    s.video_ties = ties
                else:
                    s.audio_ties = ties
                self.notices.append(f"{self._prefix()}ROUTE {each},{output},{source}")

    def announcements(self, old: KramerState) -> list[str]:
        """Change notices for routes changed at the front panel (``~01@ROUTE 1,2,5``)."""
        s, out = self.state, []
        for layer, (new, before) in {
            1: (s.video_ties, old.video_ties),
            2: (s.audio_ties, old.audio_ties),
        }.items():
            for output in range(1, s.outputs + 1):
                if new.get(output, 0) != before.get(output, 0):
                    out.append(f"{self._prefix()}ROUTE {layer},{output},{new.get(output, 0)}")
        return out


class LineReader:
    """Cuts the host's byte stream into CR-terminated lines (LF ignored, overlong flagged)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[str]:
        lines = []
        for byte in data:
            if byte == 0x0D:
                lines.append(self._buffer.decode("latin-1"))
                self._buffer.clear()
            elif byte != 0x0A and len(self._buffer) <= 4 * MAX_COMMAND:
                self._buffer.append(byte)
        return lines


class _KramerSession(Session):
    sim: KramerP3000Simulator

    def __init__(self, sim: KramerP3000Simulator, outbox: SessionOutbox) -> None:
        super().__init__(sim, outbox)
        self._reader = LineReader()

    def received(self, data: bytes) -> None:
        sim = self.sim
        for line in self._reader.feed(data):
            if not line.strip():
                continue
            sim.check_crash()
            code = sim.faults.error_code("ERR 005")
            matrix = KramerMatrix(sim.state)
            if code is not None:
                replies = [f"{matrix._prefix()}{_error_text(line, code)}"]
            else:
                replies = matrix.handle(line.strip())
            for reply in replies:
                self.send((reply + CRLF).encode("latin-1"))
            for notice in matrix.notices:
                sim.broadcast((notice + CRLF).encode("latin-1"), skip=self)


def _error_text(line: str, code: str) -> str:
    """An injected error as the device writes it: ``ROUTE ERR 006``."""
    digits = "".join(c for c in code if c.isdigit()) or "5"
    name = line.lstrip("#").split(" ", 1)[0].split("@")[-1].upper()
    return f"{name + ' ' if name else ''}ERR {int(digits):03d}"


@register("kramer-p3000")
class KramerP3000Simulator(StreamSimulator):
    """The matrix on a TCP port or a pty; every client hears the others' route changes."""

    resource_kinds = ("tcp", "pty")
    state_model = KramerState
    state: KramerState

    def new_session(self, outbox: SessionOutbox) -> Session:
        return _KramerSession(self, outbox)

    def _state_changed(self, changed: set[str], old: SimState) -> None:
        if self.status is SimStatus.RUNNING and isinstance(old, KramerState):
            for line in KramerMatrix(self.state).announcements(old):
                self.broadcast((line + CRLF).encode("latin-1"))


__all__ = ["KramerMatrix", "KramerP3000Simulator", "KramerState", "LineReader"]
