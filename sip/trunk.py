"""Trunks at runtime: outbound registration (digest, refresh before expiry, back-off on
failure), OPTIONS keep-alive with up/down state, and the per-trunk concurrent call limit.

``TrunkRuntime`` runs one ``sip.trunks.Trunk`` on a ``SipStack``; ``TrunkSet`` holds them
all, finds the trunk a request came from by source address, and reports changes through
one ``on_change(TrunkStatus)`` callback (the hub turns it into bus events).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sip.digest import Credentials
from sip.hops import Address, is_ip
from sip.message import Header, SipResponse, new_tag
from sip.stack import SipStack
from sip.trunks import Trunk

logger = logging.getLogger(__name__)

_EXPIRES_RE = re.compile(r";\s*expires\s*=\s*(\d+)", re.IGNORECASE)


class TrunkState(enum.Enum):
    """Reachability from OPTIONS keep-alive (UNKNOWN until the first answer; a trunk
    without keep-alive stays UNKNOWN and is used)."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


class RegistrationState(enum.Enum):
    NONE = "none"  # the trunk does not register
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"


@dataclass(frozen=True)
class TrunkStatus:
    """A trunk's published state (immutable snapshot)."""

    id: str
    state: TrunkState
    registration: RegistrationState
    active_calls: int
    max_calls: int
    detail: str = ""
    registered_expires: int | None = None


class TrunkFull(Exception):
    """The trunk has ``max_calls`` calls already (the dial plan skips it: ``trunk-full``)."""


class TrunkRuntime:
    """One trunk: its registration and keep-alive tasks, its call count, its state."""

    def __init__(
        self,
        trunk: Trunk,
        stack: SipStack,
        *,
        on_change: Callable[[TrunkStatus], None] | None = None,
        retry_base: float = 2.0,
        retry_max: float = 300.0,
        options_timeout: float | None = None,
    ) -> None:
        self.trunk = trunk
        self.stack = stack
        self.on_change = on_change
        self.state = TrunkState.UNKNOWN
        self.registration = (
            RegistrationState.REGISTERING if trunk.registration else RegistrationState.NONE
        )
        self.registered_expires: int | None = None
        self.detail = ""
        self.active_calls = 0
        self.address: Address | None = None
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._options_timeout = options_timeout
        self._tasks: list[asyncio.Task[None]] = []
        self._register_call_id = f"{new_tag()}{new_tag()}@{stack.config.domain}"
        self._register_cseq = 0
        self._log = logging.LoggerAdapter(logger, {"trunk": trunk.id})

    # -- identity and routing -------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.trunk.id

    @property
    def credentials(self) -> Credentials | None:
        """What to answer the trunk's challenges with (calls and OPTIONS)."""
        trunk = self.trunk
        if trunk.username is None or trunk.password is None:
            return None
        return Credentials(trunk.username, trunk.password.get_secret_value())

    @property
    def from_uri(self) -> str:
        """Our identity towards the trunk (``sip:user@trunk-domain``)."""
        return f"sip:{self.trunk.username or 'cchub'}@{self.trunk.uri_host}"

    async def resolve(self) -> Address:
        """The trunk's transport address (its host resolved once)."""
        if self.address is None:
            host = self.trunk.host.strip("[]")
            if not is_ip(host):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, self.trunk.port, type=socket.SOCK_DGRAM
                )
                host = str(infos[0][4][0])
            self.address = Address(self.trunk.transport.upper(), host, self.trunk.port)
        return self.address

    def matches_source(self, host: str) -> bool:
        """True when a request from ``host`` comes from this trunk."""
        if self.address is not None:
            return self.address.host == host
        return self.trunk.host.strip("[]") == host

    # -- call limit -----------------------------------------------------------------------

    @property
    def full(self) -> bool:
        return self.active_calls >= self.trunk.max_calls

    @property
    def usable(self) -> bool:
        return self.state is not TrunkState.DOWN

    def acquire(self) -> None:
        """Count one call on the trunk; raise ``TrunkFull`` at ``max_calls``."""
        if self.full:
            raise TrunkFull(f"trunk {self.id} has {self.active_calls} calls (max_calls)")
        self.active_calls += 1

    def release(self) -> None:
        self.active_calls = max(0, self.active_calls - 1)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.resolve()
        except OSError as err:
            self._log.warning("trunk %s: cannot resolve %s: %s", self.id, self.trunk.host, err)
        loop = asyncio.get_running_loop()
        if self.trunk.registration is not None:
            self._tasks.append(loop.create_task(self._register_loop(), name=f"reg-{self.id}"))
        if self.trunk.options_interval is not None:
            self._tasks.append(loop.create_task(self._options_loop(), name=f"opt-{self.id}"))

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.registration is RegistrationState.REGISTERED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._register(0), 2.0)

    def status(self) -> TrunkStatus:
        return TrunkStatus(
            self.id,
            self.state,
            self.registration,
            self.active_calls,
            self.trunk.max_calls,
            self.detail,
            self.registered_expires,
        )

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self.status())
            except Exception:
                self._log.exception("trunk change callback failed")

    # -- registration ---------------------------------------------------------------------

    async def _register(self, expires: int) -> SipResponse:
        trunk = self.trunk
        registration = trunk.registration
        assert registration is not None
        username = trunk.register_username
        password = trunk.register_password
        domain = registration.domain or trunk.uri_host
        aor = f"sip:{username}@{domain}"
        credentials = Credentials(
            username or "",
            password.get_secret_value() if password is not None else "",
            registration.realm,
        )
        self._register_cseq += 1
        address = await self.resolve()
        contact = self.stack.contact(username, transport=address.transport)
        response = await self.stack.request(
            "REGISTER",
            f"sip:{domain}",
            from_=aor,
            to=aor,
            call_id=self._register_call_id,
            cseq=self._register_cseq,
            headers=[Header("Contact", str(contact)), Header("Expires", str(expires))],
            credentials=credentials,
            destination=address,
        )
        # the stack may have spent CSeq numbers on the digest retry
        self._register_cseq = max(self._register_cseq, response.cseq.seq)
        return response

    async def refresh(self) -> SipResponse:
        """Register now (same Call-ID, next CSeq) and return the final answer."""
        assert self.trunk.registration is not None
        return await self._register(self.trunk.registration.expiry)

    def _granted(self, response: SipResponse, asked: int) -> int:
        values = [int(m.group(1)) for c in response.get_all("Contact") for m in
                  [_EXPIRES_RE.search(c)] if m is not None]  # fmt: skip
        if values:
            return min(values)
        header = response.get("Expires")
        return int(header) if header is not None and header.isdigit() else asked

    async def _register_loop(self) -> None:
        registration = self.trunk.registration
        assert registration is not None
        failures = 0
        while True:
            response: SipResponse | None = None
            try:
                response = await self._register(registration.expiry)
                reason = f"{response.status} {response.reason}"
            except OSError as err:  # resolution errors: retry like a failure
                reason = str(err)
            if response is not None and 200 <= response.status < 300:
                granted = self._granted(response, registration.expiry)
                failures = 0
                if self.registration is not RegistrationState.REGISTERED:
                    self._log.info("trunk %s registered (expires %d s)", self.id, granted)
                self._set_registration(RegistrationState.REGISTERED, "", granted)
                # refresh well before expiry: at half the interval for short ones
                await asyncio.sleep(max(1.0, min(granted / 2, granted - 30)))
                continue
            failures += 1
            if self.registration is not RegistrationState.FAILED:
                self._log.warning("trunk %s registration failed: %s", self.id, reason)
            self._set_registration(RegistrationState.FAILED, reason, None)
            await asyncio.sleep(min(self._retry_max, self._retry_base * 2 ** (failures - 1)))

    def _set_registration(self, state: RegistrationState, detail: str, expires: int | None) -> None:
        changed = state is not self.registration
        self.registration = state
        self.registered_expires = expires
        if detail:
            self.detail = detail
        if changed:
            self._changed()

    # -- keep-alive -----------------------------------------------------------------------

    async def ping(self) -> TrunkState:
        """Send one OPTIONS and update the state from its answer."""
        address = await self.resolve()
        uri = f"sip:{self.trunk.uri_host}"
        if self.trunk.uri_host == self.trunk.host:
            uri = f"sip:{address.host}:{address.port}"
            if ":" in address.host:
                uri = f"sip:[{address.host}]:{address.port}"
        # no answer within the keep-alive interval (at least 2 s, at most Timer F) is down
        interval = self.trunk.options_interval or self.stack.config.timers.timeout
        timeout = self._options_timeout or max(2.0, min(interval, self.stack.config.timers.timeout))
        try:
            response = await asyncio.wait_for(
                self.stack.request(
                    "OPTIONS",
                    uri,
                    from_=self.from_uri,
                    destination=address,
                    credentials=self.credentials,
                ),
                timeout,
            )
            status, reason = response.status, f"OPTIONS: {response.status} {response.reason}"
        except TimeoutError:
            status, reason = 408, "OPTIONS: no answer"
        # any answer but a timeout or 503 shows the peer is there (405, 404 included)
        state = TrunkState.DOWN if status in (408, 503) else TrunkState.UP
        self._set_state(state, reason)
        return state

    async def _options_loop(self) -> None:
        interval = self.trunk.options_interval
        assert interval is not None
        while True:
            try:
                await self.ping()
            except OSError as err:
                self._set_state(TrunkState.DOWN, f"OPTIONS: {err}")
            await asyncio.sleep(interval)

    def _set_state(self, state: TrunkState, detail: str) -> None:
        if state is self.state:
            return
        old, self.state = self.state, state
        self.detail = detail
        if state is TrunkState.DOWN:
            self._log.warning("trunk %s %s -> down (%s)", self.id, old.value, detail)
        else:
            self._log.info("trunk %s %s -> %s", self.id, old.value, state.value)
        self._changed()


class TrunkSet:
    """All trunks of a site on one stack."""

    def __init__(
        self,
        trunks: Iterable[Trunk],
        stack: SipStack,
        *,
        on_change: Callable[[TrunkStatus], None] | None = None,
        retry_base: float = 2.0,
        options_timeout: float | None = None,
    ) -> None:
        self.trunks = {
            trunk.id: TrunkRuntime(
                trunk,
                stack,
                on_change=on_change,
                retry_base=retry_base,
                options_timeout=options_timeout,
            )
            for trunk in trunks
        }

    def get(self, trunk_id: str) -> TrunkRuntime | None:
        return self.trunks.get(trunk_id)

    def by_source(self, host: str, port: int | None = None) -> TrunkRuntime | None:
        """The trunk a request from ``host`` (and ``port``, preferred) came from, if any."""
        candidates = [t for t in self.trunks.values() if t.matches_source(host)]
        if port is not None:
            exact = [t for t in candidates if t.trunk.port == port]
            if exact:
                return exact[0]
        return candidates[0] if candidates else None

    @property
    def source_hosts(self) -> frozenset[str]:
        return frozenset(t.trunk.host.strip("[]") for t in self.trunks.values())

    def statuses(self) -> list[TrunkStatus]:
        return [t.status() for t in self.trunks.values()]

    async def start(self) -> None:
        for trunk in self.trunks.values():
            await trunk.start()

    async def close(self) -> None:
        await asyncio.gather(*(t.close() for t in self.trunks.values()))

    async def __aenter__(self) -> TrunkSet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
