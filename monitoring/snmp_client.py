"""A small SNMP manager session on pysnmp 7 (asyncio): GET, and column walks by GETBULK
(v2c/v3) or GETNEXT (v1), numeric OIDs only, values turned into plain Python.

Errors come out as :class:`~monitoring.coordinator.PollFailed` with a code: ``timeout``,
``auth`` (SNMPv3 refused, with what to check), ``refused`` (cannot open), ``device``
(an error-status from the agent), ``protocol`` (an answer that makes no sense).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pyasn1.type import univ  # type: ignore[import-untyped]
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
from pysnmp.proto import errind, rfc1155, rfc1902  # type: ignore[import-untyped]
from pysnmp.proto.rfc1905 import (  # type: ignore[import-untyped]
    EndOfMibView,
    NoSuchInstance,
    NoSuchObject,
)

from devices.config import SnmpTransport
from devices.snmp import auth_hint, snmp_credentials
from monitoring.coordinator import PollFailed

logger = logging.getLogger(__name__)

_ABSENT = (NoSuchObject, NoSuchInstance, EndOfMibView)
MAX_ROWS = 100_000  # a table longer than this is a broken agent (or a loop)
GET_CHUNK = 40  # varbinds per GET request


@dataclass(frozen=True)
class Counter:
    """A Counter32/Counter64 reading: only its change over time means something."""

    value: int
    bits: int


Value = int | float | str | Counter
"""An SNMP value in Python: integers (INTEGER, Gauge32, TimeTicks), text (OCTET STRING,
hex when not printable), an OID as dotted text, or a counter."""


def to_python(value: Any) -> Value | None:
    """One varbind value as :data:`Value`; None when the agent has no such object."""
    if isinstance(value, _ABSENT):
        return None
    if isinstance(value, rfc1902.Counter64):
        return Counter(int(value), 64)
    if isinstance(value, rfc1902.Counter32):
        return Counter(int(value), 32)
    if isinstance(value, univ.Integer):  # Integer32, Gauge32, Unsigned32, TimeTicks
        return int(value)
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    if isinstance(value, rfc1902.IpAddress | rfc1155.IpAddress):  # v1 traps keep SMIv1's
        return ".".join(str(b) for b in bytes(value))
    if isinstance(value, univ.OctetString):
        raw = bytes(value)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex(":")
        return text if text.isprintable() else raw.hex(":")
    return str(value.prettyPrint())


def _strip(oid: str) -> str:
    return oid.lstrip(".")


class SnmpSession:
    """One agent: an engine and a target, opened lazily, closed on failure by the owner."""

    def __init__(
        self, transport: SnmpTransport, *, timeout: float, retries: int, label: str = ""
    ) -> None:
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.label = label or f"{transport.host}:{transport.port}"
        self._auth = snmp_credentials(transport)
        self._context = ContextData(contextName=transport.context)
        self._engine: Any = None
        self._target: Any = None
        self._unsupported: set[str] = set()
        self.requests = 0
        self.varbinds = 0

    @property
    def bulk(self) -> bool:
        return self.transport.version != "1"

    async def open(self) -> None:
        if self._engine is not None:
            return
        where = f"udp://{self.transport.host}:{self.transport.port}"
        # engine set-up reads MIB modules from disk: off the loop
        engine = await asyncio.to_thread(SnmpEngine)
        try:
            async with asyncio.timeout(self.timeout + 1.0):
                target = await UdpTransportTarget.create(
                    (self.transport.host, self.transport.port),
                    timeout=self.timeout,
                    retries=self.retries,
                )
        except TimeoutError:
            engine.close_dispatcher()
            raise PollFailed("refused", f"cannot resolve {where}") from None
        except Exception as err:  # pysnmp raises PySnmpError or OSError for bad addresses
            engine.close_dispatcher()
            raise PollFailed("refused", f"cannot open {where}: {err}") from err
        self._engine, self._target = engine, target

    async def close(self) -> None:
        engine, self._engine, self._target = self._engine, None, None
        if engine is not None:
            engine.close_dispatcher()

    async def _request(self, command: Any, *args: Any) -> tuple[Any, Any, Any]:
        await self.open()
        self.requests += 1
        indication, status, index, var_binds = await command(
            self._engine, self._auth, self._target, self._context, *args, lookupMib=False
        )
        if indication:
            if isinstance(indication, errind.RequestTimedOut):
                raise PollFailed(
                    "timeout",
                    f"no SNMP answer from {self.label} within {self.timeout:g} s"
                    f" ({self.retries + 1} attempt(s))",
                )
            check = auth_hint(indication)
            if check is not None:
                raise PollFailed(
                    "auth",
                    f"SNMPv3 user {self.transport.user!r} refused by {self.label}:"
                    f" {indication} (check {check})",
                )
            raise PollFailed("protocol", f"{self.label}: {indication}")
        self.varbinds += len(var_binds)
        return status, index, var_binds

    async def get(self, oids: Sequence[str]) -> dict[str, Value | None]:
        """Values by OID (None: the agent lacks the object); several GETs when many."""
        wanted = [_strip(o) for o in oids]
        out: dict[str, Value | None] = dict.fromkeys(wanted)
        asked = [o for o in wanted if o not in self._unsupported]
        for start in range(0, len(asked), GET_CHUNK):
            await self._get_chunk(asked[start : start + GET_CHUNK], out)
        return out

    async def _get_chunk(self, oids: list[str], out: dict[str, Value | None]) -> None:
        while oids:
            objects = [ObjectType(ObjectIdentity(oid)) for oid in oids]
            status, index, var_binds = await self._request(get_cmd, *objects)
            if not status:
                for name, value in var_binds:
                    out[_strip(str(name))] = to_python(value)
                return
            position = int(index)
            where = oids[position - 1] if 0 < position <= len(oids) else None
            text = status.prettyPrint()
            if text == "noSuchName" and where is not None:
                # SNMPv1 has no per-varbind "no such object": drop it for good, ask again
                logger.info("[agent=%s] lacks %s; no longer asking for it", self.label, where)
                self._unsupported.add(where)
                oids = [o for o in oids if o != where]
                continue
            if text == "tooBig" and len(oids) > 1:
                half = len(oids) // 2
                await self._get_chunk(oids[:half], out)
                await self._get_chunk(oids[half:], out)
                return
            raise PollFailed("device", f"{self.label} answered {text} at {where or '?'}")

    async def walk(
        self, columns: Iterable[str], *, max_repetitions: int = 25
    ) -> dict[str, dict[str, Value]]:
        """Every row of each column: ``{column: {index: value}}`` (index = the OID suffix).

        The columns are walked together (one GETBULK carries all still-open columns); a
        column ends when the agent's answer leaves it or reaches the end of its MIB view.
        """
        cols = [_strip(c) for c in columns]
        rows: dict[str, dict[str, Value]] = {c: {} for c in cols}
        cursor = {c: c for c in cols}  # column -> last OID seen
        open_cols = list(cols)
        total = 0
        while open_cols:
            objects = [ObjectType(ObjectIdentity(cursor[c])) for c in open_cols]
            if self.bulk:
                status, _, var_binds = await self._request(bulk_cmd, 0, max_repetitions, *objects)
            else:
                status, _, var_binds = await self._request(next_cmd, *objects)
                if status and status.prettyPrint() == "noSuchName":
                    return rows  # v1: walked past the end of the MIB
            if status:
                raise PollFailed(
                    "device", f"{self.label} answered {status.prettyPrint()} walking {open_cols}"
                )
            if not var_binds:
                return rows
            width = len(open_cols)
            ended: set[str] = set()
            for position, (name, value) in enumerate(var_binds):
                column = open_cols[position % width]
                if column in ended:
                    continue
                oid = _strip(str(name))
                prefix = column + "."
                if isinstance(value, EndOfMibView) or not oid.startswith(prefix):
                    ended.add(column)
                    continue
                if _key(oid) <= _key(cursor[column]) and cursor[column] != column:
                    raise PollFailed("protocol", f"{self.label}: OID not increasing at {oid}")
                converted = to_python(value)
                if converted is not None:
                    rows[column][oid[len(prefix) :]] = converted
                cursor[column] = oid
                total += 1
            if total > MAX_ROWS:
                raise PollFailed("protocol", f"{self.label}: more than {MAX_ROWS} rows")
            open_cols = [c for c in open_cols if c not in ended]
        return rows


def _key(oid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in oid.split("."))
