"""Kenwood TS-590/TS-890 CAT simulator on a pty pair: ``;``-terminated ASCII, as the radio answers.

``KenwoodRadio`` is the sans-IO core (command in, replies out); ``KenwoodCatSimulator`` puts it
on the master side of a pseudo-terminal whose slave path goes into the site file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from typing import Any, Literal

from pydantic import Field

from lab.registry import register
from lab.simulator import Outbox, SimState, SimStatus, Simulator

MODES = {
    "1": "LSB",
    "2": "USB",
    "3": "CW",
    "4": "FM",
    "5": "AM",
    "6": "FSK",
    "7": "CW-R",
    "9": "FSK-R",
}
MODE_CODES = {name: code for code, name in MODES.items()}
MODEL_IDS = {"TS-590S": "021", "TS-590SG": "023", "TS-890S": "024"}
MIN_HZ, MAX_HZ = 30_000, 60_000_000  # the TS-590's tuning range
MAX_COMMAND = 64  # longer than this without ';' is a receive overflow: the radio answers O;
OVERFLOW = "\x00overflow"  # the framer's marker for that

Mode = Literal["LSB", "USB", "CW", "FM", "AM", "FSK", "CW-R", "FSK-R"]


class CatState(SimState):
    model: Literal["TS-590S", "TS-590SG", "TS-890S"] = "TS-590SG"
    power: bool = True
    vfo_a: int = Field(7_050_000, ge=MIN_HZ, le=MAX_HZ, description="Hz")
    vfo_b: int = Field(14_200_000, ge=MIN_HZ, le=MAX_HZ, description="Hz")
    mode: Mode = "LSB"
    transmitting: bool = False
    s_meter: int = Field(0, ge=0, le=30)
    auto_info: bool = False


class KenwoodRadio:
    """The radio's command interpreter: ``handle("FA")`` -> ``["FA00007050000;"]``."""

    def __init__(self, state: CatState) -> None:
        self.state = state

    def handle(self, command: str) -> list[str]:
        """One command without its ``;``; returns the replies (sets answer nothing)."""
        s = self.state
        if len(command) < 2 or not command[:2].isalpha():
            return ["?;"]
        name, arg = command[:2].upper(), command[2:]
        if not s.power:
            # in standby the radio only listens for PS
            return self._power(arg) if name == "PS" else []
        handler = getattr(self, f"_cmd_{name.lower()}", None)
        if handler is None:
            return ["?;"]
        replies: list[str] = handler(arg)
        return replies

    def _power(self, arg: str) -> list[str]:
        if arg == "":
            return [f"PS{int(self.state.power)};"]
        if arg in ("0", "1"):
            self.state.power = arg == "1"
            if not self.state.power:
                self.state.transmitting = False
            return []
        return ["?;"]

    _cmd_ps = _power

    def _vfo(self, which: Literal["a", "b"], arg: str) -> list[str]:
        field = f"vfo_{which}"
        if arg == "":
            return [f"F{which.upper()}{getattr(self.state, field):011d};"]
        if len(arg) != 11 or not arg.isdigit() or not MIN_HZ <= int(arg) <= MAX_HZ:
            return ["?;"]
        setattr(self.state, field, int(arg))
        return []

    def _cmd_fa(self, arg: str) -> list[str]:
        return self._vfo("a", arg)

    def _cmd_fb(self, arg: str) -> list[str]:
        return self._vfo("b", arg)

    def _cmd_md(self, arg: str) -> list[str]:
        if arg == "":
            return [f"MD{MODE_CODES[self.state.mode]};"]
        if arg not in MODES:
            return ["?;"]
        self.state.mode = MODES[arg]  # type: ignore[assignment]
        return []

    def _cmd_tx(self, arg: str) -> list[str]:
        if arg not in ("", "0", "1", "2"):
            return ["?;"]
        self.state.transmitting = True
        return []

    def _cmd_rx(self, arg: str) -> list[str]:
        if arg:
            return ["?;"]
        self.state.transmitting = False
        return []

    def _cmd_id(self, arg: str) -> list[str]:
        return [f"ID{MODEL_IDS[self.state.model]};"] if arg == "" else ["?;"]

    def _cmd_if(self, arg: str) -> list[str]:
        return [self.information()] if arg == "" else ["?;"]

    def _cmd_ai(self, arg: str) -> list[str]:
        if arg == "":
            return [f"AI{2 if self.state.auto_info else 0};"]
        if arg not in ("0", "2"):
            return ["?;"]
        self.state.auto_info = arg == "2"
        return []

    def _cmd_sm(self, arg: str) -> list[str]:
        return [f"SM0{self.state.s_meter:04d};"] if arg == "0" else ["?;"]

    def information(self) -> str:
        """The 38-character ``IF`` answer (frequency, RIT/XIT, TX/RX, mode, VFO, split...)."""
        s = self.state
        return f"IF{s.vfo_a:011d}     +000000000{int(s.transmitting)}{MODE_CODES[s.mode]}0000000;"

    def auto_info(self, changed: set[str]) -> list[str]:
        """Unsolicited reports (``AI2``) for changes made at the front panel."""
        if not self.state.auto_info or not self.state.power:
            return []
        out = []
        if "vfo_a" in changed:
            out.append(f"FA{self.state.vfo_a:011d};")
        if "vfo_b" in changed:
            out.append(f"FB{self.state.vfo_b:011d};")
        if "mode" in changed:
            out.append(f"MD{MODE_CODES[self.state.mode]};")
        if "transmitting" in changed:
            out.append(self.information())
        return out


class CatFramer:
    """Splits the byte stream into commands; flags bytes a radio would reject."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._overflowed = False

    def feed(self, data: bytes) -> list[str | None]:
        """Complete commands, with ``None`` for a corrupt one (the radio answers ``E;``)."""
        out: list[str | None] = []
        for byte in data:
            if self._overflowed:
                self._overflowed = byte != ord(";")  # skip the rest of the long command
                continue
            if byte == ord(";"):
                raw = bytes(self._buffer)
                self._buffer.clear()
                text = raw.strip(b"\r\n ")
                if all(0x20 <= b < 0x7F for b in text):
                    out.append(text.decode("ascii"))
                else:
                    out.append(None)
            else:
                self._buffer.append(byte)
                if len(self._buffer) > MAX_COMMAND:
                    self._buffer.clear()
                    self._overflowed = True
                    out.append(OVERFLOW)
        return out


@register("kenwood-cat")
class KenwoodCatSimulator(Simulator):
    """The radio on the master side of a pty; the hub opens ``transport.port`` (the slave)."""

    resource_kinds = ("pty",)
    state_model = CatState
    state: CatState

    _master = -1
    _slave = -1
    path = ""

    async def _open(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # a serial line: no echo, no line editing
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._framer = CatFramer()
        self._outbox = Outbox(self, self._write)
        self.spawn(self._outbox.run(), "pty writer")
        asyncio.get_running_loop().add_reader(self._master, self._readable)

    async def _close(self) -> None:
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
            for fd in (self._master, self._slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._master = self._slave = -1

    def site_transport(self) -> dict[str, Any]:
        baudrate = getattr(self.device.resource, "baudrate", 9600)
        return {"kind": "serial", "port": self.path, "baudrate": baudrate}

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except BlockingIOError:
            self.log.debug("pty full: nobody reads the slave, %d bytes lost", len(data))

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as err:
            self.crashed(err)
            return
        try:
            self._receive(data)
        except Exception as err:  # loop boundary: this radio crashes, the bench goes on
            self.crashed(err)

    def _receive(self, data: bytes) -> None:
        if self.faults.silent():
            return  # the cable is pulled
        radio = KenwoodRadio(self.state)
        for command in self._framer.feed(data):
            self.check_crash()
            if command is None:
                self._outbox.send(b"E;")
                continue
            if command is OVERFLOW:
                self._outbox.send(b"O;")
                continue
            if self.link_down:
                # refuse/flap: the radio is in standby and only reports that
                if command.upper() == "PS":
                    self._outbox.send(b"PS0;")
                continue
            code = self.faults.error_code("?")
            if code is not None:
                self._outbox.send(f"{code.rstrip(';')};".encode())
                continue
            for reply in radio.handle(command):
                self._outbox.send(reply.encode("ascii"))

    def _state_changed(self, changed: set[str], old: SimState) -> None:
        if self.status is not SimStatus.RUNNING or self.link_down or self.faults.silent():
            return
        for report in KenwoodRadio(self.state).auto_info(changed):
            self._outbox.send(report.encode("ascii"))
