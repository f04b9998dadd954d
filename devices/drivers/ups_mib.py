"""UPS over SNMP v1/v2c/v3 (RFC 1628 UPS-MIB): battery, runtime, voltages, load and the alarm table.

One GET reads the scalars; ``upsAlarmTable`` is walked (GETBULK, GETNEXT on v1) only while
``upsAlarmsPresent`` is non-zero. SNMPv3 uses USM users with the transport's keys.

For the monitoring layer: agents repeat ``upsTrapOnBattery`` every minute while on battery
(RFC 1628), so trap ingest must deduplicate it; this driver only polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (  # type: ignore[import-untyped]
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from pysnmp.proto import errind  # type: ignore[import-untyped]
from pysnmp.proto.rfc1905 import (  # type: ignore[import-untyped]
    EndOfMibView,
    NoSuchInstance,
    NoSuchObject,
)

from devices.base import Device
from devices.capabilities import Ups
from devices.config import DeviceConfig, SnmpTransport
from devices.errors import DeviceCommandError, DeviceConfigError, DeviceTimeout, DeviceUnavailable
from devices.registry import register
from devices.snmp import auth_hint, snmp_credentials
from protocols.ups_mib import ALARM_DESCR_COLUMN, UPS_OBJECTS, decode_ups

_ABSENT = (NoSuchObject, NoSuchInstance, EndOfMibView)
_ALARMS_PRESENT = "1.3.6.1.2.1.33.1.6.1.0"
MAX_ALARM_ROWS = 64  # RFC 1628 lists 24 well-known alarms; a longer table is a broken agent
BULK_ROWS = 16


class SnmpAuthFailed(DeviceUnavailable):
    """The agent's SNMPv3 security refused the request (wrong user, key or protocol)."""

    code = "auth"


@register("ups-mib")
class UpsMib(Device[None]):
    """Polls UPS-MIB; state adds ``on_battery``, ``battery_low``, ``status`` and ``alarms``."""

    capabilities = (Ups,)

    def __init__(self, config: DeviceConfig) -> None:
        super().__init__(config)
        transport = config.transport
        if not isinstance(transport, SnmpTransport):
            raise DeviceConfigError(
                f"device {config.id!r} (ups-mib) needs an snmp transport, not {transport.kind!r}"
            )
        self.transport = transport
        self._auth = snmp_credentials(transport)
        self._context = ContextData(contextName=transport.context)
        self._engine: Any = None
        self._target: Any = None
        self._unsupported: set[str] = set()

    async def _connect(self) -> None:
        where = f"udp://{self.transport.host}:{self.transport.port}"
        # engine set-up loads MIB modules from disk: off the loop, and not bounded by the
        # device's timeout (it is local work, slow only on a loaded machine)
        self._engine = await asyncio.to_thread(SnmpEngine)
        try:
            async with asyncio.timeout(self.config.timeout):
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
        # walk the table only when the agent says alarms are present (or cannot say)
        present = values.get(_ALARMS_PRESENT)
        alarms = await self._alarm_rows() if present is None or present > 0 else []
        try:
            return decode_ups(values, alarms)
        except ValueError as err:
            raise DeviceCommandError("bad-value", str(err)) from err

    def _deadline(self) -> float:
        return self.config.timeout * (self.options.retries + 1) + 1.0

    async def _request(self, command: Any, *args: Any) -> Any:
        """One SNMP request; transport and security failures become device errors."""
        deadline = self._deadline()
        try:
            async with asyncio.timeout(deadline):
                indication, status, index, var_binds = await command(
                    self._engine, self._auth, self._target, self._context, *args
                )
        except TimeoutError:
            raise DeviceTimeout(f"no SNMP answer within {deadline:g} s") from None
        if indication:
            if isinstance(indication, errind.RequestTimedOut):
                raise DeviceTimeout(str(indication))
            check = auth_hint(indication)
            if check is not None:
                raise SnmpAuthFailed(
                    f"auth: SNMPv3 user {self.transport.user!r} refused: {indication}"
                    f" (check {check})"
                )
            raise DeviceUnavailable(str(indication))
        return status, index, var_binds

    async def _get(self, oids: list[str]) -> Any:
        """One GET; an SNMPv1 ``noSuchName`` drops that object for good and asks again."""
        while True:
            objects = [ObjectType(ObjectIdentity(oid)) for oid in oids]
            status, index, var_binds = await self._request(get_cmd, *objects)
            if not status:
                return var_binds
            where = oids[int(index) - 1] if 0 < int(index) <= len(oids) else "?"
            if status.prettyPrint() == "noSuchName" and where != "?" and len(oids) > 1:
                self.log.info("agent lacks %s; no longer asking for it", where)
                self._unsupported.add(where)
                oids = [oid for oid in oids if oid != where]
                continue
            raise DeviceCommandError(status.prettyPrint(), f"SNMP error at {where}")

    async def _alarm_rows(self) -> list[str]:
        """upsAlarmDescr of every row of upsAlarmTable (GETBULK; GETNEXT on SNMPv1)."""
        column = ALARM_DESCR_COLUMN + "."
        start = ALARM_DESCR_COLUMN
        rows: list[str] = []
        while len(rows) < MAX_ALARM_ROWS:
            if self.transport.version == "1":
                status, _, var_binds = await self._request(
                    next_cmd, ObjectType(ObjectIdentity(start))
                )
                if status and status.prettyPrint() == "noSuchName":
                    return rows  # v1: walked past the end of the MIB
            else:
                status, _, var_binds = await self._request(
                    bulk_cmd, 0, BULK_ROWS, ObjectType(ObjectIdentity(start))
                )
            if status:
                raise DeviceCommandError(status.prettyPrint(), "SNMP error in upsAlarmTable")
            if not var_binds:
                return rows
            for name, value in var_binds:
                oid = str(name)
                if isinstance(value, _ABSENT) or not oid.startswith(column):
                    return rows
                rows.append(value.prettyPrint())
                start = oid
        self.log.warning("upsAlarmTable has more than %d rows; reading no further", len(rows))
        return rows
