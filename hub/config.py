"""The site file: one YAML document that describes the whole site, validated by pydantic.

``load_site(path)`` returns a ``SiteConfig`` or raises ``ConfigError`` listing every
problem with its key path and line (``devices[3].port: expected integer, line 42``).
Secrets are written as ``${ENV_NAME}`` references and resolved from the environment.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from devices.config import DeviceConfig, Model, Name, Port, check_host
from hub.errors import ConfigError
from hub.yamlsource import YamlDocument, format_path, load_yaml


class Role(enum.StrEnum):
    DISPATCHER = "dispatcher"
    ENGINEER = "engineer"
    OPS = "ops"
    PLATFORM = "platform"
    ADMIN = "admin"


class ApiConfig(Model):
    host: str = "127.0.0.1"
    port: Port = 8080
    _host = field_validator("host")(check_host)


class StoreConfig(Model):
    backend: Literal["sqlite"] = "sqlite"
    path: Path | None = Field(None, description="default: <data_dir>/cchub.db")
    synchronous: Literal["full", "normal"] = "full"


class HubSection(Model):
    name: Name = "cchub"
    data_dir: Path = Path("var")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout: float = Field(5.0, gt=0, le=60)
    subscriber_queue: int = Field(1000, ge=10, le=1_000_000)
    api: ApiConfig = ApiConfig()
    store: StoreConfig = StoreConfig()

    @property
    def store_path(self) -> Path:
        return self.store.path or self.data_dir / "cchub.db"


class User(Model):
    name: Name
    role: Role
    token: SecretStr = Field(min_length=16)
    sip_password: SecretStr | None = None


class SipSection(Model):
    host: str = "127.0.0.1"
    port: Port = 5060
    domain: str = "cchub.local"
    transports: list[Literal["udp", "tcp", "tls"]] = ["udp", "tcp"]
    _host = field_validator("host")(check_host)


class TrunkType(enum.StrEnum):
    PSTN = "pstn-gateway"
    SATELLITE = "satellite-gateway"
    PDT = "pdt-gateway"
    LTE = "lte-gateway"
    ROIP = "roip-gateway"
    PEER = "sip-peer"


class Trunk(Model):
    id: Name
    type: TrunkType
    host: str
    port: Port = 5060
    transport: Literal["udp", "tcp", "tls"] = "udp"
    username: str | None = None
    password: SecretStr | None = None
    registration: bool = Field(False, description="register to the peer (outbound)")
    max_calls: int = Field(30, ge=1)
    options_interval: float = Field(30.0, gt=0)
    _host = field_validator("host")(check_host)


class Endpoint(Model):
    """A party the dispatcher can call; ``routes`` are tried in order (mobile, PDT, sat)."""

    id: Name
    name: str
    routes: list[Annotated[str, Field(pattern=r"^[a-z]+:.+$")]] = Field(min_length=1)
    roles: list[str] = []


class MonitorTarget(Model):
    id: Name
    kind: Literal["snmp", "nut", "modbus", "sip-options", "rtsp", "device"]
    target: str
    interval: float = Field(30.0, gt=0)


class MonitoringSection(Model):
    targets: list[MonitorTarget] = []


class WarningLevel(enum.StrEnum):
    BLUE = "blue"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"


class Rule(Model):
    id: Name
    metric: str
    above: float | None = None
    below: float | None = None
    clear: float | None = None
    level: WarningLevel = WarningLevel.BLUE
    consecutive: int = Field(1, ge=1)
    plan: str | None = None

    @model_validator(mode="after")
    def _has_threshold(self) -> Rule:
        if self.above is None and self.below is None:
            raise ValueError("a rule needs 'above' or 'below'")
        return self


class PlanStep(Model):
    action: str
    args: dict[str, Any] = {}


class Plan(Model):
    id: Name
    name: str
    steps: list[PlanStep] = Field(min_length=1)


class SiteConfig(Model):
    hub: HubSection = HubSection()
    users: list[User] = []
    sip: SipSection = SipSection()
    trunks: list[Trunk] = []
    endpoints: list[Endpoint] = []
    devices: list[DeviceConfig] = []
    monitoring: MonitoringSection = MonitoringSection()
    rules: list[Rule] = []
    plans: list[Plan] = []

    @model_validator(mode="after")
    def _unique(self) -> SiteConfig:
        problems: list[str] = []
        for section in ("users", "trunks", "endpoints", "devices", "rules", "plans"):
            seen: dict[str, int] = {}
            for index, item in enumerate(getattr(self, section)):
                key = item.name if section == "users" else item.id
                if key in seen:
                    problems.append(
                        f"{section}[{index}]: duplicate {key!r} (first at {section}[{seen[key]}])"
                    )
                seen.setdefault(key, index)
        tokens: dict[str, str] = {}
        for user in self.users:
            secret = user.token.get_secret_value()
            if secret in tokens:
                problems.append(f"users: {user.name!r} and {tokens[secret]!r} share a token")
            tokens[secret] = user.name
        if problems:
            raise ValueError("; ".join(problems))
        return self


# -- error reporting -----------------------------------------------------------------------

_MESSAGES = {
    "int_parsing": "expected integer",
    "int_type": "expected integer",
    "int_from_float": "expected integer",
    "float_parsing": "expected number",
    "float_type": "expected number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "missing": "required key is missing",
}


def describe_error(error: Any, owner_fields: list[str] | None = None) -> str:
    """A pydantic error as a short phrase for ``path: phrase, line N`` (site, bench, scenario)."""
    kind = error["type"]
    if kind == "extra_forbidden":
        legal = f" (allowed: {', '.join(owner_fields)})" if owner_fields else ""
        return f"unknown key{legal}"
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "union_tag_invalid":
        return f"unknown kind {error['ctx']['tag']!r} (expected {error['ctx']['expected_tags']})"
    if kind == "union_tag_not_found":
        return f"'{error['ctx']['discriminator'].strip(chr(39))}' is required"
    if kind == "string_pattern_mismatch":
        return f"does not match the pattern {error['ctx']['pattern']}"
    if kind in ("too_short", "string_too_short"):
        return f"must be at least {error['ctx']['min_length']} characters"
    if kind in ("too_long", "string_too_long"):
        return f"must be at most {error['ctx']['max_length']} characters"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return message_bound(error)
    if kind == "literal_error" or kind == "enum":
        return f"expected one of {error['ctx']['expected']}"
    message: str = error["msg"]
    return message.removeprefix("Value error, ")


def message_bound(error: Any) -> str:
    ops = {
        "greater_than_equal": ">=",
        "less_than_equal": "<=",
        "greater_than": ">",
        "less_than": "<",
    }
    ctx = error["ctx"]
    limit = next(iter(ctx.values()))
    return f"must be {ops[error['type']]} {limit}"


def _fields_at(root: type[BaseModel], path: tuple[str | int, ...]) -> list[str] | None:
    """The legal keys of the model that sits at ``path`` under ``root``."""
    model: Any = root
    for part in path:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        model = _model_of(field.annotation)
        if model is None:
            return None
    return list(model.model_fields) if hasattr(model, "model_fields") else None


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Drop pydantic's union-member tags (``tcp``, ``function-after[...]``) from a location."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if (
            isinstance(part, str)
            and i > 0
            and loc[i - 1] == "transport"
            and part
            in (
                "tcp",
                "udp",
                "serial",
                "snmp",
                "http",
            )
        ):
            continue
        if isinstance(part, str) and ("[" in part and "]" in part):
            continue
        out.append(part)
    return tuple(out)


M = TypeVar("M", bound=BaseModel)


def validate_yaml(
    doc: YamlDocument, model: type[M], error: type[ConfigError], source: str = ""
) -> M:
    """Validate a parsed YAML document against ``model``; raise ``error`` listing every
    problem as ``path: phrase, line N`` (site files, bench scenarios)."""
    if doc.data is None:
        raise error(doc.problems or ["empty document"], source)
    if not isinstance(doc.data, dict):
        raise error(["(top level): expected a mapping of sections, line 1"], source)
    try:
        result = model.model_validate(doc.data)
    except ValidationError as err:
        already = {p.split(":")[0] for p in doc.problems}
        for item in err.errors():
            loc = _clean_loc(item["loc"])
            if format_path(loc) in already:
                continue  # e.g. an unset ${VAR}: one precise problem is enough
            parent = loc[:-1] if item["type"] == "extra_forbidden" else loc
            doc.problem(loc, describe_error(item, _fields_at(model, parent)))
        raise error(doc.problems, source) from None
    if doc.problems:
        raise error(doc.problems, source)
    return result


def validate_document(doc: YamlDocument, source: str = "") -> SiteConfig:
    return validate_yaml(doc, SiteConfig, ConfigError, source)


def load_site(path: Path | str) -> SiteConfig:
    """Read, resolve and validate a site file; raise ``ConfigError`` with every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([f"cannot read site file: {err.strerror}"], str(path)) from err
    return validate_document(load_yaml(text), str(path))
