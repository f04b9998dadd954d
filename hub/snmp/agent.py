"""The hub's own SNMP agent: CCHUB-MIB, read-only, over SNMPv2c and SNMPv3 (USM authPriv),
with pysnmp's asyncio command responders in the hub's loop; and alarm notifications to the
NMS with pysnmp's notification originator.

Every request reads the live hub: the responders open one :class:`~hub.snmp.mib.MibView`
per request (a GETBULK reads each table once, consistently) and drop it when the answer is
out; cells are computed when asked, so a GETNEXT costs one bisection, not the whole MIB;
the alarm rows are rebuilt only when an alarm changed, so a walk does not re-sort them. The
agent is an adapter on the bus: new and cleared alarms reach it as ``alarm.state`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from pysnmp.carrier.asyncio.dgram import udp, udp6  # type: ignore[import-untyped]
from pysnmp.entity import config, engine  # type: ignore[import-untyped]
from pysnmp.entity.rfc3413 import cmdrsp, context, ntforg  # type: ignore[import-untyped]
from pysnmp.proto import rfc1902, rfc1905  # type: ignore[import-untyped]
from pysnmp.smi import error as smi_error  # type: ignore[import-untyped]
from pysnmp.smi.instrum import AbstractMibInstrumController  # type: ignore[import-untyped]

from devices.snmp import AUTH_PROTOCOLS, PRIV_PROTOCOLS
from devices.tasks import TaskOwner
from hub.bus import EventBus, SubscriberDropped, Subscription
from hub.events import AlarmStateChanged, Event, SubsystemState
from hub.snmp.config import SnmpSection, SnmpTrapTarget
from hub.snmp.mib import (
    ARC,
    SYSTEM,
    Absent,
    HubState,
    IndexCache,
    MibView,
    Notification,
    Oid,
    Syntax,
    Value,
    alarm_varbinds,
    build_view,
)
from hub.snmp.rows import AlarmRow
from monitoring.actions import ActionRequest
from monitoring.config import WarningLevel
from monitoring.errors import ActionFailed

logger = logging.getLogger(__name__)

# VACM names of the agent's configuration
READ_VIEW = "cchub-read"
NOTIFY_VIEW = "cchub-notify"
RO_COMMUNITY = "cchub-ro"
V2C_GROUP = "cchub-v2c"
V3_GROUP = "cchub-v3"
TRAP_GROUP = "cchub-trap"
SEND_DOMAIN = (*udp.DOMAIN_NAME, 1)  # a client socket for notifications, apart from the agent's
SEND_DOMAIN6 = (*udp6.DOMAIN_NAME, 1)

# alarm.state causes: a condition that activates (again) is a raised alarm unless it is
# suppressed or shelved; one that clears is a cleared alarm, acknowledged or not
_ACTIVATE, _CLEAR = "activate", "clear"
_SILENT = frozenset({"normal", "suppressed", "shelved"})


class AgentSources(Protocol):
    """What the agent reads from the hub (``hub.snmp.sources.HubSources``)."""

    def state(self, agent_uptime: float) -> HubState:
        """The hub now: scalars read at once, table rows when first needed."""

    def alarm(self, alarm_id: str) -> AlarmRow | None:
        """The alarm's row (its state now), with the index the table uses."""

    def alarm_row(self, request: ActionRequest) -> AlarmRow:
        """The row of the alarm an action step is about, as the step saw it."""


def default_engine_id(name: str) -> bytes:
    """RFC 3411 snmpEngineID, text format: the enterprise number with its high bit set,
    format 4, then up to 27 octets of the hub's name."""
    enterprise = ARC[6] | 0x8000_0000
    return enterprise.to_bytes(4, "big") + b"\x04" + name.encode("utf-8")[:27]


def _asn1(value: Value) -> Any:
    syntax, raw = value
    if syntax is Syntax.INTEGER:
        return rfc1902.Integer32(raw)
    if syntax is Syntax.UNSIGNED:
        return rfc1902.Unsigned32(raw)
    if syntax is Syntax.GAUGE:
        return rfc1902.Gauge32(raw)
    if syntax is Syntax.TIMETICKS:
        return rfc1902.TimeTicks(raw)
    if syntax is Syntax.OID:
        return rfc1902.ObjectIdentifier(raw)
    return rfc1902.OctetString(raw)


class _Instrumentation(AbstractMibInstrumController):
    """Reads CCHUB-MIB from one view per request, with VACM checks through ``acFun``."""

    def __init__(self, build: Callable[[], MibView]) -> None:
        self._build = build
        self._view: MibView | None = None
        self._scoped = False
        self.requests = 0
        self.failures = 0

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """One PDU: the view is opened on first read and dropped when the answer is sent."""
        self.requests += 1
        self._scoped, self._view = True, None
        try:
            yield
        finally:
            self._scoped, self._view = False, None

    def _current(self) -> MibView:
        if self._view is not None:
            return self._view
        view = self._build()
        if self._scoped:
            self._view = view
        return view

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A failure to read the hub (a provider's bug) is the request's genErr, logged."""
        try:
            yield
        except smi_error.SmiError:
            raise
        except Exception as err:
            self.failures += 1
            logger.error("SNMP request answered genErr: cannot read the hub: %s", err)
            raise smi_error.GenError(idx=0) from err

    @staticmethod
    def _hidden(oid: Oid, value: Any, idx: int, ctx: dict[str, Any]) -> bool:
        """True when VACM keeps ``oid`` out of the requester's view (raises when the
        requester has no access at all: authorizationError)."""
        check = ctx.get("acFun")
        if check is None:
            return False
        ctx["idx"] = idx
        return bool(check("read", (oid, value), **ctx))

    def read_variables(self, *var_binds: Any, **ctx: Any) -> list[tuple[Any, Any]]:
        out: list[tuple[Any, Any]] = []
        with self._reading():
            view = self._current()
            for idx, (name, _) in enumerate(var_binds):
                oid = tuple(name)
                if self._hidden(oid, None, idx, ctx):
                    out.append((name, rfc1905.noSuchObject))
                    continue
                found = view.get(oid)
                if found is Absent.NO_SUCH_OBJECT:
                    out.append((name, rfc1905.noSuchObject))
                elif found is Absent.NO_SUCH_INSTANCE:
                    out.append((name, rfc1905.noSuchInstance))
                else:
                    out.append((name, _asn1(found)))
        return out

    def read_next_variables(self, *var_binds: Any, **ctx: Any) -> list[tuple[Any, Any]]:
        out: list[tuple[Any, Any]] = []
        with self._reading():
            view = self._current()
            for idx, (name, _) in enumerate(var_binds):
                found = view.next_after(tuple(name))
                while found is not None:
                    oid, value = found
                    asn1 = _asn1(value)
                    if not self._hidden(oid, asn1, idx, ctx):
                        out.append((rfc1902.ObjectName(oid), asn1))
                        break
                    found = view.next_after(oid)
                else:
                    out.append((name, rfc1905.endOfMibView))
        return out

    def write_variables(self, *var_binds: Any, **ctx: Any) -> list[tuple[Any, Any]]:
        raise smi_error.NotWritableError(name=var_binds[0][0] if var_binds else (), idx=0)


def _scoped(base: Any, instrum: _Instrumentation) -> Any:
    """A responder class whose every PDU reads one view of the hub."""

    class Scoped(base):
        def handle_management_operation(
            self, snmpEngine: Any, stateReference: Any, contextName: Any, PDU: Any
        ) -> None:
            with instrum.request():
                super().handle_management_operation(snmpEngine, stateReference, contextName, PDU)

    Scoped.__name__ = f"Hub{base.__name__}"
    return Scoped


class TrapError(Exception):
    """A notification could not be handed to the network for a target."""


@dataclasses.dataclass
class AgentStats:
    traps_sent: int = 0
    traps_failed: int = 0


class HubAgent:
    """One agent for one hub: ``await start()`` binds and serves, ``await stop()`` closes."""

    def __init__(
        self,
        config: SnmpSection,
        sources: AgentSources,
        bus: EventBus,
        *,
        name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._sources = sources
        self._bus = bus
        self._clock = clock
        self._born = clock()
        self.engine_id = (
            bytes.fromhex(config.engine_id.removeprefix("0x"))
            if config.engine_id
            else default_engine_id(name)
        )
        self._instrum = _Instrumentation(self.view)
        self._index_cache = IndexCache()
        self._engine: Any = None
        self._socket: socket.socket | None = None
        self._originator: Any = None
        self._targets = {t.id: t for t in config.traps.targets}
        self._tasks = TaskOwner(logger)
        self.stats = AgentStats()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        # building an engine loads pysnmp's MIBs and writes its boots file: off the loop
        snmp_engine = await asyncio.to_thread(
            engine.SnmpEngine, rfc1902.OctetString(self.engine_id)
        )
        sock = self._bind()
        try:
            self._configure(snmp_engine, sock)
        except Exception:
            sock.close()
            with contextlib.suppress(Exception):
                snmp_engine.transport_dispatcher.close_dispatcher()
            raise
        self._engine, self._socket = snmp_engine, sock
        self._born = self._clock()
        traps = self.config.traps
        if traps.on_new_alarm or traps.on_clear:
            self._tasks.spawn(self._forward_alarms(self._subscribe()), "snmp-alarm-traps")
        host, port = self.address
        logger.info(
            "SNMP agent on udp %s:%d (%s), engine id %s, %d trap target(s)",
            host,
            port,
            self._versions(),
            self.engine_id.hex(),
            len(self._targets),
        )

    async def stop(self) -> None:
        await self._tasks.close()
        if self._engine is not None:
            with contextlib.suppress(Exception):
                self._engine.transport_dispatcher.close_dispatcher()
            self._engine = None
        if self._socket is not None:
            self._socket.close()

    def _bind(self) -> socket.socket:
        host, port = self.config.host, self.config.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError as err:
            sock.close()
            raise OSError(
                err.errno, f"SNMP agent cannot listen on udp {host}:{port}: {err.strerror}"
            ) from err
        sock.setblocking(False)
        return sock

    def _configure(self, snmp_engine: Any, sock: socket.socket) -> None:
        six = sock.family == socket.AF_INET6
        transport = (udp6.Udp6AsyncioTransport if six else udp.UdpAsyncioTransport)()
        domain = udp6.DOMAIN_NAME if six else udp.DOMAIN_NAME
        config.add_transport(snmp_engine, domain, transport.open_server_mode(sock=sock))
        config.add_context(snmp_engine, b"")
        for subtree in (SYSTEM, ARC):
            config.add_vacm_view(snmp_engine, READ_VIEW, "included", subtree, b"")
        config.add_vacm_view(snmp_engine, NOTIFY_VIEW, "included", (1, 3, 6), b"")
        if self.config.community is not None:
            secret = self.config.community.get_secret_value()
            config.add_v1_system(snmp_engine, RO_COMMUNITY, secret)
            config.add_vacm_group(snmp_engine, V2C_GROUP, 2, RO_COMMUNITY)
            config.add_vacm_access(
                snmp_engine, V2C_GROUP, b"", 2, "noAuthNoPriv", "exact", READ_VIEW, "", ""
            )
        for user in self.config.users:
            config.add_v3_user(
                snmp_engine,
                user.name,
                AUTH_PROTOCOLS[user.auth_protocol],
                user.auth_key.get_secret_value(),
                PRIV_PROTOCOLS[user.priv_protocol],
                user.priv_key.get_secret_value(),
            )
            config.add_vacm_group(snmp_engine, V3_GROUP, 3, user.name)
        if self.config.users:
            config.add_vacm_access(
                snmp_engine, V3_GROUP, b"", 3, "authPriv", "exact", READ_VIEW, "", NOTIFY_VIEW
            )
        self._configure_targets(snmp_engine)
        snmp_context = context.SnmpContext(snmp_engine)
        snmp_context.unregister_context_name(b"")
        snmp_context.register_context_name(b"", self._instrum)
        for base in (
            cmdrsp.GetCommandResponder,
            cmdrsp.NextCommandResponder,
            cmdrsp.BulkCommandResponder,
            cmdrsp.SetCommandResponder,
        ):
            _scoped(base, self._instrum)(snmp_engine, snmp_context)
        self._originator = ntforg.NotificationOriginator()

    def _configure_targets(self, snmp_engine: Any) -> None:
        families = {":" in t.host for t in self._targets.values()}
        if False in families:
            client = udp.UdpAsyncioTransport().open_client_mode()
            config.add_transport(snmp_engine, SEND_DOMAIN, client)
        if True in families:
            client6 = udp6.Udp6AsyncioTransport().open_client_mode()
            config.add_transport(snmp_engine, SEND_DOMAIN6, client6)
        trap_access = False
        for target in self._targets.values():
            tag, params = f"cchub-trap-{target.id}", f"cchub-params-{target.id}"
            if target.version == "2c":
                assert target.community is not None
                security = tag
                # the tag limits the community to the target's own address
                config.add_v1_system(
                    snmp_engine, tag, target.community.get_secret_value(), transportTag=tag
                )
                config.add_vacm_group(snmp_engine, TRAP_GROUP, 2, security)
                config.add_target_parameters(snmp_engine, params, security, "noAuthNoPriv", 1)
                trap_access = True
            else:
                config.add_target_parameters(snmp_engine, params, target.user, "authPriv", 3)
            domain = SEND_DOMAIN6 if ":" in target.host else SEND_DOMAIN
            config.add_target_address(
                snmp_engine,
                f"cchub-addr-{target.id}",
                domain,
                (target.host, target.port),
                params,
                tagList=tag,
            )
            config.add_notification_target(
                snmp_engine, f"cchub-notify-{target.id}", params, tag, "trap"
            )
        if trap_access:
            config.add_vacm_access(
                snmp_engine, TRAP_GROUP, b"", 2, "noAuthNoPriv", "exact", "", "", NOTIFY_VIEW
            )

    # -- state ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._engine is not None

    @property
    def address(self) -> tuple[str, int]:
        if self._socket is None:
            return self.config.host, self.config.port
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def requests(self) -> int:
        return self._instrum.requests

    @property
    def request_failures(self) -> int:
        return self._instrum.failures

    def uptime(self) -> float:
        return self._clock() - self._born

    def view(self) -> MibView:
        """What a request reads: the live hub, now (sorted indexes of unchanged tables are
        kept between requests)."""
        return build_view(self._sources.state(self.uptime()), self._index_cache)

    def _versions(self) -> str:
        versions = ["v2c"] if self.config.community is not None else []
        if self.config.users:
            versions.append(f"v3 authPriv ({len(self.config.users)} users)")
        return ", ".join(versions)

    def health(self) -> tuple[SubsystemState, str]:
        if not self.running:
            return SubsystemState.DOWN, "not running"
        host, port = self.address
        return SubsystemState.UP, f"udp {host}:{port}, {self._versions()}"

    # -- notifications -------------------------------------------------------------------

    def targets(self, ids: Sequence[str] | None = None) -> list[SnmpTrapTarget]:
        if ids is None:
            return list(self._targets.values())
        unknown = [i for i in ids if i not in self._targets]
        if unknown:
            legal = ", ".join(self._targets) or "none"
            raise TrapError(f"no trap target {', '.join(unknown)} (snmp.traps.targets: {legal})")
        return [self._targets[i] for i in ids]

    def send(
        self, notification: Notification, row: AlarmRow, ids: Sequence[str] | None = None
    ) -> list[str]:
        """Send ``notification`` about ``row`` to the targets (all by default); return the
        ids sent to. Raises :class:`TrapError` naming every target that failed."""
        if self._engine is None:
            raise TrapError("the SNMP agent is not running")
        targets = self.targets(ids)
        if not targets:
            raise TrapError("no trap targets configured (snmp.traps.targets)")
        var_binds = [
            (rfc1902.ObjectName(oid), _asn1(value))
            for oid, value in alarm_varbinds(notification, row, self.uptime())
        ]
        sent: list[str] = []
        failed: list[str] = []
        for target in targets:
            problem = self._send_one(target, var_binds)
            if problem is None:
                sent.append(target.id)
                self.stats.traps_sent += 1
            else:
                failed.append(f"{target.id} ({target.host}:{target.port}): {problem}")
                self.stats.traps_failed += 1
        if failed:
            message = "; ".join(failed)
            logger.warning("[alarm=%s] %s not sent to %s", row.name, notification.value[0], message)
            raise TrapError(f"{notification.value[0]} not sent to {message}")
        return sent

    def _send_one(self, target: SnmpTrapTarget, var_binds: list[tuple[Any, Any]]) -> str | None:
        errors: list[str] = []

        def on_result(*args: Any) -> None:
            indication = args[2] if len(args) > 2 else None
            if indication:
                errors.append(str(indication))

        try:
            handle = self._originator.send_varbinds(
                self._engine, f"cchub-notify-{target.id}", None, b"", var_binds, on_result
            )
        except Exception as err:  # pysnmp raises PySnmpError/CarrierError on socket trouble
            return f"{type(err).__name__}: {err}"
        if errors:
            return errors[0]
        if handle is None:
            return "refused by the agent's notify view"
        return None

    async def trap_action(self, request: ActionRequest) -> str:
        """The warning core's ``trap`` action kind: cchubAlarmForwarded to the step's
        ``target`` (all targets when it names none)."""
        row = self._sources.alarm_row(request)
        ids = [request.step.target] if request.step.target else None
        try:
            sent = self.send(Notification.ALARM_FORWARDED, row, ids)
        except TrapError as err:
            raise ActionFailed(str(err)) from None
        return f"cchubAlarmForwarded sent to {', '.join(sent)}"

    def _subscribe(self) -> Subscription:
        return self._bus.subscribe(
            "snmp-traps", maxsize=10_000, accept=lambda e: isinstance(e, AlarmStateChanged)
        )

    async def _forward_alarms(self, subscription: Subscription) -> None:
        while True:
            try:
                async for event in subscription:
                    self._on_alarm_event(event)
                return
            except SubscriberDropped as err:
                logger.error("SNMP trap feed fell behind (%s); some traps were not sent", err)
                subscription = self._subscribe()

    def _on_alarm_event(self, event: Event) -> None:
        if not isinstance(event, AlarmStateChanged):
            return
        traps = self.config.traps
        if WarningLevel(event.level).rank < traps.min_level.rank:
            return
        if traps.on_new_alarm and event.cause == _ACTIVATE and event.new not in _SILENT:
            notification = Notification.ALARM_RAISED
        elif traps.on_clear and event.cause == _CLEAR:
            notification = Notification.ALARM_CLEARED
        else:
            return
        row = self._sources.alarm(event.alarm)
        if row is None:
            logger.warning("[alarm=%s] gone before its trap was sent", event.alarm)
            return
        # the event's own values: the alarm may have moved on since
        row = dataclasses.replace(
            row,
            level=event.level,
            state=event.new,
            count=event.count,
            text=event.message or row.text,
        )
        with contextlib.suppress(TrapError):  # logged by send()
            self.send(notification, row)


class SnmpCollector(Collector):
    """Prometheus figures of the agent, read at scrape time."""

    def __init__(self, agent: HubAgent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "cchub_snmp_requests", "SNMP PDUs the agent answered", value=self.agent.requests
        )
        yield CounterMetricFamily(
            "cchub_snmp_request_failures",
            "SNMP requests answered genErr (the hub could not be read)",
            value=self.agent.request_failures,
        )
        traps = CounterMetricFamily(
            "cchub_snmp_traps", "Notifications to NMS targets, by result", labels=["result"]
        )
        traps.add_metric(["sent"], self.agent.stats.traps_sent)
        traps.add_metric(["failed"], self.agent.stats.traps_failed)
        yield traps
