"""Bench files (``lab/benches/*.yaml``): which devices the bench has, where, and how it comes up.

Styled after labgrid: per device a *resource* (where it is), a *driver* (how to talk to it:
the site-file ``type:``), and one *strategy* for bringing the bench up and down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from devices.config import MIN_USM_KEY, SnmpAuthProtocol, SnmpPrivProtocol
from devices.registry import known_types
from hub.config import describe_error
from hub.errors import ConfigError
from hub.yamlsource import YamlDocument, format_path, load_yaml
from lab.registry import simulator_for, simulator_types

Port = Annotated[int, Field(ge=0, le=65535)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]


class BenchFileError(ConfigError):
    """The bench file is invalid; ``problems`` lists each finding with key path and line."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PtyResource(Model):
    """A simulator on a pseudo-terminal pair; the hub opens the slave side."""

    kind: Literal["pty"]
    baudrate: int = Field(9600, gt=0)


class SerialResource(Model):
    """A real serial port (real hardware only)."""

    kind: Literal["serial"]
    port: str
    baudrate: int = Field(9600, gt=0)


class TcpResource(Model):
    kind: Literal["tcp"]
    host: str = "127.0.0.1"
    port: Port = Field(0, description="0: a free port")


class UdpResource(Model):
    """A UDP port (VISCA over IP)."""

    kind: Literal["udp"]
    host: str = "127.0.0.1"
    port: Port = Field(0, description="0: a free port")


class SnmpResource(Model):
    kind: Literal["snmp"]
    host: str = "127.0.0.1"
    port: Port = Field(0, description="0: a free port")
    version: Literal["1", "2c", "3"] = "2c"
    community: str = Field("public", description="v1/v2c; with v3 the context name")
    # SNMPv3 (USM): the agent's user; the fields and rules of the site file's snmp transport
    user: str | None = None
    auth_protocol: SnmpAuthProtocol | None = None
    auth_key: str | None = Field(None, min_length=MIN_USM_KEY)
    priv_protocol: SnmpPrivProtocol | None = None
    priv_key: str | None = Field(None, min_length=MIN_USM_KEY)

    @model_validator(mode="after")
    def _usm(self) -> SnmpResource:
        if self.version == "3" and self.user is None:
            raise ValueError("SNMPv3 needs a user")
        if self.priv_key is not None and self.auth_key is None:
            raise ValueError("priv_key needs an auth_key (authPriv)")
        return self


Resource = Annotated[
    PtyResource | SerialResource | TcpResource | UdpResource | SnmpResource,
    Field(discriminator="kind"),
]
RESOURCE_KINDS = ("pty", "serial", "tcp", "udp", "snmp")


class Driver(Model):
    """How the hub talks to the device: copied into the site file's device entry."""

    type: str
    name: str = ""
    poll_interval: float | None = Field(None, gt=0)
    timeout: float | None = Field(None, gt=0)
    options: dict[str, Any] = {}

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        legal = sorted({*simulator_types(), *known_types()})
        if value not in legal:
            raise ValueError(f"unknown device type {value!r} (legal types: {', '.join(legal)})")
        return value


class Device(Model):
    resource: Resource
    driver: Driver
    simulated: bool = Field(True, description="false: real hardware at the resource")
    state: dict[str, Any] = Field({}, description="the simulator's initial state")

    @model_validator(mode="after")
    def _fits(self) -> Device:
        kind = self.resource.kind
        if self.simulated:
            if kind == "serial":
                raise ValueError("a simulated serial device needs resource kind 'pty'")
            try:
                sim = simulator_for(self.driver.type)
            except KeyError as err:
                raise ValueError(str(err.args[0])) from None
            if kind not in sim.resource_kinds:
                raise ValueError(
                    f"simulator {self.driver.type!r} runs on {', '.join(sim.resource_kinds)},"
                    f" not {kind!r}"
                )
        else:
            if kind == "pty":
                raise ValueError("resource kind 'pty' is for simulators (simulated: true)")
            if getattr(self.resource, "port", None) == 0:
                raise ValueError("a real device needs its real port, not 0")
        return self


class Control(Model):
    host: str = "127.0.0.1"
    port: Port = 0


class Strategy(Model):
    order: list[Name] = Field([], description="bring-up order (default: file order)")
    start_timeout: float = Field(30.0, gt=0, le=600)
    on_crash: Literal["report", "stop"] = "report"
    control: Control = Control()
    scenario: str | None = Field(None, description="scenario file run once the bench is up")


class BenchSpec(Model):
    bench: Name
    description: str = ""
    devices: dict[Name, Device] = Field(min_length=1)
    strategy: Strategy = Strategy()
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _order(self) -> BenchSpec:
        unknown = [n for n in self.strategy.order if n not in self.devices]
        if unknown:
            raise ValueError(f"strategy.order names unknown devices: {', '.join(unknown)}")
        return self

    def bring_up_order(self) -> list[str]:
        rest = [n for n in self.devices if n not in self.strategy.order]
        return [*self.strategy.order, *rest]

    def scenario_path(self) -> Path | None:
        if self.strategy.scenario is None:
            return None
        path = Path(self.strategy.scenario)
        if not path.is_absolute() and self.source is not None:
            path = self.source.parent / path
        return path


def _clean(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Drop pydantic's union-member tags (``tcp``, ``function-after[...]``) from a location."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and i > 0 and loc[i - 1] == "resource" and part in RESOURCE_KINDS:
            continue
        out.append(part)
    return tuple(out)


def _allowed(loc: tuple[str | int, ...], doc: YamlDocument) -> str:
    """The legal keys of the mapping at ``loc`` (for 'unknown key' messages)."""
    model: Any = BenchSpec
    data = doc.data
    for part in loc:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int):
            data = data[part]
        if model is BenchSpec and part == "devices":
            model = dict
            continue
        if model is dict:
            model = Device
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return ""
        if part == "resource" and isinstance(data, dict):
            model = {
                "pty": PtyResource,
                "serial": SerialResource,
                "tcp": TcpResource,
                "udp": UdpResource,
                "snmp": SnmpResource,
            }.get(str(data.get("kind")))
        else:
            model = field.annotation
        if model is None:
            return ""
    fields = [k for k in getattr(model, "model_fields", {}) if k != "source"]
    return f" (allowed: {', '.join(fields)})" if fields else ""


def _describe(error: Any, loc: tuple[str | int, ...], doc: YamlDocument) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key" + _allowed(loc[:-1], doc)
    if kind == "union_tag_invalid":
        return f"unknown kind {error['ctx']['tag']!r} (legal kinds: {', '.join(RESOURCE_KINDS)})"
    if kind == "union_tag_not_found":
        return f"'kind' is required (legal kinds: {', '.join(RESOURCE_KINDS)})"
    return describe_error(error)


def _check_states(doc: YamlDocument) -> None:
    """Validate each simulator's ``state:`` against that simulator's state model."""
    devices = doc.data.get("devices") if isinstance(doc.data, dict) else None
    if not isinstance(devices, dict):
        return
    for name, device in devices.items():
        if not isinstance(device, dict) or not isinstance(device.get("state", {}), dict):
            continue
        driver = device.get("driver")
        type_name = driver.get("type") if isinstance(driver, dict) else None
        if device.get("simulated", True) is False or type_name not in simulator_types():
            continue
        try:
            simulator_for(str(type_name)).state_model.model_validate(device.get("state", {}))
        except ValidationError as err:
            for error in err.errors():
                loc = ("devices", str(name), "state", *error["loc"])
                if error["type"] == "extra_forbidden":
                    fields = simulator_for(str(type_name)).state_model.model_fields
                    message = f"unknown key (allowed: {', '.join(fields)})"
                else:
                    message = error["msg"].removeprefix("Value error, ")
                doc.problem(loc, message)


def validate_bench(doc: YamlDocument, source: Path | None = None) -> BenchSpec:
    where = str(source) if source else ""
    if doc.data is None:
        raise BenchFileError(doc.problems or ["empty document"], where)
    if not isinstance(doc.data, dict):
        raise BenchFileError(["(top level): expected a mapping, line 1"], where)
    try:
        spec = BenchSpec.model_validate({**doc.data, "source": source})
    except ValidationError as err:
        for error in err.errors():
            loc = _clean(error["loc"])
            doc.problem(loc, _describe(error, loc, doc))
        _check_states(doc)
        raise BenchFileError(doc.problems, where) from None
    _check_states(doc)
    if doc.problems:
        raise BenchFileError(doc.problems, where)
    return spec


def load_bench(path: Path | str) -> BenchSpec:
    """Read and validate a bench file; raise ``BenchFileError`` listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise BenchFileError([f"cannot read bench file: {err.strerror}"], str(path)) from err
    return validate_bench(load_yaml(text), path)


def legal_types() -> str:
    return ", ".join(simulator_types())


__all__ = ["BenchFileError", "BenchSpec", "Device", "format_path", "legal_types", "load_bench"]
