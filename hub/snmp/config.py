"""The ``snmp:`` section of the site file: the hub's own agent, its users and trap targets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from devices.config import (
    Model,
    Name,
    Port,
    SnmpAuthProtocol,
    SnmpPrivProtocol,
    check_host,
)
from monitoring.config import WarningLevel

MIN_KEY = 8  # RFC 3414 2.6: pass phrases shorter than 8 characters are refused


class SnmpUser(Model):
    """An SNMPv3 (USM) user of the agent: authPriv only, keys as ``${ENV}`` secrets."""

    name: str = Field(min_length=1, max_length=32)
    auth_protocol: SnmpAuthProtocol = "SHA"
    auth_key: SecretStr = Field(min_length=MIN_KEY)
    priv_protocol: SnmpPrivProtocol = "AES"
    priv_key: SecretStr = Field(min_length=MIN_KEY)


class SnmpTrapTarget(Model):
    """An NMS that receives the hub's notifications: SNMPv2c traps (``community``) or
    SNMPv3 traps (``user``: one of ``snmp.users``, sent authPriv with the agent's engine
    ID, which the receiver must know)."""

    id: Name
    host: str
    port: Port = 162
    version: Literal["2c", "3"] = "2c"
    community: SecretStr | None = None
    user: str | None = None
    _host = field_validator("host")(check_host)

    @model_validator(mode="after")
    def _credentials(self) -> SnmpTrapTarget:
        if self.version == "2c":
            if self.community is None:
                raise ValueError("an SNMPv2c target needs 'community'")
            if self.user is not None:
                raise ValueError("'user' is for version '3' targets")
        else:
            if self.user is None:
                raise ValueError("an SNMPv3 target needs 'user' (one of snmp.users)")
            if self.community is not None:
                raise ValueError("'community' is for version '2c' targets")
        return self


class SnmpTraps(Model):
    """Where notifications go, and which alarms send one by themselves (a rule's
    ``{do: trap}`` step sends one whatever these say)."""

    targets: list[SnmpTrapTarget] = []
    on_new_alarm: bool = Field(False, description="cchubAlarmRaised for every new alarm")
    on_clear: bool = Field(False, description="cchubAlarmCleared when one returns to normal")
    min_level: WarningLevel = Field(WarningLevel.BLUE, description="for on_new_alarm/on_clear")


class SnmpSection(Model):
    """The hub's own SNMP agent (CCHUB-MIB, read-only): v2c with ``community`` and/or
    SNMPv3 ``users``."""

    host: str = "127.0.0.1"
    port: Port = 161
    community: SecretStr | None = Field(None, description="v2c read-only community")
    users: list[SnmpUser] = []
    engine_id: str | None = Field(
        None,
        pattern=r"^(0x)?([0-9A-Fa-f]{2}){5,32}$",
        description="hex; default: derived from hub.name (RFC 3411 text format)",
    )
    contact: str = Field("", max_length=255)
    location: str = Field("", max_length=255)
    traps: SnmpTraps = SnmpTraps()
    _host = field_validator("host")(check_host)

    @model_validator(mode="after")
    def _consistent(self) -> SnmpSection:
        if self.community is None and not self.users:
            raise ValueError("the agent needs a v2c 'community' or SNMPv3 'users' (or both)")
        return self


KeyPath = tuple[str | int, ...]


def snmp_problems(section: SnmpSection) -> list[tuple[KeyPath, str]]:
    """Duplicates and references inside ``snmp:``, each at its key path."""
    problems: list[tuple[KeyPath, str]] = []
    names: dict[str, int] = {}
    for i, user in enumerate(section.users):
        if user.name in names:
            first = f"snmp.users[{names[user.name]}]"
            problems.append((("snmp", "users", i, "name"), f"{user.name!r} is also {first}"))
        names.setdefault(user.name, i)
    ids: dict[str, int] = {}
    for i, target in enumerate(section.traps.targets):
        path: KeyPath = ("snmp", "traps", "targets", i)
        if target.id in ids:
            first = f"snmp.traps.targets[{ids[target.id]}]"
            problems.append(((*path, "id"), f"{target.id!r} is also {first}"))
        ids.setdefault(target.id, i)
        if target.user is not None and target.user not in names:
            legal = ", ".join(names) or "none"
            problems.append(((*path, "user"), f"no user {target.user!r} (snmp.users: {legal})"))
    traps = section.traps
    if (traps.on_new_alarm or traps.on_clear) and not traps.targets:
        problems.append((("snmp", "traps", "targets"), "on_new_alarm/on_clear need targets"))
    return problems
