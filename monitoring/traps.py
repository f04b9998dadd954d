"""SNMP trap and inform receiver (v1, v2c, v3) in process, on pysnmp's notification receiver.

Each notification becomes an ``Occurrence`` of kind ``trap.<name>`` (the site file's name
for the trap OID, a well-known name, or the OID itself), from the source the sender maps
to, labelled with ``trap_oid`` (and ``ifIndex`` when the trap names an interface). A trap
is a one-shot event (PULSE) that the warning core deduplicates into one alarm with a count;
a trap named as the "clearing" one in ``clears`` (``linkUp``) clears its partner's alarm,
which is then a lasting condition (RAISE).

Bad input is counted, never fatal: undecodable datagrams, wrong communities, unknown
SNMPv3 users, wrong digests, undecryptable PDUs (pysnmp's own SNMPv2-MIB and USM counters).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp  # type: ignore[import-untyped]
from pysnmp.entity import config as snmp_config  # type: ignore[import-untyped]
from pysnmp.entity import engine as snmp_engine
from pysnmp.entity.rfc3413 import ntfrcv  # type: ignore[import-untyped]
from pysnmp.proto.api import v2c  # type: ignore[import-untyped]

from devices.snmp import AUTH_PROTOCOLS, PRIV_PROTOCOLS
from monitoring.coordinator import Feed
from monitoring.samples import Occurrence, OccurrenceState, freeze_labels
from monitoring.snmp_client import to_python
from monitoring.targets import TrapListener

logger = logging.getLogger(__name__)

SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_ADDRESS = "1.3.6.1.6.3.18.1.3.0"  # v1 agent-addr, added by the v1 -> v2 translation
IF_INDEX = "1.3.6.1.2.1.2.2.1.1."
TRAP_KIND = "trap."
MAX_MESSAGE = 300

WELL_KNOWN_TRAPS: Mapping[str, str] = {
    "1.3.6.1.6.3.1.1.5.1": "coldStart",
    "1.3.6.1.6.3.1.1.5.2": "warmStart",
    "1.3.6.1.6.3.1.1.5.3": "linkDown",
    "1.3.6.1.6.3.1.1.5.4": "linkUp",
    "1.3.6.1.6.3.1.1.5.5": "authenticationFailure",
    "1.3.6.1.6.3.1.1.5.6": "egpNeighborLoss",
    # RFC 1628 UPS-MIB, SMIv2 OIDs and their SNMPv1 translations (RFC 3584 3.1)
    "1.3.6.1.2.1.33.2.1": "upsTrapOnBattery",
    "1.3.6.1.2.1.33.2.2": "upsTrapTestCompleted",
    "1.3.6.1.2.1.33.2.3": "upsTrapAlarmEntryAdded",
    "1.3.6.1.2.1.33.2.4": "upsTrapAlarmEntryRemoved",
    "1.3.6.1.2.1.33.2.0.1": "upsTrapOnBattery",
    "1.3.6.1.2.1.33.2.0.2": "upsTrapTestCompleted",
    "1.3.6.1.2.1.33.2.0.3": "upsTrapAlarmEntryAdded",
    "1.3.6.1.2.1.33.2.0.4": "upsTrapAlarmEntryRemoved",
}

# pysnmp's own counters of refused input, by our reason label
_ENGINE_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("__SNMPv2-MIB", "snmpInASNParseErrs", "undecodable"),
    ("__SNMPv2-MIB", "snmpInBadVersions", "bad_version"),
    ("__SNMPv2-MIB", "snmpInBadCommunityNames", "bad_community"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames", "unknown_user"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests", "wrong_digest"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors", "decryption_error"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnsupportedSecLevels", "unsupported_level"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsNotInTimeWindows", "not_in_time_window"),
)
_VERSIONS = {1: "1", 2: "2c", 3: "3"}


@dataclass(frozen=True)
class Notification:
    """One trap or inform as received."""

    version: str
    sender: str
    source: str
    oid: str
    name: str
    varbinds: tuple[tuple[str, str], ...]


class _Udp(udp.UdpAsyncioTransport):
    """pysnmp's UDP transport, but a datagram that breaks the decoder is counted and
    dropped instead of raising into the event loop."""

    on_broken: Callable[[tuple[str, int], BaseException], None] | None = None

    def datagram_received(self, datagram: bytes, address: Any) -> None:
        self.loop.call_soon(self._guarded, address, datagram)

    def _guarded(self, address: Any, datagram: bytes) -> None:
        try:
            if self._callback_function is not None:
                self._callback_function(self, address, datagram)
        except Exception as err:  # loop boundary: one bad datagram costs only itself
            if self.on_broken is not None:
                self.on_broken(address, err)


class TrapReceiver:
    """``async with TrapReceiver(listener, feed) as rx:`` — ``rx.port`` receives."""

    def __init__(
        self,
        listener: TrapListener,
        feed: Feed,
        *,
        host_sources: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.listener = listener
        self.feed = feed
        self._clock = clock
        self._sources = {**(host_sources or {}), **listener.sources}
        self._names = {**WELL_KNOWN_TRAPS, **{k.lstrip("."): v for k, v in listener.names.items()}}
        self._clearing = dict(listener.clears)
        self._lasting = set(listener.clears.values())
        self._engine: Any = None
        self._transport: _Udp | None = None
        self.port = 0
        self.received: collections.Counter[str] = collections.Counter()  # by version
        self.broken = 0  # datagrams that broke pysnmp's decoder
        self._refused_logged: set[str] = set()
        self._last_counts: dict[str, int] = {}

    async def __aenter__(self) -> TrapReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        # engine set-up reads MIB modules from disk: off the loop
        # our own socket: a port in use fails here, plainly, and port 0 tells its number
        family = socket.AF_INET6 if ":" in self.listener.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.listener.host, self.listener.port))
        except OSError as err:
            sock.close()
            raise OSError(
                err.errno,
                f"cannot receive traps on udp {self.listener.host}:{self.listener.port}:"
                f" {err.strerror}",
            ) from err
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        # engine set-up reads MIB modules from disk: off the loop
        engine = await asyncio.to_thread(snmp_engine.SnmpEngine)
        transport = _Udp()
        transport.on_broken = self._broken
        transport = transport.open_server_mode(sock=sock)
        snmp_config.add_transport(engine, udp.DOMAIN_NAME, transport)
        for i, community in enumerate(self.listener.communities):
            snmp_config.add_v1_system(engine, f"trap-community-{i}", community.get_secret_value())
        for user in self.listener.users:
            self._add_user(engine, user)
        ntfrcv.NotificationReceiver(engine, self._on_notification)
        self._engine, self._transport = engine, transport
        for _ in range(500):  # the endpoint is created by a task pysnmp schedules
            if transport.transport is not None:
                break
            await asyncio.sleep(0.01)
        logger.info("receiving SNMP traps on udp %s:%d", self.listener.host, self.port)

    @staticmethod
    def _add_user(engine: Any, user: Any) -> None:
        kwargs: dict[str, Any] = {}
        if user.auth_key is not None:
            kwargs["authProtocol"] = AUTH_PROTOCOLS[user.auth_protocol]
            kwargs["authKey"] = user.auth_key.get_secret_value()
        if user.priv_key is not None:
            kwargs["privProtocol"] = PRIV_PROTOCOLS[user.priv_protocol]
            kwargs["privKey"] = user.priv_key.get_secret_value()
        # informs: our own engine is authoritative
        snmp_config.add_v3_user(engine, user.user, **kwargs)
        if user.engine_id is not None:
            # traps: the sender's engine is authoritative, its keys are localised to it
            engine_id = v2c.OctetString(hexValue=user.engine_id.removeprefix("0x"))
            snmp_config.add_v3_user(engine, user.user, securityEngineId=engine_id, **kwargs)

    async def stop(self) -> None:
        engine, self._engine, self._transport = self._engine, None, None
        if engine is not None:
            engine.close_dispatcher()

    # -- counters ----------------------------------------------------------------------------

    def refused(self) -> dict[str, int]:
        """Refused input by reason (pysnmp's counters, plus datagrams that broke it)."""
        out = {"broken": self.broken}
        if self._engine is None:
            out.update(self._last_counts)
            return out
        builder = self._engine.get_mib_builder()
        for module, name, reason in _ENGINE_COUNTERS:
            try:
                (symbol,) = builder.import_symbols(module, name)
                out[reason] = int(symbol.syntax)
            except Exception:  # an engine without that MIB: nothing to count
                out[reason] = 0
        self._last_counts = {k: v for k, v in out.items() if k != "broken"}
        return out

    def _broken(self, address: Any, err: BaseException) -> None:
        self.broken += 1
        if self.broken == 1 or self.broken % 1000 == 0:
            logger.warning(
                "dropped a datagram from %s that is not SNMP (%s; %d so far)",
                address[0] if address else "?",
                type(err).__name__,
                self.broken,
            )

    # -- notifications ------------------------------------------------------------------------

    def _on_notification(
        self,
        engine: Any,
        state_reference: Any,
        context_engine_id: Any,
        context_name: Any,
        var_binds: Any,
        cb_ctx: Any,
    ) -> None:
        try:
            context = engine.observer.get_execution_context("rfc3412.receiveMessage:request")
            address = context.get("transportAddress") or ("?", 0)
            version = _VERSIONS.get(int(context.get("securityModel", 0)), "?")
            self._deliver(version, str(address[0]), var_binds)
        except Exception:  # loop boundary: a notification we cannot read costs only itself
            self.broken += 1
            logger.exception("could not read a notification")

    def _deliver(self, version: str, sender: str, var_binds: Any) -> None:
        self.received[version] += 1
        binds: list[tuple[str, str]] = []
        oid = ""
        agent = ""
        for name, value in var_binds:
            key = str(name)
            text = str(to_python(value))
            if key == SNMP_TRAP_OID:
                oid = text
            elif key == SNMP_TRAP_ADDRESS:
                agent = text
            binds.append((key, text))
        if not oid:
            self.broken += 1
            logger.warning("a notification from %s carries no snmpTrapOID; dropped", sender)
            return
        source = self._sources.get(agent) or self._sources.get(sender) or agent or sender
        name = self._names.get(oid, oid)
        labels = {"trap_oid": oid}
        for key, text in binds:
            if key.startswith(IF_INDEX):
                labels["ifIndex"] = text
        note = Notification(version, sender, source, oid, name, tuple(binds))
        self._emit(note, labels)

    def _emit(self, note: Notification, labels: dict[str, str]) -> None:
        shown = ", ".join(
            f"{k}={v}" for k, v in note.varbinds if k not in (SYS_UPTIME, SNMP_TRAP_OID)
        )
        message = f"{note.name} from {note.source} ({note.sender}, v{note.version})"
        if shown:
            message = f"{message}: {shown}"[:MAX_MESSAGE]
        now = self._clock()
        cleared = self._clearing.get(note.name)
        if cleared is not None:
            # the partner's alarm is keyed by its own OID label: drop ours
            partner = {k: v for k, v in labels.items() if k != "trap_oid"}
            partner_oid = next((o for o, n in self._names.items() if n == cleared), cleared)
            partner["trap_oid"] = partner_oid
            self.feed.occur(
                Occurrence(
                    TRAP_KIND + cleared,
                    note.source,
                    now,
                    OccurrenceState.CLEAR,
                    message,
                    freeze_labels(partner),
                )
            )
            return
        state = OccurrenceState.RAISE if note.name in self._lasting else OccurrenceState.PULSE
        self.feed.occur(
            Occurrence(
                TRAP_KIND + note.name, note.source, now, state, message, freeze_labels(labels)
            )
        )
