"""The registrar (RFC 3261 section 10.3) and directory of local SIP users.

Users (name, password, roles) come from the caller (the hub passes the site file's users
that have a ``sip_password``). REGISTER is digest-authenticated; bindings have an expiry
(``Expires`` header or ``expires`` parameter, ``min_expires`` -> 423, ``Contact: *`` with
``Expires: 0``), several contacts per user with q values. Bindings live in memory only (a
restart forgets them until the phones re-register; a persistent store can come later).
``on_change`` is told of every added, updated, removed and expired binding.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sip.digest import Algorithm, AuthOutcome, AuthResult, DigestServer
from sip.headers import NameAddr
from sip.message import Header, SipRequest, SipResponse, create_response, new_tag
from sip.transport import LogThrottle, Origin
from sip.uri import SipUri, Uri

if TYPE_CHECKING:
    from sip.stack import SipStack
    from sip.uas import IncomingRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SipUser:
    """A local SIP user: ``name`` is the user part of its address of record."""

    name: str
    password: str = field(repr=False)
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Binding:
    """One registered contact of a user; ``origin`` is where its REGISTER came from (send
    requests there to reach a phone behind NAT or over its TCP/TLS connection)."""

    user: str
    contact: NameAddr
    expires_at: float
    q: float
    call_id: str
    cseq: int
    origin: Origin | None = None

    @property
    def uri(self) -> Uri:
        return self.contact.uri

    def expires_in(self, now: float) -> int:
        return max(0, round(self.expires_at - now))


class BindingEvent(enum.Enum):
    ADDED = "added"
    UPDATED = "updated"  # contact, q or origin changed (a plain refresh is not reported)
    REMOVED = "removed"  # unregistered (expires 0 or Contact: *)
    EXPIRED = "expired"


@dataclass(frozen=True)
class BindingChange:
    event: BindingEvent
    binding: Binding


@dataclass
class RegistrarCounters:
    registered: int = 0
    challenged: int = 0
    auth_failed: int = 0
    rejected: int = 0


def _binding_key(uri: Uri) -> str:
    """Contact URIs compare per section 19.1.4 closely enough: scheme and host case-free."""
    if isinstance(uri, SipUri):
        return str(
            SipUri(uri.host.lower(), uri.user, uri.password, uri.port, uri.params, (), uri.scheme)
        )
    return str(uri)


class _Refused(Exception):
    def __init__(self, status: int, reason: str, *headers: Header) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


class Registrar:
    """In-memory registrar for one domain (the digest realm).

    ``algorithms`` are offered in this order, one challenge each. MD5 comes first by
    default although RFC 8760 wants the preferred (SHA-256) first: many deployed UAs (SIPp
    3.6, older phones) answer only the first challenge and fail on SHA-256; clients that
    pick the strongest offered (like ``DigestClient``) still use SHA-256.
    """

    def __init__(
        self,
        users: Iterable[SipUser],
        *,
        realm: str,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        max_contacts: int = 10,
        algorithms: Iterable[Algorithm] = (Algorithm.MD5, Algorithm.SHA256),
        nonce_ttl: float = 300.0,
        on_change: Callable[[BindingChange], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sweep_interval: float = 1.0,
    ) -> None:
        self.realm = realm
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.max_contacts = max_contacts
        self.on_change = on_change
        self.digest = DigestServer(realm, algorithms=algorithms, nonce_ttl=nonce_ttl)
        self.counters = RegistrarCounters()
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._users: dict[str, SipUser] = {}
        self._bindings: dict[str, dict[str, Binding]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._throttle = LogThrottle(logger)
        self.set_users(users)

    # -- directory ------------------------------------------------------------------------

    def set_users(self, users: Iterable[SipUser]) -> None:
        """Replace the user list; bindings of users no longer listed are removed."""
        self._users = {user.name: user for user in users}
        for name in [n for n in self._bindings if n not in self._users]:
            for binding in self._bindings.pop(name).values():
                self._notify(BindingEvent.REMOVED, binding)

    def user(self, name: str) -> SipUser | None:
        return self._users.get(name)

    @property
    def users(self) -> list[SipUser]:
        return list(self._users.values())

    def _password(self, name: str) -> str | None:
        user = self._users.get(name)
        return user.password if user is not None else None

    def authenticate(self, request: SipRequest, *, proxy: bool = False) -> AuthResult:
        """Check a request's digest credentials against the users (for inbound calls
        too); on anything but OK answer with ``challenge(request, result)``."""
        return self.digest.verify(request, self._password, proxy=proxy)

    def challenge(
        self, request: SipRequest, result: AuthResult, *, proxy: bool = False, to_tag: str = ""
    ) -> SipResponse:
        """The answer to a request whose credentials are not OK: 401/407 with fresh
        challenges (``stale=true`` when only the nonce was wrong), 403 for a wrong
        password or unknown user, 400 for malformed credentials."""
        tag = to_tag or new_tag()
        if result.outcome in (AuthOutcome.MISSING, AuthOutcome.STALE):
            self.counters.challenged += 1
            status = 407 if proxy else 401
            reason = "Proxy Authentication Required" if proxy else "Unauthorized"
            headers = self.digest.challenge_headers(
                proxy=proxy, stale=result.outcome is AuthOutcome.STALE
            )
            return create_response(request, status, reason, to_tag=tag, headers=headers)
        self.counters.auth_failed += 1
        if result.outcome is AuthOutcome.MALFORMED:
            return create_response(request, 400, f"Bad Request ({result.reason})", to_tag=tag)
        self._throttle.warning(
            f"auth:{result.username}",
            "digest authentication failed for %r: %s",
            result.username,
            result.reason,
        )
        return create_response(request, 403, "Forbidden (bad credentials)", to_tag=tag)

    # -- bindings -------------------------------------------------------------------------

    def lookup(self, user: str) -> list[Binding]:
        """The user's current contacts, highest q first."""
        now = self._clock()
        bindings = [b for b in self._bindings.get(user, {}).values() if b.expires_at > now]
        return sorted(bindings, key=lambda b: -b.q)

    @property
    def registered_users(self) -> list[str]:
        return [name for name in self._bindings if self.lookup(name)]

    def sweep(self) -> list[Binding]:
        """Remove expired bindings (telling ``on_change``) and return them."""
        now = self._clock()
        expired: list[Binding] = []
        for name in list(self._bindings):
            table = self._bindings[name]
            for key in [k for k, b in table.items() if b.expires_at <= now]:
                expired.append(table.pop(key))
            if not table:
                del self._bindings[name]
        for binding in expired:
            self._notify(BindingEvent.EXPIRED, binding)
        return expired

    def _notify(self, event: BindingEvent, binding: Binding) -> None:
        logger.info("binding %s: %s -> %s", event.value, binding.user, binding.uri)
        if self.on_change is not None:
            try:
                self.on_change(BindingChange(event, binding))
            except Exception:
                logger.exception("binding change callback failed")

    # -- REGISTER -------------------------------------------------------------------------

    def attach(self, stack: SipStack) -> None:
        """Answer the stack's REGISTER requests."""
        stack.set_handler("REGISTER", self.handle)

    def handle(self, incoming: IncomingRequest) -> None:
        """Stack handler: answer one REGISTER."""
        incoming.send(self.process(incoming.request, incoming.origin, to_tag=incoming.to_tag))

    def process(
        self, request: SipRequest, origin: Origin | None = None, *, to_tag: str = ""
    ) -> SipResponse:
        """The registrar's answer to a REGISTER (sans-IO core of ``handle``)."""
        tag = to_tag or new_tag()
        result = self.authenticate(request)
        if not result.ok:
            return self.challenge(request, result, to_tag=tag)
        try:
            aor = request.to.uri
            if not isinstance(aor, SipUri) or aor.user is None:
                raise _Refused(404, "Not Found (To is not a user's address of record)")
            if aor.user != result.username:
                raise _Refused(403, "Forbidden (authenticated user does not match To)")
            self._apply(aor.user, request, origin)
        except _Refused as refused:
            self.counters.rejected += 1
            return create_response(
                request, refused.status, refused.reason, to_tag=tag, headers=refused.headers
            )
        self.counters.registered += 1
        now = self._clock()
        contacts = tuple(
            Header("Contact", str(b.contact.with_param("expires", str(b.expires_in(now)))))
            for b in self.lookup(aor.user)
        )
        return create_response(request, 200, "OK", to_tag=tag, headers=contacts)

    def _expires(self, request: SipRequest, contact: NameAddr) -> int:
        value = contact.param("expires")
        if value is None:
            value = request.get("Expires")
        if value is None:
            return self.default_expires
        if not value.isdigit():
            raise _Refused(400, f"Bad Request (bad expires {value[:20]!r})")
        return int(value)

    def _apply(self, user: str, request: SipRequest, origin: Origin | None) -> None:
        now = self._clock()
        current = {k: b for k, b in self._bindings.get(user, {}).items() if b.expires_at > now}
        call_id, cseq = request.call_id, request.cseq.seq
        if request.contact_is_star:
            if request.get("Expires") != "0":
                raise _Refused(400, "Bad Request (Contact: * needs Expires: 0)")
            self._commit(user, {}, current)
            return
        updated = dict(current)
        for contact in request.contacts:
            expires = self._expires(request, contact)
            if 0 < expires < self.min_expires:
                raise _Refused(
                    423, "Interval Too Brief", Header("Min-Expires", str(self.min_expires))
                )
            q_text = contact.param("q")
            try:
                q = 1.0 if q_text is None else float(q_text)
            except ValueError:
                q = -1.0
            if not 0.0 <= q <= 1.0:
                raise _Refused(400, f"Bad Request (bad q value {q_text!r})")
            key = _binding_key(contact.uri)
            existing = current.get(key)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                raise _Refused(500, "Server Internal Error (REGISTER out of order)")
            if expires == 0:
                updated.pop(key, None)
                continue
            kept = tuple(p for p in contact.params if p.name.lower() != "expires")
            clean = NameAddr(contact.uri, contact.display_name, kept)
            updated[key] = Binding(
                user=user,
                contact=clean,
                expires_at=now + min(expires, self.max_expires),
                q=q,
                call_id=call_id,
                cseq=cseq,
                origin=origin,
            )
        if len(updated) > self.max_contacts:
            raise _Refused(403, f"Forbidden (more than {self.max_contacts} contacts)")
        self._commit(user, updated, current)

    def _commit(self, user: str, updated: dict[str, Binding], current: dict[str, Binding]) -> None:
        if updated:
            self._bindings[user] = updated
        else:
            self._bindings.pop(user, None)
        for key, binding in current.items():
            if key not in updated:
                self._notify(BindingEvent.REMOVED, binding)
        for key, binding in updated.items():
            old = current.get(key)
            if old is None:
                self._notify(BindingEvent.ADDED, binding)
            elif (old.contact, old.q, _where(old.origin)) != (
                binding.contact,
                binding.q,
                _where(binding.origin),
            ):
                self._notify(BindingEvent.UPDATED, binding)

    # -- expiry sweeper -------------------------------------------------------------------

    async def start(self) -> None:
        """Run the expiry sweep every ``sweep_interval`` seconds."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="sip-registrar-sweep"
            )

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    async def __aenter__(self) -> Registrar:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                self.sweep()
            except Exception:
                logger.exception("registrar sweep failed")


def _where(origin: Origin | None) -> object:
    return None if origin is None else (origin.remote, origin.connection)
