"""Kramer matrix switchers over Protocol 3000 (TCP port 5000 or serial): routes, route reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field

from devices.base import DeviceOptions
from devices.capabilities import Matrix, Route, validate_command
from devices.errors import DeviceCommandError, InvalidCommand
from devices.registry import register
from devices.stream import StreamDevice
from protocols import kramer_p3000 as p3k
from protocols.framing import Framer

LAYERS: dict[str, tuple[p3k.Layer, ...]] = {
    "video": (p3k.Layer.VIDEO,),
    "audio": (p3k.Layer.AUDIO,),
}
TIE_KEYS = {p3k.Layer.VIDEO: "ties", p3k.Layer.AUDIO: "audio_ties"}


class KramerOptions(DeviceOptions):
    outputs: int = Field(8, ge=1, le=p3k.MAX_PORT, description="outputs, unless INFO-IO? tells")
    inputs: int = Field(8, ge=1, le=p3k.MAX_PORT, description="inputs, unless INFO-IO? tells")
    machine: int | None = Field(
        None, ge=0, le=p3k.MAX_MACHINE, description="address #nn@ (devices on a shared bus)"
    )
    afv: bool = Field(True, description="audio follows video: one video route switches both")
    audio: bool = Field(True, description="poll the audio layer too")


def _answers(command: p3k.P3kCommand, *, ok: bool) -> Callable[[p3k.P3kMessage], bool]:
    """Accept the reply to ``command``: same name and leading parameters, or its error."""
    name = command.name.rstrip("?")
    key = command.params[:2]

    def accepts(message: p3k.P3kMessage) -> bool:
        if isinstance(message, p3k.P3kError):
            return message.command in ("", name)
        if not isinstance(message, p3k.P3kReply) or message.command != name:
            return False
        if ok and not message.ok:
            return False  # a change notice for the same output is not our confirmation
        return not key or message.params[: len(key)] == key

    return accepts


@register("kramer-p3000")
class KramerP3000(StreamDevice[Route, p3k.P3kMessage]):
    """State (Matrix): ``inputs``, ``outputs``, ``ties`` (video) and ``audio_ties``; ``model``."""

    Options = KramerOptions
    options: KramerOptions
    capabilities = (Matrix,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._greeted = False
        self._size = (self.options.inputs, self.options.outputs)
        self._model = ""

    def _framer(self) -> Framer:
        # asked once per new connection: greet the device again on it
        self._greeted = False
        return p3k.p3k_framer()

    def _decode(self, frame: bytes) -> p3k.P3kMessage:
        message = p3k.parse_message(frame)
        machine = getattr(message, "machine", None)
        wanted = self.options.machine
        if wanted is not None and machine is not None and machine != wanted:
            raise ValueError(f"message for machine {machine}, not {wanted}")
        return message

    async def _ask(self, command: p3k.P3kCommand, *, ok: bool = False) -> p3k.P3kReply:
        request = bytes(command)
        reply = await self.transact(request, _answers(command, ok=ok))
        if isinstance(reply, p3k.P3kError):
            raise DeviceCommandError(
                reply.device_code, f"{reply.reason} (after {request.decode().strip()!r})"
            )
        assert isinstance(reply, p3k.P3kReply)
        return reply

    async def _greet(self) -> None:
        """Handshake (``#`` -> ``~01@ OK``), then learn the size and model once per connection."""
        machine = self.options.machine
        await self._ask(p3k.P3kCommand.handshake(machine))
        try:
            size = p3k.IoCount.from_reply(await self._ask(p3k.P3kCommand("INFO-IO?", (), machine)))
            self._size = (size.inputs, size.outputs)
        except (DeviceCommandError, ValueError) as err:
            self.log.debug("no INFO-IO? (%s): using the configured size", err)
        try:
            reply = await self._ask(p3k.P3kCommand("MODEL?", (), machine))
            self._model = ",".join(reply.params)
        except DeviceCommandError:
            self._model = ""
        self._greeted = True

    async def _fetch(self) -> Mapping[str, Any]:
        if not self._greeted:
            await self._greet()
        inputs, outputs = self._size
        state: dict[str, Any] = {"inputs": inputs, "outputs": outputs, "model": self._model}
        layers = [p3k.Layer.VIDEO] + ([p3k.Layer.AUDIO] if self.options.audio else [])
        for layer in layers:
            ties: dict[int, int] = {}
            for output in range(1, outputs + 1):
                query = p3k.route_query(layer, output, self.options.machine)
                reply = await self._ask(query)
                for change in self._changes(reply):
                    ties[change.output] = change.input
            state[TIE_KEYS[layer]] = ties
        if not self.options.audio:
            state["audio_ties"] = dict(self._snapshot.state.get("audio_ties", {}))
        return state

    def _changes(self, reply: p3k.P3kReply) -> list[p3k.TieChange]:
        try:
            return p3k.tie_changes(reply)
        except ValueError as err:
            self.log.debug("ignored route report %r: %s", reply, err)
            return []

    def _apply(self, changes: list[p3k.TieChange]) -> None:
        state = self._snapshot.state
        merged: dict[str, Any] = {}
        for change in changes:
            key = TIE_KEYS.get(change.layer)
            if key is None:
                continue
            merged[key] = {**merged.get(key, state.get(key, {})), change.output: change.input}
        if merged:
            self._merge_state(merged)

    def _on_unsolicited(self, message: p3k.P3kMessage) -> None:
        if isinstance(message, p3k.P3kReply) and (changes := self._changes(message)):
            for change in changes:
                self.log.info(
                    "route report: output %d <- input %d (%s)",
                    change.output,
                    change.input,
                    change.layer.name.lower(),
                )
            self._apply(changes)
        else:
            self.log.debug("unsolicited %r", message)

    def _prepare(self, command: Mapping[str, Any]) -> Route:
        route = validate_command(self.capabilities, command, self.config.type)
        assert isinstance(route, Route)
        inputs, outputs = self._size
        if route.output > outputs:
            raise InvalidCommand(f"'output' must be 1..{outputs}, got {route.output}")
        if route.input > inputs:
            raise InvalidCommand(f"'input' must be 0..{inputs}, got {route.input}")
        return route

    async def _execute(self, command: Route) -> dict[str, Any]:
        layers: tuple[p3k.Layer, ...]
        if command.type in LAYERS:
            layers = LAYERS[command.type]
        elif self.options.afv:
            layers = (p3k.Layer.VIDEO,)  # the device switches audio with video
        else:
            layers = (p3k.Layer.VIDEO, p3k.Layer.AUDIO)
        changes: list[p3k.TieChange] = []
        for layer in layers:
            request = p3k.route(layer, command.output, command.input, self.options.machine)
            reply = await self._ask(request, ok=True)
            changes += self._changes(reply)
        if command.type == "all" and self.options.afv:
            changes.append(p3k.TieChange(p3k.Layer.AUDIO, command.output, command.input))
        self._apply(changes)
        return {"input": command.input, "output": command.output, "type": command.type}
