"""Declarative driver (``type: declarative``): a device whose protocol a YAML profile describes.

The profile (``options.profile``: a shipped name such as ``splicer-hex`` or a file path, or
``options.protocol`` inline) maps the VideoWall and Matrix commands to frame templates; this
driver renders them, matches replies and errors, polls the queries and keeps the state.
Transports: TCP, UDP and serial.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.base import DeviceOptions
from devices.capabilities import (
    CapabilityCommand,
    CloseWindow,
    Matrix,
    MoveWindow,
    OpenWindow,
    RecallLayout,
    Route,
    SetSource,
    VideoWall,
    validate_command,
)
from devices.config import DeviceConfig
from devices.errors import (
    DeviceCommandError,
    DeviceConfigError,
    DeviceUnavailable,
    InvalidCommand,
)
from devices.registry import register
from devices.snapshot import thaw
from devices.stream import StreamDevice
from protocols.declarative import Pattern, Profile, Step, TemplateError, Value
from protocols.declarative_profile import ProfileError, compile_profile, load_profile
from protocols.framing import Framer

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
GEOMETRY = ("x", "y", "w", "h")


def shipped_profiles() -> list[str]:
    """Names of the profiles that ship with cchub (``devices/profiles/*.yaml``)."""
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


def profile_path(profile: str) -> Path:
    """A shipped profile's file for a bare name; otherwise the path as given."""
    if "/" not in profile and not profile.endswith((".yaml", ".yml")):
        return PROFILES / f"{profile}.yaml"
    return Path(profile)


def vocabulary() -> dict[str, frozenset[str]]:
    """The commands a profile may map, with the fields each template may use."""
    return {
        name: frozenset(model.model_fields) - {"command"}
        for capability in (VideoWall, Matrix)
        for name in capability.command_names()
        if (model := capability.model_for(name)) is not None
    }


class DeclarativeOptions(DeviceOptions):
    profile: str | None = None
    protocol: dict[str, Any] | None = None
    constants: dict[str, Any] = {}
    maps: dict[str, Any] = {}


def build_profile(options: DeclarativeOptions) -> Profile:
    """Load and check the device's protocol; raise :class:`ProfileError` with every problem."""
    if (options.profile is None) == (options.protocol is None):
        raise ProfileError(
            [
                "options: give either 'profile' (a shipped name or a file) or 'protocol'"
                f" (inline); shipped profiles: {', '.join(shipped_profiles())}"
            ]
        )
    if options.protocol is not None:
        return compile_profile(
            options.protocol,
            "",
            vocabulary=vocabulary(),
            prefix=("options", "protocol"),
            constants=options.constants,
            maps=options.maps,
        )
    assert options.profile is not None
    path = profile_path(options.profile)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        shipped = ", ".join(shipped_profiles())
        raise ProfileError(
            [f"options.profile: cannot read {str(path)!r}: {err.strerror} (shipped: {shipped})"]
        ) from None
    return load_profile(
        text, str(path), vocabulary=vocabulary(), constants=options.constants, maps=options.maps
    )


@dataclass(frozen=True)
class WallCommand:
    """A validated command, its device values and the frames it sends (rendered up front)."""

    command: CapabilityCommand
    values: dict[str, Value]
    frames: tuple[bytes, ...]


@register("declarative")
class DeclarativeDevice(StreamDevice[WallCommand, bytes]):
    """State: ``layout``, ``layouts``, ``windows`` (VideoWall); ``ties`` if ``route`` is mapped."""

    Options = DeclarativeOptions
    options: DeclarativeOptions
    capabilities = (VideoWall, Matrix)
    transport_kinds = ("tcp", "udp", "serial")

    def __init__(self, config: DeviceConfig) -> None:
        super().__init__(config)
        self._expected: Pattern | None = None
        try:
            self.profile = build_profile(self.options)
        except ProfileError as err:
            raise DeviceConfigError(f"device {config.id!r} (declarative): {err}") from None
        self._publish(state=self._initial_state())

    # --- the link ------------------------------------------------------------------------

    def _framer(self) -> Framer:
        return self.profile.framer()

    def _decode(self, frame: bytes) -> bytes:
        return frame  # patterns judge frames; a frame nobody matches is logged and dropped

    # --- commands ------------------------------------------------------------------------

    def _prepare(self, command: Mapping[str, Any]) -> WallCommand:
        parsed = validate_command(self.capabilities, command, self.config.type)
        steps = self.profile.commands.get(parsed.command)
        if steps is None:
            legal = ", ".join(sorted(self.profile.commands))
            raise InvalidCommand(
                f"profile {self.profile.name!r} maps no {parsed.command!r} (it maps: {legal})"
            )
        values = self._device_values(parsed)
        try:
            frames = tuple(self.profile.request(step, values) for step in steps)
        except TemplateError as err:
            raise InvalidCommand(f"{parsed.command}: {err}") from None
        return WallCommand(parsed, values, frames)

    def _device_values(self, command: CapabilityCommand) -> dict[str, Value]:
        """Command fields as the device numbers them (``maps`` turn names into numbers)."""
        values: dict[str, Value] = {}
        for name, value in command.model_dump(exclude={"command"}).items():
            table = self.profile.maps.get(name)
            if isinstance(value, str) and table is not None:
                # a mapped field has names; a number is taken as the device's own number
                if value.isdigit():
                    value = int(value)
                elif value not in table:
                    known = ", ".join(table) or "none"
                    raise InvalidCommand(f"unknown {name} {value!r} (known: {known})")
                else:
                    value = table[value]
            values[name] = value
        return values

    async def _execute(self, command: WallCommand) -> dict[str, Any]:
        steps = self.profile.commands[command.command.command]
        captures: dict[str, Value] = {}
        for step, frame in zip(steps, command.frames, strict=True):
            captures.update(await self._exchange(step, frame, command.values))
        state = thaw(self._snapshot.state)
        self._effect(state, command)
        self._capture(state, captures)
        for step in steps:
            self._extra(state, captures, step.state)
        self._merge_state(state)
        if isinstance(command.command, RecallLayout) and self.profile.queries:
            # the scene replaced the windows: read them back so that the state is the wall's
            self._merge_state(await self._fetch())
        return self._result(command)

    async def _exchange(
        self, step: Step, frame: bytes, values: Mapping[str, Value]
    ) -> dict[str, Value]:
        """Send one step's frame; return the reply's captures or raise the device's error."""
        if step.reply is None:
            link = self._link
            if link is None or self._lost.is_set():
                raise DeviceUnavailable(self._lost_reason or f"device {self.id} is not connected")
            try:
                await link.write(frame)
            except (OSError, ConnectionError) as err:
                self._link_lost(f"write failed: {err}")
                raise DeviceUnavailable(f"device {self.id}: write failed: {err}") from err
            return {}
        known = self.profile.known(values)
        reply_pattern = step.reply

        def accepts(message: bytes) -> bool:
            if reply_pattern.match(message, known) is not None:
                return True
            return self.profile.error_in(message, known) is not None

        self._expected = reply_pattern
        try:
            reply = await self.transact(frame, accepts)
        finally:
            self._expected = None
        captures = reply_pattern.match(reply, known)
        if captures is None:
            error = self.profile.error_in(reply, known)
            assert error is not None
            code, reason = error
            raise DeviceCommandError(code, f"{reason} (after {self._shown(frame)})")
        return captures

    def _shown(self, frame: bytes) -> str:
        if self.profile.encoding == "hex":
            return frame.hex(" ").upper()
        text = frame.removesuffix(self.profile.terminator)
        return repr(text.decode(self.profile.charset, "replace"))

    def _result(self, command: WallCommand) -> dict[str, Any]:
        cmd = command.command
        state = self._snapshot.state
        if isinstance(cmd, RecallLayout):
            return {"layout": state.get("layout")}
        if isinstance(cmd, Route):
            return {"input": cmd.input, "output": cmd.output}
        assert isinstance(cmd, OpenWindow | CloseWindow | MoveWindow | SetSource)
        window = self._name("window", command.values["window"])
        shown = state.get("windows", {}).get(window)
        return {"window": window, **(thaw(shown) if shown is not None else {"closed": True})}

    # --- state ---------------------------------------------------------------------------

    def _initial_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            **self.profile.state,
            "profile": self.profile.name,
            "layout": None,
            "layouts": list(self.profile.maps.get("layout", {})),
            "windows": {},
        }
        if "route" in self.profile.commands:
            state.setdefault("ties", {})
        return state

    async def _fetch(self) -> Mapping[str, Any]:
        state = thaw(self._snapshot.state) or self._initial_state()
        for query in self.profile.queries:
            for values in query.requests():
                try:
                    frame = self.profile.request(query.step, values)
                except TemplateError as err:  # e.g. an 'each' range wider than the field
                    raise DeviceConfigError(f"{query.step.path}: {err}") from None
                captures = await self._exchange(query.step, frame, values)
                self._capture(state, captures)
                self._extra(state, captures, query.step.state)
        return state

    def _name(self, field: str, value: Value) -> Any:
        """A device number as the API names it (``maps`` reversed); None if it means nothing."""
        if field in self.profile.absent and value == self.profile.absent[field]:
            return None
        for name, number in self.profile.maps.get(field, {}).items():
            if number == value:
                return name
        if field == "layout":
            return str(value)
        return value

    def _effect(self, state: dict[str, Any], command: WallCommand) -> None:
        """What a command the device accepted did to the state."""
        cmd, values = command.command, command.values
        if isinstance(cmd, RecallLayout):
            state["layout"] = self._name("layout", values["layout"])
            return
        if isinstance(cmd, Route):
            state["ties"] = {**state.get("ties", {}), cmd.output: cmd.input}
            return
        assert isinstance(cmd, OpenWindow | CloseWindow | MoveWindow | SetSource)
        windows = dict(state.get("windows", {}))
        window = self._name("window", values["window"])
        entry = dict(windows.get(window, {}))
        if isinstance(cmd, CloseWindow):
            windows.pop(window, None)
        else:
            if isinstance(cmd, OpenWindow | SetSource):
                entry["source"] = self._name("source", values["source"])
            if isinstance(cmd, OpenWindow | MoveWindow):
                entry.update({k: getattr(cmd, k) for k in GEOMETRY})
            windows[window] = entry
        state["windows"] = windows

    @staticmethod
    def _extra(
        state: dict[str, Any], captures: Mapping[str, Value], keys: Mapping[str, str]
    ) -> None:
        """The profile's own ``state:`` keys (state key -> capture)."""
        for key, capture in keys.items():
            if capture in captures:
                state[key] = captures[capture]

    def _capture(self, state: dict[str, Any], captures: Mapping[str, Value]) -> None:
        """Apply what a reply reported: the layout, a window, a tie."""
        if "layout" in captures:
            state["layout"] = self._name("layout", captures["layout"])
        if "window" in captures and any(k in captures for k in ("source", *GEOMETRY)):
            windows = dict(state.get("windows", {}))
            window = self._name("window", captures["window"])
            source = captures.get("source")
            if source is not None and self._name("source", source) is None:
                windows.pop(window, None)
            else:
                entry = dict(windows.get(window, {}))
                if source is not None:
                    entry["source"] = self._name("source", source)
                entry.update({k: captures[k] for k in GEOMETRY if k in captures})
                windows[window] = entry
            state["windows"] = windows
        if "output" in captures and "input" in captures:
            ties = dict(state.get("ties", {}))
            ties[captures["output"]] = captures["input"]
            state["ties"] = ties

    def _on_unsolicited(self, message: bytes) -> None:
        constants = self.profile.known({})
        for notification in self.profile.notifications:
            captures = notification.pattern.match(message, constants)
            if captures is not None:
                self.log.info("device reports %s", captures)
                state = thaw(self._snapshot.state)
                self._capture(state, captures)
                self._extra(state, captures, notification.state)
                self._merge_state(state)
                return
        error = self.profile.error_in(message, constants)
        if error is not None:
            self.log.debug("unsolicited error %s: %s", *error)
            return
        expected = self._expected
        why = f" (reply pattern: {expected.mismatch(message)})" if expected is not None else ""
        self.log.debug("dropped unrecognised frame %r%s", message, why)


__all__ = ["DeclarativeDevice", "build_profile", "profile_path", "shipped_profiles", "vocabulary"]
