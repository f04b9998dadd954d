"""Kenwood HF transceiver (TS-590/TS-890) over CAT serial: frequency, mode and PTT."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devices.errors import DeviceCommandError, InvalidCommand
from devices.registry import register
from devices.stream import StreamDevice, require_int
from protocols import kenwood_cat as cat
from protocols.framing import Framer


@dataclass(frozen=True)
class CatCommand:
    """A prepared radio command: the set frame, the verifying query, and the answer type."""

    name: str
    request: bytes
    verify: cat.Query
    answer: type[cat.Frequency | cat.OperatingMode | cat.Information]


def _is_answer(kind: type[Any], vfo: str | None = None) -> Any:
    def accepts(message: cat.CatMessage) -> bool:
        if isinstance(message, cat.CatError):
            return True
        if not isinstance(message, kind):
            return False
        return vfo is None or getattr(message, "vfo", None) == vfo

    return accepts


def _reject(error: cat.CatError, request: bytes) -> DeviceCommandError:
    return DeviceCommandError(error.code, f"{error.reason} (after {request!r})")


_PTT_STATES: dict[Any, bool] = {True: True, False: False, "on": True, "off": False}


@register("kenwood-cat")
class KenwoodCat(StreamDevice[CatCommand, cat.CatMessage]):
    """Polls ``FA;`` ``MD;`` ``IF;``; commands ``set_frequency``, ``set_mode``, ``ptt``."""

    def _framer(self) -> Framer:
        return cat.cat_framer()

    def _decode(self, frame: bytes) -> cat.CatMessage:
        return cat.parse_message(frame)

    async def _ask(self, query: cat.Query, kind: type[Any], vfo: str | None = None) -> Any:
        request = bytes(query)
        reply = await self.transact(request, _is_answer(kind, vfo))
        if isinstance(reply, cat.CatError):
            raise _reject(reply, request)
        return reply

    async def _fetch(self) -> Mapping[str, Any]:
        vfo_a: cat.Frequency = await self._ask(cat.Query("FA"), cat.Frequency, "A")
        mode: cat.OperatingMode = await self._ask(cat.Query("MD"), cat.OperatingMode)
        info: cat.Information = await self._ask(cat.Query("IF"), cat.Information)
        return {
            "frequency_hz": vfo_a.hz,
            "mode": mode.mode.label,
            "transmitting": info.transmitting,
            "split": info.split,
        }

    def _on_unsolicited(self, message: cat.CatMessage) -> None:
        # auto-information (AI) reports and late answers keep the snapshot current
        if isinstance(message, cat.Frequency) and message.vfo == "A":
            self._merge_state({"frequency_hz": message.hz})
        elif isinstance(message, cat.OperatingMode):
            self._merge_state({"mode": message.mode.label})
        elif isinstance(message, cat.Information):
            self._merge_state({"transmitting": message.transmitting, "split": message.split})
        else:
            self.log.debug("unsolicited %r", message)

    def _prepare(self, command: Mapping[str, Any]) -> CatCommand:
        name = command.get("command")
        if name == "set_frequency":
            hz = require_int(command, "hz", 1, cat.MAX_FREQUENCY_HZ)
            return CatCommand(name, bytes(cat.Frequency("A", hz)), cat.Query("FA"), cat.Frequency)
        if name == "set_mode":
            try:
                mode = cat.Mode.from_name(str(command.get("mode", "")))
            except ValueError as err:
                raise InvalidCommand(str(err)) from None
            return CatCommand(
                name, bytes(cat.OperatingMode(mode)), cat.Query("MD"), cat.OperatingMode
            )
        if name == "ptt":
            on = _PTT_STATES.get(command.get("on", command.get("state")))
            if on is None:
                raise InvalidCommand(
                    f'\'on\' must be true/false or "on"/"off", got {command.get("on")!r}'
                )
            request = bytes(cat.Transmit()) if on else bytes(cat.Receive())
            return CatCommand(name, request, cat.Query("IF"), cat.Information)
        raise InvalidCommand(
            f"unknown command {name!r} for kenwood-cat "
            "(legal: set_frequency, set_mode, ptt, refresh)"
        )

    async def _execute(self, command: CatCommand) -> dict[str, Any]:
        # a set has no answer; the query that follows confirms it (or an error reply comes first)
        request = command.request + bytes(command.verify)
        vfo = "A" if command.answer is cat.Frequency else None
        reply = await self.transact(request, _is_answer(command.answer, vfo))
        if isinstance(reply, cat.CatError):
            raise _reject(reply, command.request)
        if isinstance(reply, cat.Frequency):
            self._merge_state({"frequency_hz": reply.hz})
            return {"frequency_hz": reply.hz}
        if isinstance(reply, cat.OperatingMode):
            self._merge_state({"mode": reply.mode.label})
            return {"mode": reply.mode.label}
        assert isinstance(reply, cat.Information)
        self._merge_state({"transmitting": reply.transmitting, "split": reply.split})
        return {"transmitting": reply.transmitting}
