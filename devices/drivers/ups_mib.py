"""UPS over SNMP v1/v2c (RFC 1628 UPS-MIB): battery, runtime, input voltage, load, on-battery."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (  # type: ignore[import-untyped]
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
)
from pysnmp.proto.errind import RequestTimedOut  # type: ignore[import-untyped]
from pysnmp.proto.rfc1905 import (  # type: ignore[import-untyped]
    EndOfMibView,
    NoSuchInstance,
    NoSuchObject,
)

from devices.base import Device
from devices.config import DeviceConfig, SnmpTransport
from devices.errors import DeviceCommandError, DeviceConfigError, DeviceTimeout, DeviceUnavailable
from devices.registry import register
from protocols.ups_mib import UPS_OBJECTS, decode_ups

_ABSENT = (NoSuchObject, NoSuchInstance, EndOfMibView)


@register("ups-mib")
class UpsMib(Device[None]):
    """Polls the UPS-MIB scalars in one GET; state adds ``on_battery`` and ``battery_low``."""

    def __init__(self, config: DeviceConfig) -> None:
        super().__init__(config)
        transport = config.transport
        if not isinstance(transport, SnmpTransport):
            raise DeviceConfigError(
                f"device {config.id!r} (ups-mib) needs an snmp transport, not {transport.kind!r}"
            )
        if transport.version == "3":
            raise DeviceConfigError(f"device {config.id!r} (ups-mib): SNMPv3 is not supported yet")
        self.transport = transport
        community = transport.community.get_secret_value() if transport.community else "public"
        self._auth = CommunityData(community, mpModel=0 if transport.version == "1" else 1)
        self._engine: Any = None
        self._target: Any = None
        self._unsupported: set[str] = set()

    async def _connect(self) -> None:
        where = f"udp://{self.transport.host}:{self.transport.port}"
        try:
            async with asyncio.timeout(self.config.timeout):
                # engine set-up loads MIB modules from disk: keep it off the loop
                self._engine = await asyncio.to_thread(SnmpEngine)
                self._target = await UdpTransportTarget.create(
                    (self.transport.host, self.transport.port),
                    timeout=self.config.timeout,
                    retries=self.options.retries,
                )
        except TimeoutError:
            raise DeviceUnavailable(
                f"cannot resolve {where} within {self.config.timeout:g} s"
            ) from None
        except Exception as err:  # pysnmp raises PySnmpError or OSError for bad addresses
            raise DeviceUnavailable(f"cannot open {where}: {err}") from err

    async def _disconnect(self) -> None:
        engine, self._engine, self._target = self._engine, None, None
        if engine is not None:
            engine.close_dispatcher()

    async def _fetch(self) -> Mapping[str, Any]:
        if self._engine is None or self._target is None:
            raise DeviceUnavailable(f"device {self.id} is not connected")
        oids = [obj.oid for obj in UPS_OBJECTS if obj.oid not in self._unsupported]
        var_binds = await self._get(oids)
        values: dict[str, int | None] = {}
        for name, value in var_binds:
            oid = str(name)
            try:
                values[oid] = None if isinstance(value, _ABSENT) else int(value)
            except (TypeError, ValueError):
                raise DeviceCommandError(
                    "bad-value", f"{oid} is not an integer: {value.prettyPrint()!r}"
                ) from None
        try:
            return decode_ups(values)
        except ValueError as err:
            raise DeviceCommandError("bad-value", str(err)) from err

    async def _get(self, oids: list[str]) -> Any:
        """One GET; an SNMPv1 ``noSuchName`` drops that object for good and asks again."""
        deadline = self.config.timeout * (self.options.retries + 1) + 1.0
        while True:
            objects = [ObjectType(ObjectIdentity(oid)) for oid in oids]
            try:
                async with asyncio.timeout(deadline):
                    indication, status, index, var_binds = await get_cmd(
                        self._engine, self._auth, self._target, ContextData(), *objects
                    )
            except TimeoutError:
                raise DeviceTimeout(f"no SNMP answer within {deadline:g} s") from None
            if indication:
                if isinstance(indication, RequestTimedOut):
                    raise DeviceTimeout(str(indication))
                raise DeviceUnavailable(str(indication))
            if not status:
                return var_binds
            where = oids[int(index) - 1] if 0 < int(index) <= len(oids) else "?"
            if status.prettyPrint() == "noSuchName" and where != "?" and len(oids) > 1:
                self.log.info("agent lacks %s; no longer asking for it", where)
                self._unsupported.add(where)
                oids = [oid for oid in oids if oid != where]
                continue
            raise DeviceCommandError(status.prettyPrint(), f"SNMP error at {where}")
