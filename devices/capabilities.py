"""Capabilities: the command vocabulary and state keys shared by every vendor of a device kind.

A driver declares ``capabilities = (Matrix,)``; commands stay dicts on the API
(``{"command": "route", "input": 3, "output": 1}``) and are validated into the capability's
pydantic model. Scenes use ``verify`` (did the snapshot take the command?) and ``inverse``
(the command that restores the state before it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devices.errors import InvalidCommand

REFRESH = "refresh"  # understood by every device: poll now, return the state


class CapabilityCommand(BaseModel):
    """Base of every command model; ``command`` is the discriminator (a ``Literal``)."""

    # strict: "3" is not an input number (the API takes JSON, whose numbers are numbers)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    command: str

    def as_command(self) -> dict[str, Any]:
        """The API form of this command (what ``Device.command`` accepts)."""
        return self.model_dump(mode="json")


CommandLike = CapabilityCommand | Mapping[str, Any]


class Capability:
    """One kind of device: its command models, its documented state keys, verify and inverse."""

    name: ClassVar[str] = ""
    commands: ClassVar[tuple[type[CapabilityCommand], ...]] = ()
    state_keys: ClassVar[Mapping[str, str]] = {}  # key -> what it holds

    @classmethod
    def command_names(cls) -> list[str]:
        return [_command_name(model) for model in cls.commands]

    @classmethod
    def model_for(cls, name: str) -> type[CapabilityCommand] | None:
        for model in cls.commands:
            if _command_name(model) == name:
                return model
        return None

    @classmethod
    def parse(cls, command: CommandLike) -> CapabilityCommand:
        """Validate a command dict into its model; raise :class:`InvalidCommand` naming fields."""
        if isinstance(command, CapabilityCommand):
            return command
        name = command.get("command")
        model = cls.model_for(str(name))
        if model is None:
            raise InvalidCommand(
                f"{cls.name} has no command {name!r} (legal: {', '.join(cls.command_names())})"
            )
        try:
            return model.model_validate(dict(command))
        except ValidationError as err:
            raise InvalidCommand(f"{name}: {describe_validation(err)}") from None

    @classmethod
    def missing_state(cls, state: Mapping[str, Any]) -> list[str]:
        """Documented state keys the snapshot lacks (a driver's snapshot must have them all)."""
        return [key for key in cls.state_keys if key not in state]

    @classmethod
    def verify(cls, command: CommandLike, state: Mapping[str, Any]) -> bool:
        """True if ``state`` shows that ``command`` took effect."""
        return True

    @classmethod
    def inverse(
        cls, command: CommandLike, state_before: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The command that restores ``state_before`` (API dict form), or None if unknown."""
        return None


def _command_name(model: type[CapabilityCommand]) -> str:
    annotation = model.model_fields["command"].annotation
    args: tuple[object, ...] = getattr(annotation, "__args__", ())
    name = args[0] if len(args) == 1 else None
    if not isinstance(name, str):
        raise TypeError(f"{model.__name__}.command must be a Literal of one name")
    return name


_PHRASES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "missing": "is required",
    "extra_forbidden": "is not a field of this command",
}


def describe_validation(err: ValidationError) -> str:
    """``'input' must be >= 0, got -1; 'output' is required`` from a pydantic error."""
    parts = []
    for error in err.errors():
        kind, ctx = error["type"], error.get("ctx", {})
        where = ".".join(str(p) for p in error["loc"]) or "command"
        if kind in ("missing", "extra_forbidden"):
            parts.append(f"{where!r} {_PHRASES[kind]}")
            continue
        if kind in _PHRASES:
            phrase = _PHRASES[kind]
        elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            op = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">"}
            limit = next(iter(ctx.values()), "?")
            phrase = f"must be {op.get(kind, '<')} {limit}"
        elif kind == "literal_error":
            phrase = f"must be one of {ctx.get('expected', '?')}"
        else:
            phrase = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where!r} {phrase}, got {error['input']!r}")
    return "; ".join(parts)


def _get(mapping: Any, key: Any) -> Any:
    """Look ``key`` up whether the mapping's keys are ints (live) or strings (from JSON)."""
    if not isinstance(mapping, Mapping):
        return None
    if key in mapping:
        return mapping[key]
    return mapping.get(str(key))


# --- Matrix ------------------------------------------------------------------------------


class Route(CapabilityCommand):
    """Tie ``input`` to ``output`` (input 0 disconnects the output)."""

    command: Literal["route"] = "route"
    input: int = Field(ge=0, description="source; 0 = disconnect")
    output: int = Field(ge=1, description="destination")
    type: Literal["all", "video", "audio"] = "all"


class Matrix(Capability):
    """AV matrix switchers (``extron-sis``, ``kramer-p3000``)."""

    name = "matrix"
    commands = (Route,)
    state_keys = {
        "inputs": "number of inputs",
        "outputs": "number of outputs",
        "ties": "output -> input (video, or all); 0 = disconnected",
    }

    @classmethod
    def _ties_for(cls, route: Route, state: Mapping[str, Any]) -> Any:
        if route.type == "audio" and "audio_ties" in state:
            return state["audio_ties"]
        return state.get("ties")

    @classmethod
    def verify(cls, command: CommandLike, state: Mapping[str, Any]) -> bool:
        route = cls.parse(command)
        assert isinstance(route, Route)
        ties = _get(cls._ties_for(route, state), route.output)
        return ties is not None and int(ties) == route.input

    @classmethod
    def inverse(
        cls, command: CommandLike, state_before: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        route = cls.parse(command)
        assert isinstance(route, Route)
        before = _get(cls._ties_for(route, state_before), route.output)
        if before is None:
            return None
        return Route(input=int(before), output=route.output, type=route.type).as_command()


# --- VideoWall ---------------------------------------------------------------------------

WindowId = str | int
SourceId = str | int


class RecallLayout(CapabilityCommand):
    command: Literal["recall_layout"] = "recall_layout"
    layout: str = Field(min_length=1)


class Geometry(CapabilityCommand):
    """Window placement in wall pixels (base of the commands that place windows)."""

    x: int
    y: int
    w: int = Field(gt=0)
    h: int = Field(gt=0)


class OpenWindow(Geometry):
    command: Literal["open_window"] = "open_window"
    window: WindowId
    source: SourceId


class CloseWindow(CapabilityCommand):
    command: Literal["close_window"] = "close_window"
    window: WindowId


class MoveWindow(Geometry):
    command: Literal["move_window"] = "move_window"
    window: WindowId


class SetSource(CapabilityCommand):
    command: Literal["set_source"] = "set_source"
    window: WindowId
    source: SourceId


_GEOMETRY = ("x", "y", "w", "h")


class VideoWall(Capability):
    """Video wall controllers (documented controller protocols and the declarative driver)."""

    name = "videowall"
    commands = (RecallLayout, OpenWindow, CloseWindow, MoveWindow, SetSource)
    state_keys = {
        "layout": "the layout last recalled (None if unknown)",
        "layouts": "names of the stored layouts",
        "windows": "window -> {source, x, y, w, h} (only what the device reports)",
    }

    @classmethod
    def verify(cls, command: CommandLike, state: Mapping[str, Any]) -> bool:
        cmd = cls.parse(command)
        windows = state.get("windows")
        if isinstance(cmd, RecallLayout):
            return state.get("layout") == cmd.layout
        assert isinstance(cmd, OpenWindow | CloseWindow | MoveWindow | SetSource)
        window = _get(windows, cmd.window)
        if isinstance(cmd, CloseWindow):
            return window is None
        if not isinstance(window, Mapping):
            return False
        source = window.get("source")
        wrong_source = source is not None and str(source) != str(getattr(cmd, "source", source))
        if isinstance(cmd, OpenWindow | SetSource) and wrong_source:
            return False
        if isinstance(cmd, OpenWindow | MoveWindow):
            # declarative drivers may not know geometry: check only what is reported
            return all(window[k] == getattr(cmd, k) for k in _GEOMETRY if k in window)
        return True

    @classmethod
    def inverse(
        cls, command: CommandLike, state_before: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        cmd = cls.parse(command)
        if isinstance(cmd, RecallLayout):
            layout = state_before.get("layout")
            return RecallLayout(layout=layout).as_command() if layout else None
        assert isinstance(cmd, OpenWindow | CloseWindow | MoveWindow | SetSource)
        before = _get(state_before.get("windows"), cmd.window)
        if isinstance(cmd, OpenWindow):
            if before is None:
                return CloseWindow(window=cmd.window).as_command()
            return _restore_window(cmd.window, before)
        if not isinstance(before, Mapping):
            return None  # the window did not exist (or nothing is known about it)
        if isinstance(cmd, CloseWindow):
            return _restore_window(cmd.window, before)
        if isinstance(cmd, MoveWindow):
            if not all(k in before for k in _GEOMETRY):
                return None
            return MoveWindow(window=cmd.window, **{k: before[k] for k in _GEOMETRY}).as_command()
        if "source" not in before:
            return None
        return SetSource(window=cmd.window, source=before["source"]).as_command()


def _restore_window(window: WindowId, before: Mapping[str, Any]) -> dict[str, Any] | None:
    if "source" not in before or not all(k in before for k in _GEOMETRY):
        return None
    return OpenWindow(
        window=window, source=before["source"], **{k: before[k] for k in _GEOMETRY}
    ).as_command()


# --- Ups -----------------------------------------------------------------------------------

UPS_STATUSES = ("online", "on_battery", "low_battery", "bypass", "off", "unknown")


class Ups(Capability):
    """Uninterruptible power supplies (``ups-mib`` v2c/v3, ``nut``): read-only."""

    name = "ups"
    commands = ()
    state_keys = {
        "status": f"one of {', '.join(UPS_STATUSES)}",
        "on_battery": "running from the battery",
        "battery_low": "the battery is low",
        "charge_percent": "battery charge, %",
        "minutes_remaining": "estimated runtime, minutes",
        "input_voltage": "V",
        "output_voltage": "V",
        "output_load_percent": "%",
        "alarms": "active alarm names",
    }


# --- Display -------------------------------------------------------------------------------

DISPLAY_POWER = ("off", "on", "cooling", "warming")
DISPLAY_ERROR_PARTS = ("fan", "lamp", "temperature", "cover", "filter", "other")


class Power(CapabilityCommand):
    command: Literal["power"] = "power"
    on: bool


class SelectInput(CapabilityCommand):
    """Select a source; PJLink form: type digit 1-9 (RGB, VIDEO, DIGITAL, STORAGE, NETWORK...)
    and number, e.g. ``"31"``."""

    command: Literal["input"] = "input"
    input: str = Field(pattern=r"^[1-9][1-9A-Z]$")


class Display(Capability):
    """Projectors and flat panels (``pjlink``)."""

    name = "display"
    commands = (Power, SelectInput)
    state_keys = {
        "power": f"one of {', '.join(DISPLAY_POWER)}",
        "input": "selected input in PJLink form ('31'), None if unknown",
        "errors": f"{', '.join(DISPLAY_ERROR_PARTS)} -> ok|warning|error",
        "name": "the device's own name",
        "lamp_hours": "hours of the first lamp (None if the device has none)",
    }

    @classmethod
    def verify(cls, command: CommandLike, state: Mapping[str, Any]) -> bool:
        cmd = cls.parse(command)
        if isinstance(cmd, Power):
            # a projector takes tens of seconds to warm up: warming means it took the command
            return state.get("power") in (("on", "warming") if cmd.on else ("off", "cooling"))
        assert isinstance(cmd, SelectInput)
        return str(state.get("input", "")).upper() == cmd.input.upper()

    @classmethod
    def inverse(
        cls, command: CommandLike, state_before: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        cmd = cls.parse(command)
        if isinstance(cmd, Power):
            power = state_before.get("power")
            if power not in DISPLAY_POWER:
                return None
            return Power(on=power in ("on", "warming")).as_command()
        before = state_before.get("input")
        return SelectInput(input=str(before)).as_command() if before else None


# --- Ptz -----------------------------------------------------------------------------------

PTZ_MAX_SPEED = 24  # VISCA pan speed 0x01..0x18 (tilt stops at 0x14; drivers clamp)
PTZ_MAX_PRESET = 255


class Move(CapabilityCommand):
    """Drive pan/tilt: -1 left/down, 1 right/up, 0 hold that axis."""

    command: Literal["move"] = "move"
    pan: Literal[-1, 0, 1] = 0
    tilt: Literal[-1, 0, 1] = 0
    speed: int = Field(8, ge=1, le=PTZ_MAX_SPEED)


class Stop(CapabilityCommand):
    command: Literal["stop"] = "stop"


class Zoom(CapabilityCommand):
    command: Literal["zoom"] = "zoom"
    direction: Literal["in", "out", "stop"]


class PresetRecall(CapabilityCommand):
    command: Literal["preset_recall"] = "preset_recall"
    preset: int = Field(ge=0, le=PTZ_MAX_PRESET)


class PresetStore(CapabilityCommand):
    command: Literal["preset_store"] = "preset_store"
    preset: int = Field(ge=0, le=PTZ_MAX_PRESET)


class Home(CapabilityCommand):
    command: Literal["home"] = "home"


class Ptz(Capability):
    """Pan-tilt-zoom cameras (``visca`` over serial and IP)."""

    name = "ptz"
    commands = (Move, Stop, Zoom, PresetRecall, PresetStore, Home)
    state_keys = {
        "power": "on|off (from the power inquiry)",
        "pan": "pan position (device units, signed)",
        "tilt": "tilt position (device units, signed)",
        "zoom": "zoom position (device units, 0 = wide)",
        "preset": "the preset last recalled, None if none",
    }

    @classmethod
    def verify(cls, command: CommandLike, state: Mapping[str, Any]) -> bool:
        cmd = cls.parse(command)
        if isinstance(cmd, PresetRecall):
            return state.get("preset") == cmd.preset
        if isinstance(cmd, Home):
            return state.get("pan") == 0 and state.get("tilt") == 0
        return True  # motion commands leave no state to check

    @classmethod
    def inverse(
        cls, command: CommandLike, state_before: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        cmd = cls.parse(command)
        if isinstance(cmd, PresetRecall):
            before = state_before.get("preset")
            return PresetRecall(preset=before).as_command() if isinstance(before, int) else None
        return None


# --- lookup --------------------------------------------------------------------------------

ALL_CAPABILITIES: tuple[type[Capability], ...] = (Matrix, VideoWall, Ups, Display, Ptz)


def capability_for(
    capabilities: Iterable[type[Capability]], command_name: str
) -> type[Capability] | None:
    """The capability (of those given) that defines ``command_name``."""
    for capability in capabilities:
        if capability.model_for(command_name) is not None:
            return capability
    return None


def validate_command(
    capabilities: Iterable[type[Capability]], command: Mapping[str, Any], type_name: str
) -> CapabilityCommand:
    """Validate a command dict through the capabilities a driver declares.

    Raises :class:`InvalidCommand` listing the legal commands, or naming each bad field.
    """
    caps = tuple(capabilities)
    name = command.get("command")
    capability = capability_for(caps, str(name)) if isinstance(name, str) else None
    if capability is None:
        legal = sorted({REFRESH, *(n for c in caps for n in c.command_names())})
        raise InvalidCommand(
            f"unknown command {name!r} for {type_name} (legal: {', '.join(legal)})"
        )
    return capability.parse(command)


def capabilities_of(type_name: str) -> tuple[type[Capability], ...]:
    """The capabilities the driver registered as ``type_name`` declares."""
    from devices.registry import driver_for

    caps: tuple[type[Capability], ...] = getattr(driver_for(type_name), "capabilities", ())
    return caps


__all__ = [
    "ALL_CAPABILITIES",
    "Capability",
    "CapabilityCommand",
    "CloseWindow",
    "Display",
    "Home",
    "Matrix",
    "Move",
    "MoveWindow",
    "OpenWindow",
    "Power",
    "PresetRecall",
    "PresetStore",
    "Ptz",
    "RecallLayout",
    "Route",
    "SelectInput",
    "SetSource",
    "Stop",
    "Ups",
    "VideoWall",
    "Zoom",
    "capabilities_of",
    "capability_for",
    "describe_validation",
    "validate_command",
]
