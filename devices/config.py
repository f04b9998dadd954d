"""Site-file models for devices: which driver (``type:``), and how to reach it (``transport:``).

The hub's site-file loader embeds these; drivers receive them as they are.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from devices.registry import known_types

Port = Annotated[int, Field(ge=0, le=65535)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]


class Model(BaseModel):
    """Every section rejects unknown keys and is immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"not an IP address or host name: {value!r}") from None
    return value


class TcpTransport(Model):
    kind: Literal["tcp"]
    host: str
    port: Port
    _host = field_validator("host")(check_host)


class UdpTransport(Model):
    kind: Literal["udp"]
    host: str
    port: Port
    _host = field_validator("host")(check_host)


class SerialTransport(Model):
    kind: Literal["serial"]
    port: str = Field(description="device path or a pyserial URL such as loop://")
    baudrate: int = Field(9600, gt=0)
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 2] = 1


SnmpAuthProtocol = Literal["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
# AES192/AES256 localise keys as net-snmp does (Blumenthal draft); ...C as Cisco does (Reeder)
SnmpPrivProtocol = Literal["DES", "AES", "AES128", "AES192", "AES256", "AES192C", "AES256C"]
SnmpSecurityLevel = Literal["noAuthNoPriv", "authNoPriv", "authPriv"]
MIN_USM_KEY = 8  # RFC 3414 2.6: pass phrases shorter than 8 characters are refused


class SnmpTransport(Model):
    kind: Literal["snmp"]
    host: str
    port: Port = 161
    version: Literal["1", "2c", "3"] = "2c"
    community: SecretStr | None = None
    # SNMPv3 (USM): keys are usually ${ENV} secrets
    user: str | None = Field(None, min_length=1, max_length=32)
    security_level: SnmpSecurityLevel | None = Field(None, description="default: by the keys")
    auth_protocol: SnmpAuthProtocol | None = Field(None, description="default: SHA")
    auth_key: SecretStr | None = None
    priv_protocol: SnmpPrivProtocol | None = Field(None, description="default: AES128")
    priv_key: SecretStr | None = None
    context: str = Field("", max_length=32, description="SNMPv3 context name")
    _host = field_validator("host")(check_host)

    @property
    def level(self) -> SnmpSecurityLevel:
        """The SNMPv3 security level, as given or as the keys imply."""
        if self.security_level is not None:
            return self.security_level
        if self.priv_key is not None:
            return "authPriv"
        return "authNoPriv" if self.auth_key is not None else "noAuthNoPriv"

    @model_validator(mode="after")
    def _usm(self) -> SnmpTransport:
        usm = ("user", "security_level", "auth_protocol", "auth_key", "priv_protocol", "priv_key")
        given = [name for name in usm if getattr(self, name) is not None]
        if self.context:
            given.append("context")
        if self.version != "3":
            if given:
                raise ValueError(f"{', '.join(given)}: SNMPv3 settings need version '3'")
            return self
        if self.community is not None:
            raise ValueError("community is for SNMP v1/v2c; SNMPv3 uses user and keys")
        if self.user is None:
            raise ValueError("SNMPv3 needs a user")
        for name in ("auth_key", "priv_key"):
            key: SecretStr | None = getattr(self, name)
            if key is not None and len(key.get_secret_value()) < MIN_USM_KEY:
                raise ValueError(f"{name} must be at least {MIN_USM_KEY} characters")
        level = self.level
        wants_auth, wants_priv = level != "noAuthNoPriv", level == "authPriv"
        if wants_auth != (self.auth_key is not None):
            need = "needs an auth_key" if wants_auth else "takes no auth_key"
            raise ValueError(f"security level {level} {need}")
        if wants_priv != (self.priv_key is not None):
            need = "needs a priv_key" if wants_priv else "takes no priv_key (use authPriv)"
            raise ValueError(f"security level {level} {need}")
        if self.auth_protocol is not None and not wants_auth:
            raise ValueError(f"auth_protocol is unused at security level {level}")
        if self.priv_protocol is not None and not wants_priv:
            raise ValueError(f"priv_protocol is unused at security level {level}")
        return self


class HttpTransport(Model):
    kind: Literal["http"]
    url: str = Field(pattern=r"^https?://")


TransportConfig = Annotated[
    TcpTransport | UdpTransport | SerialTransport | SnmpTransport | HttpTransport,
    Field(discriminator="kind"),
]


class DeviceConfig(Model):
    id: Name
    type: str = Field(min_length=1)
    name: str = ""
    transport: TransportConfig
    poll_interval: float = Field(10.0, gt=0)
    timeout: float = Field(2.0, gt=0)
    options: dict[str, Any] = {}

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        known = known_types()
        if value not in known:
            legal = ", ".join(known) if known else "none are installed"
            raise ValueError(f"unknown device type {value!r} (legal types: {legal})")
        return value
