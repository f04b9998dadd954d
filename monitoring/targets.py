"""Site-file models of the monitoring producers: polled targets, the trap listener, MQTT
feeds and the HTTP push policy. The hub's site-file loader embeds them under ``monitoring:``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from devices.config import (
    MIN_USM_KEY,
    Model,
    Name,
    Port,
    SerialTransport,
    SnmpAuthProtocol,
    SnmpPrivProtocol,
    SnmpTransport,
    TcpTransport,
    check_host,
)

NUMERIC_OID = r"^\.?[0-2](\.\d+)+$"
MetricName = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.:\-]*$")
]
Interval = Annotated[float, Field(gt=0, le=86400)]


class PollPolicy(Model):
    """Schedule of one polled target: every ``interval`` s (jittered), each poll bounded by
    ``timeout`` per attempt; after failures the next poll waits longer, up to ``backoff_max``."""

    id: Name
    interval: Interval = 30.0
    timeout: float = Field(2.0, gt=0, le=60)
    retries: int = Field(1, ge=0, le=5, description="resends after a timeout")
    backoff_max: Interval = 300.0

    @property
    def deadline(self) -> float:
        """The longest one poll may take (every attempt, plus slack) before it is abandoned."""
        return self.timeout * (self.retries + 1) + 1.0


# -- SNMP --------------------------------------------------------------------------------


class SnmpObject(Model):
    """A vendor object from the site file: a scalar OID (GET) or, with ``walk``, a column
    whose rows each give one sample labelled ``index``."""

    oid: str = Field(pattern=NUMERIC_OID)
    metric: MetricName
    unit: str = ""
    scale: float = 1.0
    offset: float = 0.0
    counter: bool = Field(False, description="a counter: report its rate per second")
    walk: bool = False


SnmpMib = Literal["if-mib", "ups-mib", "entity-sensor"]


class SnmpTarget(SnmpTransport, PollPolicy):
    """An SNMP agent polled with GET (scalars) and GETBULK (tables; GETNEXT on v1)."""

    mibs: list[SnmpMib] = Field([], description="description tables to read")
    objects: list[SnmpObject] = []
    max_repetitions: int = Field(25, ge=1, le=200)

    @model_validator(mode="after")
    def _something_to_read(self) -> SnmpTarget:
        if not self.mibs and not self.objects:
            raise ValueError("an snmp target needs 'mibs' or 'objects'")
        if len(set(self.mibs)) != len(self.mibs):
            raise ValueError("a mib is listed twice")
        return self


# -- Modbus ------------------------------------------------------------------------------

RegisterType = Literal["int16", "uint16", "int32", "uint32", "float32"]
REGISTER_WORDS: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
}


class ModbusRegister(Model):
    """One reading from a register map: ``value = raw * scale + offset``."""

    metric: MetricName
    function: Literal[3, 4] = Field(3, description="3: holding registers, 4: input registers")
    address: int = Field(ge=0, le=65535)
    type: RegisterType = "uint16"
    word_order: Literal["big", "little"] = Field(
        "big", description="32-bit values: which register holds the high word"
    )
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    labels: dict[str, str] = {}

    @property
    def words(self) -> int:
        return REGISTER_WORDS[self.type]


ModbusTransport = Annotated[TcpTransport | SerialTransport, Field(discriminator="kind")]


class ModbusTarget(PollPolicy):
    """A Modbus TCP or RTU (serial) device read by register map."""

    kind: Literal["modbus"]
    transport: ModbusTransport
    unit_id: int = Field(1, ge=0, le=247, description="slave / unit identifier")
    addressing: Literal[0, 1] = Field(
        0, description="1: addresses as in vendor manuals (register 1 is wire address 0)"
    )
    max_read: int = Field(125, ge=1, le=125, description="registers per request at most")
    max_gap: int = Field(8, ge=0, le=64, description="unused registers read to join blocks")
    registers: list[ModbusRegister] = Field(min_length=1)

    @model_validator(mode="after")
    def _addresses(self) -> ModbusTarget:
        for i, reg in enumerate(self.registers):
            if reg.address < self.addressing:
                raise ValueError(
                    f"registers[{i}]: address {reg.address} is below {self.addressing}"
                    " (1-based addressing)"
                )
            last = reg.address - self.addressing + reg.words - 1
            if last > 65535:
                raise ValueError(f"registers[{i}]: {reg.type} at {reg.address} runs past 65535")
            if reg.words > self.max_read:
                raise ValueError(f"registers[{i}]: {reg.type} needs more than max_read registers")
        return self


# -- NUT, SIP OPTIONS, RTSP --------------------------------------------------------------


class NutTarget(PollPolicy):
    """A NUT server (upsd); every UPS it serves, or only ``ups``."""

    kind: Literal["nut"]
    host: str
    port: Port = 3493
    ups: str | None = Field(None, min_length=1)
    username: str | None = Field(None, min_length=1)
    password: SecretStr | None = None
    _host = field_validator("host")(check_host)

    @model_validator(mode="after")
    def _credentials(self) -> NutTarget:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


class SipOptionsTarget(PollPolicy):
    """A SIP trunk or gateway pinged with OPTIONS; a final answer in ``alive`` means up
    (default: any final answer below 500 proves a live SIP stack)."""

    kind: Literal["sip-options"]
    uri: str = Field(pattern=r"^sips?:")
    alive: list[Annotated[int, Field(ge=100, le=699)]] | None = None


class RtspTarget(PollPolicy):
    """A camera's RTSP service probed with OPTIONS or DESCRIBE over TCP."""

    kind: Literal["rtsp"]
    url: str = Field(pattern=r"^rtsp://[^/\s]+")
    method: Literal["OPTIONS", "DESCRIBE"] = "DESCRIBE"


Target = Annotated[
    SnmpTarget | ModbusTarget | NutTarget | SipOptionsTarget | RtspTarget,
    Field(discriminator="kind"),
]
TARGET_KINDS = ("snmp", "modbus", "nut", "sip-options", "rtsp")


# -- trap listener -----------------------------------------------------------------------


class TrapUser(Model):
    """An SNMPv3 user allowed to send traps (``engine_id``: the sender's) and informs."""

    user: str = Field(min_length=1, max_length=32)
    auth_protocol: SnmpAuthProtocol = "SHA"
    auth_key: SecretStr | None = None
    priv_protocol: SnmpPrivProtocol = "AES128"
    priv_key: SecretStr | None = None
    engine_id: str | None = Field(
        None, pattern=r"^(0x)?[0-9A-Fa-f]{10,64}$", description="the trap sender's engine ID"
    )

    @model_validator(mode="after")
    def _keys(self) -> TrapUser:
        for name in ("auth_key", "priv_key"):
            key: SecretStr | None = getattr(self, name)
            if key is not None and len(key.get_secret_value()) < MIN_USM_KEY:
                raise ValueError(f"{name} must be at least {MIN_USM_KEY} characters")
        if self.priv_key is not None and self.auth_key is None:
            raise ValueError("priv_key needs an auth_key (authPriv)")
        return self


class TrapListener(Model):
    """The in-process trap and inform receiver (v1, v2c, v3)."""

    host: str = "127.0.0.1"
    port: Port = 162
    communities: list[SecretStr] = Field(
        default_factory=lambda: [SecretStr("public")], description="v1/v2c"
    )
    users: list[TrapUser] = []
    sources: dict[str, Name] = Field({}, description="sender address -> source name")
    names: dict[str, str] = Field({}, description="trap OID -> name (vendor traps)")
    clears: dict[str, str] = Field(
        {"linkUp": "linkDown"}, description="trap name -> the trap whose alarm it clears"
    )
    _host = field_validator("host")(check_host)

    @field_validator("names")
    @classmethod
    def _numeric(cls, value: dict[str, str]) -> dict[str, str]:
        for oid in value:
            if not re.match(NUMERIC_OID, oid):
                raise ValueError(f"{oid!r} is not a numeric OID")
        return value


# -- MQTT --------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class MqttSubscription(Model):
    """Topic filter -> metric. ``{1}``, ``{2}``... in ``metric``, ``source`` and ``labels``
    stand for the topic levels matched by the filter's wildcards, ``{topic}`` for all of it.
    ``field`` is a dotted path into a JSON object; without it the payload is one number
    (or ``true``/``false``)."""

    topic: str = Field(min_length=1)
    metric: str = Field(min_length=1)
    source: str = Field(min_length=1)
    field: str | None = Field(None, min_length=1)
    unit: str = ""
    unit_field: str | None = Field(None, description="the payload's unit must equal 'unit'")
    ts_field: str | None = Field(None, description="UNIX seconds or ISO 8601; default: arrival")
    scale: float = 1.0
    offset: float = 0.0
    labels: dict[str, str] = {}
    qos: Literal[0, 1, 2] = 1

    @model_validator(mode="after")
    def _filter(self) -> MqttSubscription:
        levels = self.topic.split("/")
        for i, level in enumerate(levels):
            if "#" in level and (level != "#" or i != len(levels) - 1):
                raise ValueError("'#' must be a whole last level of the topic filter")
            if "+" in level and level != "+":
                raise ValueError("'+' must be a whole level of the topic filter")
        wildcards = sum(1 for level in levels if level in ("+", "#"))
        for text in (self.metric, self.source, *self.labels.values()):
            for name in _PLACEHOLDER.findall(text):
                if name == "topic":
                    continue
                if not name.isdigit() or not 1 <= int(name) <= wildcards:
                    raise ValueError(
                        f"{{{name}}}: the filter has {wildcards} wildcard level(s)"
                        " ({1}.. name them, {topic} is the whole topic)"
                    )
        return self


class MqttFeed(Model):
    """One broker and what to take from it."""

    host: str = "127.0.0.1"
    port: Port = 1883
    username: str | None = None
    password: SecretStr | None = None
    client_id: str = Field("cchub", min_length=1, max_length=64)
    keepalive: int = Field(30, ge=5, le=3600)
    queue: int = Field(10_000, ge=1, le=1_000_000, description="messages waiting at most")
    backoff_max: Interval = 30.0
    subscriptions: list[MqttSubscription] = Field(min_length=1)
    _host = field_validator("host")(check_host)


class PushPolicy(Model):
    """``POST /api/v1/sensing``: batch size and how old a record may be."""

    max_records: int = Field(1000, ge=1, le=100_000)
    max_age: Interval = 86400.0


class SeriesPolicy(Model):
    """Recent samples kept in memory per series; 1-minute roll-ups go to the store."""

    points: int = Field(720, ge=10, le=100_000)
    max_series: int = Field(50_000, ge=10, le=5_000_000)
    rollup_retention: float = Field(30 * 86400.0, gt=0, description="seconds")


def duplicate_target_ids(targets: list[Target]) -> list[str]:
    seen: dict[str, int] = {}
    problems: list[str] = []
    for index, target in enumerate(targets):
        if target.id in seen:
            problems.append(
                f"targets[{index}]: duplicate {target.id!r} (first at targets[{seen[target.id]}])"
            )
        seen.setdefault(target.id, index)
    return problems
