"""Extron SIS matrix switcher over TCP: polls ties, routes, follows front-panel ties."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from devices.base import DeviceOptions
from devices.capabilities import Matrix, Route, validate_command
from devices.errors import DeviceCommandError, InvalidCommand
from devices.registry import register
from devices.stream import StreamDevice
from protocols import extron_sis as sis
from protocols.framing import Framer


class ExtronOptions(DeviceOptions):
    outputs: int = Field(8, ge=1, le=sis.MAX_PORT, description="outputs to poll, 1..N")
    inputs: int = Field(sis.MAX_PORT, ge=1, le=sis.MAX_PORT, description="highest input")


def _reply_to(expected: sis.TieReport) -> Any:
    def accepts(message: sis.SisResponse) -> bool:
        return isinstance(message, sis.SisError) or message == expected

    return accepts


def _status_reply(message: sis.SisResponse) -> bool:
    return isinstance(message, sis.TieStatus | sis.SisError)


def _reject(error: sis.SisError, request: bytes) -> DeviceCommandError:
    return DeviceCommandError(error.code, f"{error.reason} (after {request.decode()!r})")


@register("extron-sis")
class ExtronSis(StreamDevice[sis.Tie, sis.SisResponse]):
    """State: ``ties`` (output -> input, video/all) and ``audio_ties`` (audio breakaway)."""

    Options = ExtronOptions
    capabilities = (Matrix,)
    options: ExtronOptions

    def _framer(self) -> Framer:
        return sis.sis_framer()

    def _decode(self, frame: bytes) -> sis.SisResponse:
        return sis.parse_response(frame)

    async def _fetch(self) -> Mapping[str, Any]:
        ties: dict[int, int] = {}
        for output in range(1, self.options.outputs + 1):
            request = bytes(sis.ViewTie(output))
            reply = await self.transact(request, _status_reply)
            if isinstance(reply, sis.SisError):
                raise _reject(reply, request)
            assert isinstance(reply, sis.TieStatus)
            ties[output] = reply.input
        audio = self._snapshot.state.get("audio_ties", {})
        return {
            "inputs": self.options.inputs,
            "outputs": self.options.outputs,
            "ties": ties,
            "audio_ties": dict(audio),
        }

    def _apply_tie(self, report: sis.TieReport) -> None:
        state = self._snapshot.state
        changes: dict[str, Any] = {}
        if report.kind in (sis.TieKind.ALL, sis.TieKind.VIDEO):
            changes["ties"] = {**state.get("ties", {}), report.output: report.input}
        if report.kind in (sis.TieKind.ALL, sis.TieKind.AUDIO):
            changes["audio_ties"] = {**state.get("audio_ties", {}), report.output: report.input}
        self._merge_state(changes)

    def _on_unsolicited(self, message: sis.SisResponse) -> None:
        if isinstance(message, sis.TieReport):
            self.log.info(
                "front panel: output %d <- input %d (%s)",
                message.output,
                message.input,
                message.kind.label,
            )
            self._apply_tie(message)
        else:
            self.log.debug("unsolicited %r", message)

    def _prepare(self, command: Mapping[str, Any]) -> sis.Tie:
        route = validate_command(self.capabilities, command, self.config.type)
        assert isinstance(route, Route)
        if route.output > self.options.outputs:
            raise InvalidCommand(f"'output' must be 1..{self.options.outputs}, got {route.output}")
        if route.input > self.options.inputs:
            raise InvalidCommand(f"'input' must be 0..{self.options.inputs}, got {route.input}")
        return sis.Tie(route.input, route.output, sis.TieKind.from_name(route.type))

    async def _execute(self, command: sis.Tie) -> dict[str, Any]:
        request = bytes(command)
        reply = await self.transact(request, _reply_to(command.expected_report()))
        if isinstance(reply, sis.SisError):
            raise _reject(reply, request)
        assert isinstance(reply, sis.TieReport)
        self._apply_tie(reply)
        return {"input": reply.input, "output": reply.output, "type": reply.kind.name.lower()}
