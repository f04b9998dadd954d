"""Site-file models for SIP trunks and their dial rules (``trunks:`` in the site file).

``hub.config`` embeds these; the dial plan (``sip.dialplan``) and the trunk runtime read
them as they are. Pure data and validation: no I/O.
"""

from __future__ import annotations

import enum
import re
import string
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from sip.errors import SipParseError
from sip.uri import parse_host

TrunkId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
]
TrunkPort = Annotated[int, Field(ge=1, le=65535)]
Transport = Literal["udp", "tcp", "tls"]
CodecName = Literal["PCMA", "PCMU", "G722", "opus"]

# Headers the stack builds itself; a dial rule may not set them.
MANAGED_HEADERS = frozenset(
    {
        "via",
        "from",
        "to",
        "call-id",
        "cseq",
        "contact",
        "content-length",
        "content-type",
        "max-forwards",
        "route",
        "record-route",
        "authorization",
        "proxy-authorization",
    }
)
PLACEHOLDERS = ("kind", "number", "scheme")

_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_PARAM_VALUE_RE = re.compile(r"^[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]*$")
_NUMBER_PREFIX_RE = re.compile(r"^\+?[0-9*#]*$")
_CHANNEL_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.\-]*$")
_WILDCARD_RE = re.compile(r"^\*\.[A-Za-z0-9]([A-Za-z0-9\-.]*[A-Za-z0-9])?$")


class TrunkModel(BaseModel):
    """Trunk sections reject unknown keys and are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TrunkType(enum.StrEnum):
    PSTN = "pstn-gateway"
    SATELLITE = "satellite-gateway"
    PDT = "pdt-gateway"
    LTE = "lte-gateway"
    ROIP = "roip-gateway"
    PEER = "sip-peer"


class Scheme(enum.StrEnum):
    """Endpoint address schemes (``pstn:+86...``); ``user`` is local, never a trunk's."""

    PSTN = "pstn"
    SAT = "sat"
    PDT = "pdt"
    LTE = "lte"
    ROIP = "roip"
    SIP = "sip"
    USER = "user"


class CallKind(enum.StrEnum):
    """Trunked-radio call kinds (PDT, LTE): a talk group or one unit (radio/terminal)."""

    GROUP = "group"
    UNIT = "unit"


NUMBER_SCHEMES = frozenset({Scheme.PSTN, Scheme.SAT, Scheme.PDT, Scheme.LTE})
KIND_SCHEMES = frozenset({Scheme.PDT, Scheme.LTE})


def check_host_text(value: str) -> str:
    try:
        parse_host(value)
    except SipParseError as err:
        raise ValueError(f"not an IP address or host name: {value!r}") from err
    return value


def check_template(value: str, what: str) -> str:
    """Only ``{kind}``, ``{number}`` and ``{scheme}`` may appear in a rule's param/header."""
    try:
        fields = [part[1] for part in string.Formatter().parse(value) if part[1] is not None]
    except ValueError as err:
        raise ValueError(f"bad {what} {value!r}: {err}") from None
    for name in fields:
        if name not in PLACEHOLDERS:
            legal = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ValueError(
                f"bad {what} {value!r}: unknown placeholder {{{name}}} (legal: {legal})"
            )
    return value


def fill_template(value: str, *, kind: str, number: str, scheme: str) -> str:
    return value.format(kind=kind, number=number, scheme=scheme)


class DialRule(TrunkModel):
    """Which endpoint addresses a trunk serves, and how it wants the request URI built.

    ``prefixes`` match the normalised number (``+8613800138000``), id (``1001``) or
    channel; ``strip`` characters are then removed from its front and ``add`` put before
    it. Lower ``priority`` is tried first; a longer matching prefix breaks a tie.
    """

    scheme: Scheme
    kinds: list[CallKind] = Field([], description="pdt/lte only: group, unit; empty = both")
    prefixes: list[str] = Field([], description="served number prefixes; empty = all")
    domains: list[str] = Field([], description="sip only: target domains (*.example.org)")
    strip: int = Field(0, ge=0, le=32)
    add: str = Field("", max_length=32, pattern=r"^[A-Za-z0-9+*#_.\-]*$")
    priority: int = Field(100, ge=0, le=10_000)
    host: str | None = Field(None, description="request-URI host (default: trunk domain)")
    user_phone: bool | None = Field(None, description="';user=phone' (default: pstn, sat)")
    params: dict[str, str] = Field({}, description="extra request-URI parameters")
    headers: dict[str, str] = Field({}, description="extra INVITE headers")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else check_host_text(value)

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        for domain in value:
            if not _WILDCARD_RE.match(domain):
                check_host_text(domain)
        return [d.lower() for d in value]

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN_RE.match(name):
                raise ValueError(f"bad URI parameter name {name!r}")
            check_template(text, f"value of URI parameter {name!r}")
            sample = fill_template(text, kind="group", number="1", scheme="pdt")
            if not _PARAM_VALUE_RE.match(sample):
                raise ValueError(f"bad value {text!r} of URI parameter {name!r}")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN_RE.match(name):
                raise ValueError(f"bad header name {name!r}")
            if name.lower() in MANAGED_HEADERS:
                raise ValueError(f"header {name!r} is set by the SIP stack, not by a dial rule")
            if any(ch in text for ch in "\r\n\0"):
                raise ValueError(f"header {name!r}: line breaks are not allowed in the value")
            check_template(text, f"value of header {name!r}")
        return value

    @model_validator(mode="after")
    def _fits_scheme(self) -> DialRule:
        if self.scheme is Scheme.USER:
            raise ValueError("'user' addresses are local registrations, not served by a trunk")
        if self.kinds and self.scheme not in KIND_SCHEMES:
            raise ValueError(f"'kinds' applies to pdt and lte rules, not {self.scheme.value}")
        if self.domains and self.scheme is not Scheme.SIP:
            raise ValueError(f"'domains' applies to sip rules, not {self.scheme.value}")
        if self.scheme is Scheme.SIP:
            if self.prefixes or self.strip or self.add:
                raise ValueError("a sip rule matches 'domains'; prefixes/strip/add do not apply")
            if not self.domains:
                raise ValueError("a sip rule needs 'domains'")
        pattern = _CHANNEL_PREFIX_RE if self.scheme is Scheme.ROIP else _NUMBER_PREFIX_RE
        for prefix in self.prefixes:
            if not prefix or not pattern.match(prefix):
                raise ValueError(f"bad prefix {prefix!r} for a {self.scheme.value} rule")
        return self

    @property
    def wants_user_phone(self) -> bool:
        if self.user_phone is not None:
            return self.user_phone
        return self.scheme in (Scheme.PSTN, Scheme.SAT)


class TrunkRegistration(TrunkModel):
    """Outbound registration to the peer; credentials default to the trunk's own."""

    username: str | None = Field(None, min_length=1, max_length=128)
    password: SecretStr | None = None
    expiry: int = Field(3600, ge=30, le=86_400)
    realm: str | None = Field(None, description="answer only this digest realm")
    domain: str | None = Field(None, description="address-of-record domain (default: trunk)")


class Trunk(TrunkModel):
    """A SIP peer: a gateway to PSTN, satellite, PDT, LTE or radio, or another SIP server."""

    id: TrunkId
    type: TrunkType
    host: str
    port: TrunkPort = 5060
    transport: Transport = "udp"
    domain: str | None = Field(None, description="the peer's SIP domain (default: host)")
    username: str | None = Field(None, min_length=1, max_length=128)
    password: SecretStr | None = None
    registration: TrunkRegistration | None = None
    options_interval: float | None = Field(30.0, gt=0, description="null: no keep-alive")
    max_calls: int = Field(30, ge=1)
    codecs: list[CodecName] = Field(["PCMA", "PCMU"], min_length=1)
    dialplan: list[DialRule] | None = Field(None, description="default: by trunk type")

    _host = field_validator("host")(check_host_text)

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        return None if value is None else check_host_text(value)

    @field_validator("registration", mode="before")
    @classmethod
    def _registration_flag(cls, value: Any) -> Any:
        # `registration: true` registers with the trunk's credentials and defaults.
        if value is True:
            return {}
        if value is False:
            return None
        return value

    @field_validator("codecs")
    @classmethod
    def _unique_codecs(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a codec is listed twice")
        return value

    @model_validator(mode="after")
    def _registration_credentials(self) -> Trunk:
        if self.registration is not None and self.register_username is None:
            raise ValueError("registration needs a username (registration.username or username)")
        return self

    @property
    def uri_host(self) -> str:
        return self.domain or self.host

    @property
    def register_username(self) -> str | None:
        if self.registration is None:
            return None
        return self.registration.username or self.username

    @property
    def register_password(self) -> SecretStr | None:
        if self.registration is None:
            return None
        return self.registration.password or self.password

    @property
    def rules(self) -> list[DialRule]:
        """The dial rules in force: the configured ones, or the type's defaults."""
        if self.dialplan is not None:
            return self.dialplan
        return default_rules(self)


def default_rules(trunk: Trunk) -> list[DialRule]:
    """What a trunk serves when its ``dialplan`` is not written out."""
    match trunk.type:
        case TrunkType.PSTN:
            return [DialRule(scheme=Scheme.PSTN)]
        case TrunkType.SATELLITE:
            return [DialRule(scheme=Scheme.SAT)]
        case TrunkType.PDT:
            return [DialRule(scheme=Scheme.PDT, params={"call-type": "{kind}"})]
        case TrunkType.LTE:
            return [DialRule(scheme=Scheme.LTE, params={"call-type": "{kind}"})]
        case TrunkType.ROIP:
            return [DialRule(scheme=Scheme.ROIP)]
        case TrunkType.PEER:
            return [DialRule(scheme=Scheme.SIP, domains=[trunk.uri_host])]
