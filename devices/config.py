"""Site-file models for devices: which driver (``type:``), and how to reach it (``transport:``).

The hub's site-file loader embeds these; drivers receive them as they are.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

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


class SnmpTransport(Model):
    kind: Literal["snmp"]
    host: str
    port: Port = 161
    version: Literal["1", "2c", "3"] = "2c"
    community: SecretStr | None = None
    _host = field_validator("host")(check_host)


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
