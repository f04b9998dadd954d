"""PJLink class 1 projector simulator on TCP: greeting, MD5 auth, warm-up and cool-down.

``PjlinkProjector`` is the sans-IO core (one command line in, one answer out); the simulator
greets each client, checks the digest of its first command, and closes idle connections after
``idle_timeout`` like a real projector does.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from typing import Any, Literal

from pydantic import Field, field_validator

from lab.registry import register
from lab.sims.streams import Session, SessionOutbox, StreamSimulator
from lab.simulator import SimState

Power = Literal["off", "on", "cooling", "warming"]
POWER_CODES = {"off": "0", "on": "1", "cooling": "2", "warming": "3"}
_COMMAND = re.compile(r"%1([A-Z0-9]{4}) (.{1,128})")
_INPUT = re.compile(r"[1-9][1-9A-Z]")
MAX_LINE = 136


class PjlinkState(SimState):
    name: str = Field("Dispatch wall projector", max_length=64)
    manufacturer: str = Field("EPSON", max_length=32)
    product: str = Field("EB-L1100U", max_length=32)
    password: str | None = Field(None, max_length=32, description="None: no security (PJLINK 0)")
    power: Power = "off"
    input: str = "31"
    inputs: list[str] = ["11", "12", "31", "32", "51"]
    lamp_hours: int | None = Field(1234, ge=0, le=99999, description="None: no lamp (ERR1)")
    errors: str = Field("000000", description="ERST digits: fan lamp temp cover filter other")
    av_mute: Literal["10", "11", "20", "21", "30", "31"] = "30"
    warm_up: float = Field(1.0, ge=0, le=120, description="seconds in 'warming'")
    cool_down: float = Field(1.0, ge=0, le=120, description="seconds in 'cooling'")
    idle_timeout: float = Field(30.0, gt=0, le=3600, description="close an idle connection")

    @field_validator("errors")
    @classmethod
    def _erst(cls, value: str) -> str:
        if re.fullmatch(r"[012]{6}", value) is None:
            raise ValueError("errors must be 6 digits 0-2 (fan lamp temp cover filter other)")
        return value

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if _INPUT.fullmatch(v) is None]
        if bad:
            raise ValueError(f"inputs must be PJLink input codes like '31', got {bad}")
        return value


class PjlinkProjector:
    """The projector's command interpreter: ``handle("POWR", "?")`` -> ``"%1POWR=0"``."""

    def __init__(self, sim: PjlinkSimulator) -> None:
        self.sim = sim
        self.state: PjlinkState = sim.state

    def handle(self, body: str, param: str) -> str:
        handler = getattr(self, f"_cmd_{body.lower()}", None)
        answer = "ERR1" if handler is None else handler(param)
        return f"%1{body}={answer}"

    def _lit(self) -> bool:
        return self.state.power == "on"

    def _cmd_powr(self, param: str) -> str:
        s = self.state
        if param == "?":
            return POWER_CODES[s.power]
        if param not in ("0", "1"):
            return "ERR2"
        on = param == "1"
        if (on and s.power == "cooling") or (not on and s.power == "warming"):
            return "ERR3"  # cannot reverse a warm-up or cool-down half-way
        if on and s.power == "off":
            self.sim.set_power("warming")
        elif not on and s.power == "on":
            self.sim.set_power("cooling")
        return "OK"

    def _cmd_inpt(self, param: str) -> str:
        if not self._lit():
            return "ERR3"
        if param == "?":
            return self.state.input
        if _INPUT.fullmatch(param) is None:
            return "ERR2"
        if param not in self.state.inputs:
            return "ERR2"
        self.state.input = param
        return "OK"

    def _cmd_avmt(self, param: str) -> str:
        if param == "?":
            return self.state.av_mute if self._lit() else "ERR3"
        if param not in ("10", "11", "20", "21", "30", "31"):
            return "ERR2"
        if not self._lit():
            return "ERR3"
        self.state.av_mute = param  # type: ignore[assignment]
        return "OK"

    def _query(self, param: str, answer: str) -> str:
        return answer if param == "?" else "ERR2"

    def _cmd_erst(self, param: str) -> str:
        return self._query(param, self.state.errors)

    def _cmd_lamp(self, param: str) -> str:
        hours = self.state.lamp_hours
        if hours is None:
            return "ERR1"  # a laser projector has no lamp
        return self._query(param, f"{hours} {int(self._lit())}")

    def _cmd_inst(self, param: str) -> str:
        return self._query(param, " ".join(self.state.inputs))

    def _cmd_name(self, param: str) -> str:
        return self._query(param, self.state.name)

    def _cmd_inf1(self, param: str) -> str:
        return self._query(param, self.state.manufacturer)

    def _cmd_inf2(self, param: str) -> str:
        return self._query(param, self.state.product)

    def _cmd_info(self, param: str) -> str:
        return self._query(param, "cchub lab projector")

    def _cmd_clss(self, param: str) -> str:
        return self._query(param, "1")


class _PjlinkSession(Session):
    sim: PjlinkSimulator

    def __init__(self, sim: PjlinkSimulator, outbox: SessionOutbox) -> None:
        super().__init__(sim, outbox)
        self._buffer = bytearray()
        self._random: str | None = None
        self._authed = False
        self._idle: asyncio.TimerHandle | None = None

    def opened(self) -> None:
        password = self.sim.state.password
        if password is None:
            self._authed = True
            self.send(b"PJLINK 0\r")
        else:
            self._random = secrets.token_hex(4)
            self.send(f"PJLINK 1 {self._random}\r".encode("ascii"))
        self._touch()

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self.sim.state.idle_timeout, self._idle_out)

    def _idle_out(self) -> None:
        self.sim.log.info("closing an idle PJLink connection")
        self.hang_up()

    def hang_up(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        super().hang_up()

    def received(self, data: bytes) -> None:
        self._touch()
        for byte in data:
            if byte == 0x0D:
                line = bytes(self._buffer)
                self._buffer.clear()
                if line.strip(b"\n"):
                    self._line(line.strip(b"\n"))
            elif len(self._buffer) < 2 * MAX_LINE:
                self._buffer.append(byte)

    def _line(self, line: bytes) -> None:
        sim = self.sim
        sim.check_crash()
        text = line.decode("latin-1")
        digest = None
        if re.fullmatch(r"[0-9a-fA-F]{32}.*", text):
            digest, text = text[:32].lower(), text[32:]
        if not self._authed:
            expected = _digest(self._random or "", sim.state.password or "")
            if digest != expected:
                sim.log.info("PJLink authentication failed")
                self.send(b"PJLINK ERRA\r")
                self.hang_up()
                return
            self._authed = True
        match = _COMMAND.fullmatch(text)
        if match is None:
            # not a class-1 command: the spec answers ERR1 when the command name is readable
            name = re.match(r"%[12]([A-Z0-9]{4})", text)
            if name is not None:
                self.send(f"%1{name[1]}=ERR1\r".encode("ascii"))
            return
        body, param = match[1], match[2]
        code = sim.faults.error_code("ERR4")
        if code is not None:
            self.send(f"%1{body}={code}\r".encode("latin-1"))
            return
        self.send((PjlinkProjector(sim).handle(body, param) + "\r").encode("latin-1"))


def _digest(random: str, password: str) -> str:
    return hashlib.md5((random + password).encode("utf-8"), usedforsecurity=False).hexdigest()


@register("pjlink")
class PjlinkSimulator(StreamSimulator):
    """A PJLink projector on a TCP port (4352 on real hardware)."""

    resource_kinds = ("tcp",)
    state_model = PjlinkState
    state: PjlinkState

    _transition: asyncio.Task[Any] | None = None

    def new_session(self, outbox: SessionOutbox) -> Session:
        return _PjlinkSession(self, outbox)

    def set_power(self, power: Power) -> None:
        """Change power; warming and cooling end by themselves after their time."""
        self.state.power = power
        self._schedule()

    def _schedule(self) -> None:
        if self._transition is not None:
            self._transition.cancel()
            self._transition = None
        s = self.state
        if s.power in ("warming", "cooling"):
            after, final = (s.warm_up, "on") if s.power == "warming" else (s.cool_down, "off")
            final_power: Power = "on" if final == "on" else "off"
            self._transition = self.spawn(self._finish(s.power, after, final_power), "power cycle")

    async def _finish(self, phase: Power, after: float, final: Power) -> None:
        await asyncio.sleep(after)
        if self.state.power == phase:
            self.state.power = final
            self.log.info("power %s -> %s", phase, final)

    def _state_changed(self, changed: set[str], old: SimState) -> None:
        if "power" in changed:
            self._schedule()


__all__ = ["PjlinkProjector", "PjlinkSimulator", "PjlinkState"]
