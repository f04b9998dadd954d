"""The site file: one YAML document that describes the whole site, validated by pydantic.

``load_site(path)`` returns a ``SiteConfig`` or raises ``ConfigError`` listing every
problem with its key path and line (``devices[3].port: expected integer, line 42``).
Secrets are written as ``${ENV_NAME}`` references and resolved from the environment.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from devices.config import DeviceConfig, Model, Name, Port, check_host
from devices.scenes import SceneConfig, check_scenes
from hub.conferences.arguments import STEP_ARGUMENTS, CreateConferenceArgs
from hub.conferences.config import ConferenceSection
from hub.errors import ConfigError
from hub.plans import STEP_KINDS, LayerStep, PlanConfig, StepBase, check_plans
from hub.snmp.config import SnmpSection, snmp_problems
from hub.yamlsource import YamlDocument, format_path, load_yaml
from monitoring.config import ActionStep, AlarmPolicy, Dependency, dependency_problems
from monitoring.config import Rule as Rule  # warning rules live in monitoring.config
from monitoring.config import WarningLevel as WarningLevel
from monitoring.targets import (
    TARGET_KINDS,
    MqttFeed,
    PushPolicy,
    SeriesPolicy,
    Target,
    TrapListener,
    duplicate_target_ids,
)
from sip.dialplan import parse_address
from sip.trunks import Trunk as Trunk  # trunk models live in sip.trunks
from sip.trunks import TrunkType as TrunkType


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


class SipTls(Model):
    """TLS listener: its own port (default: the SIP port + 1), certificate and key (PEM)."""

    port: Port | None = None
    cert: Path
    key: Path
    ca: Path | None = Field(None, description="verify peers against these CAs")


class SipLimits(Model):
    """Flood bounds: per-source request rate (token bucket) and global caps."""

    rate_per_source: float = Field(200.0, gt=0, description="requests/s from one address")
    burst_per_source: int = Field(400, ge=1)
    max_transactions: int = Field(10_000, ge=1)
    max_message_size: int = Field(65_535, ge=1500, le=1_048_576)


class SipTimers(Model):
    """RFC 3261 timer bases, in seconds (T1 RTT estimate, T2 cap, T4 network lifetime)."""

    t1: float = Field(0.5, gt=0, le=10)
    t2: float = Field(4.0, gt=0, le=64)
    t4: float = Field(5.0, gt=0, le=64)

    @model_validator(mode="after")
    def _t2_not_below_t1(self) -> SipTimers:
        if self.t2 < self.t1:
            raise ValueError(f"t2 ({self.t2}) must not be below t1 ({self.t1})")
        return self


class SipSection(Model):
    host: str = "127.0.0.1"
    port: Port = 5060
    domain: str = "cchub.local"
    transports: list[Literal["udp", "tcp", "tls"]] = Field(["udp", "tcp"], min_length=1)
    digest_algorithms: list[Literal["MD5", "SHA-256"]] = Field(
        ["MD5", "SHA-256"],
        min_length=1,
        description="challenges offered, in order; baresip 1.0 (Debian 12) fails unless MD5 only",
    )
    tls: SipTls | None = None
    limits: SipLimits = SipLimits()
    timers: SipTimers = SipTimers()
    _host = field_validator("host")(check_host)

    @model_validator(mode="after")
    def _transports(self) -> SipSection:
        if len(set(self.transports)) != len(self.transports):
            raise ValueError("a transport is listed twice")
        if "tls" in self.transports and self.tls is None:
            raise ValueError("transport 'tls' needs a 'tls' section with cert and key")
        return self

    @property
    def tls_port(self) -> int | None:
        if "tls" not in self.transports or self.tls is None:
            return None
        if self.tls.port is not None:
            return self.tls.port
        return self.port + 1 if self.port else 0


def _check_route(value: str) -> str:
    parse_address(value)  # AddressError is a ValueError with the precise reason
    return value


class Endpoint(Model):
    """A party the dispatcher can call; ``routes`` are tried in order (mobile, PDT, sat)."""

    id: Name
    name: str
    routes: list[Annotated[str, AfterValidator(_check_route)]] = Field(min_length=1)
    roles: list[str] = []


class MonitoringSection(Model):
    """Producers of the warning core: polled targets, the trap listener, MQTT feeds, HTTP
    push; and the recent series kept for ``/api/v1/metrics``."""

    targets: list[Target] = []
    traps: TrapListener | None = None
    mqtt: list[MqttFeed] = []
    push: PushPolicy = PushPolicy()
    series: SeriesPolicy = SeriesPolicy()
    sources: dict[Name, dict[str, str]] = Field(
        {}, description="labels of each source (e.g. site, room) for rules and escalations"
    )
    device_sample_interval: float = Field(
        10.0, gt=0, description="seconds between feeds of unchanged device states to the rules"
    )

    @model_validator(mode="after")
    def _unique_targets(self) -> MonitoringSection:
        problems = duplicate_target_ids(self.targets)
        if problems:
            raise ValueError("; ".join(problems))
        return self


Plan = PlanConfig  # plans (预案) live in hub.plans: steps by kind, depends_on


class SiteConfig(Model):
    hub: HubSection = HubSection()
    users: list[User] = []
    sip: SipSection = SipSection()
    trunks: list[Trunk] = []
    endpoints: list[Endpoint] = []
    devices: list[DeviceConfig] = []
    monitoring: MonitoringSection = MonitoringSection()
    rules: list[Rule] = []
    alarm: AlarmPolicy = AlarmPolicy()
    dependencies: list[Dependency] = []
    plans: list[Plan] = []
    scenes: list[SceneConfig] = []
    conferences: ConferenceSection = ConferenceSection()
    snmp: SnmpSection | None = None

    @model_validator(mode="after")
    def _unique(self) -> SiteConfig:
        problems: list[str] = []
        for section in ("users", "trunks", "endpoints", "devices", "rules", "plans", "scenes"):
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

    @model_validator(mode="after")
    def _scenes_match_devices(self) -> SiteConfig:
        problems = check_scenes(self.scenes, self.devices)
        if problems:
            raise LocatedProblems(problems)
        return self

    @model_validator(mode="after")
    def _alarm_references(self) -> SiteConfig:
        """Plans named by rules and default actions exist; dependencies have no cycle."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        plans = {p.id for p in self.plans}

        def check(path: tuple[str | int, ...], plan: str | None) -> None:
            if plan is not None and plan not in plans:
                problems.append((path, f"no plan {plan!r} (plans: {sorted(plans) or 'none'})"))

        rule_ids = {r.id for r in self.rules}
        for i, rule in enumerate(self.rules):
            check(("rules", i, "plan"), rule.plan)
            for j, step in enumerate(rule.actions or ()):
                check(("rules", i, "actions", j, "plan"), step.plan)
        for level, steps in self.alarm.actions.items():
            for j, step in enumerate(steps):
                check(("alarm", "actions", level.value, j, "plan"), step.plan)
        for i, esc in enumerate(self.alarm.escalations):
            if esc.id in rule_ids:
                problems.append((("alarm", "escalations", i, "id"), f"{esc.id!r} is a rule id"))
        problems += [
            (("dependencies",), p.split(": ", 1)[1]) for p in dependency_problems(self.dependencies)
        ]
        if problems:
            raise LocatedProblems(problems)
        return self

    @model_validator(mode="after")
    def _plans_and_snmp(self) -> SiteConfig:
        """Plan steps against scenes and devices; trap steps against the SNMP targets."""
        problems = check_plans(self.plans, self.scenes, self.devices)
        problems += self._layer_step_problems()
        if self.snmp is not None:
            problems += snmp_problems(self.snmp)
        targets = [t.id for t in self.snmp.traps.targets] if self.snmp else []
        steps: list[tuple[tuple[str | int, ...], ActionStep]] = [
            (("rules", i, "actions", j), s)
            for i, r in enumerate(self.rules)
            for j, s in enumerate(r.actions or ())
        ]
        steps += [
            (("alarm", "actions", level.value, j), s)
            for level, level_steps in self.alarm.actions.items()
            for j, s in enumerate(level_steps)
        ]
        for path, step in steps:
            if step.do != "trap":
                continue
            if not targets:
                problems.append(((*path, "do"), "a trap step needs snmp.traps.targets"))
            elif step.target is not None and step.target not in targets:
                legal = ", ".join(targets)
                problems.append(((*path, "target"), f"no trap target {step.target!r} ({legal})"))
        if problems:
            raise LocatedProblems(problems)
        return self

    def _layer_step_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """The conference steps' arguments, as the step will read them when it runs; the
        profile they name (a duty-roster role nobody has is ``check-config``'s warning: the
        roster may be empty tonight)."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        profiles = self.conferences.profiles
        for i, plan in enumerate(self.plans):
            for j, step in enumerate(plan.steps):
                model = STEP_ARGUMENTS.get(step.action)
                if model is None or not isinstance(step, LayerStep):
                    continue
                path = ("plans", i, "steps", j)
                try:
                    args = model.model_validate(step.arguments())
                except ValidationError as err:
                    problems += [
                        ((*path, *e["loc"]), describe_error(e, _step_keys(model, e["loc"][:-1])))
                        for e in err.errors()
                    ]
                    continue
                if isinstance(args, CreateConferenceArgs) and args.profile not in profiles:
                    legal = ", ".join(sorted(profiles))
                    problems.append(
                        ((*path, "profile"), f"unknown profile {args.profile!r} ({legal})")
                    )
        return problems


def _step_keys(model: type[BaseModel], owner: tuple[str | int, ...]) -> list[str]:
    """The keys allowed where an unknown key sits in a step's arguments: the step's own keys
    and its kind's, or those of the nested model (a ``tone``) that holds it."""
    for name in owner:
        field = model.model_fields.get(str(name))
        kinds = (field.annotation, *get_args(field.annotation)) if field is not None else ()
        inner = [t for t in kinds if isinstance(t, type) and issubclass(t, BaseModel)]
        if not inner:
            return []
        model = inner[0]
    if owner:
        return list(model.model_fields)
    return [*StepBase.model_fields, "action", *model.model_fields]


class LocatedProblems(ValueError):
    """Cross-section problems (a scene naming a device), each at its own key path."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{format_path(p)}: {m}" for p, m in problems))


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
    if kind in ("too_short", "too_long") and not isinstance(error.get("input"), str):
        least = kind == "too_short"
        limit = error["ctx"]["min_length" if least else "max_length"]
        return f"must have at {'least' if least else 'most'} {limit} item(s)"
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
        if (
            i >= 2
            and loc[i - 2] == "targets"
            and isinstance(loc[i - 1], int)
            and part in TARGET_KINDS
        ):
            continue  # the discriminated union's tag of a monitoring target
        if i >= 2 and loc[i - 2] == "steps" and isinstance(loc[i - 1], int) and part in STEP_KINDS:
            continue  # the tag of a plan step's kind
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
            located = item.get("ctx", {}).get("error")
            if isinstance(located, LocatedProblems):
                for path, message in located.problems:
                    doc.problem(path, message)
                continue
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
