"""Digest authentication for SIP (RFC 2617, RFC 8760: MD5, MD5-sess, SHA-256, SHA-256-sess,
qop=auth), sans-IO: the server side (stateless HMAC nonces, stale nonces, nonce-count
replay check) and the client side (answer 401/407 challenges with the strongest algorithm).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sip.errors import SipParseError
from sip.headers import TOKEN_CHARS, is_token, quote, read_quoted
from sip.message import Header, SipRequest, SipResponse
from sip.uri import parse_uri


class Algorithm(enum.Enum):
    """Digest algorithms, as written on the wire."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA256 = "SHA-256"
    SHA256_SESS = "SHA-256-sess"

    @classmethod
    def parse(cls, text: str | None) -> Algorithm | None:
        """The algorithm named ``text`` (case-insensitive; absent means MD5), None if unknown."""
        if text is None:
            return cls.MD5
        return _BY_NAME.get(text.lower())

    @property
    def session(self) -> bool:
        return self.value.endswith("-sess")

    @property
    def strength(self) -> int:
        return 2 if self.value.startswith("SHA-256") else 1

    def hash(self, text: str) -> str:
        data = text.encode("utf-8")
        if self.strength == 2:
            return hashlib.sha256(data).hexdigest()
        return hashlib.md5(data, usedforsecurity=False).hexdigest()


_BY_NAME = {algorithm.value.lower(): algorithm for algorithm in Algorithm}


_AUTH_PARAM_RE = re.compile(
    r"[ \t,]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*=[ \t]*"
    r'(?:"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\r\n])*)"|([^ \t,"]*))[ \t]*(?:,|\Z)'
)
_ESCAPED_RE = re.compile(r"\\(.)")


def _auth_params_fast(text: str) -> dict[str, str] | None:
    """The parameters of well-formed text in one regex pass; None to take the slow,
    precise path (malformed text, duplicates)."""
    params: dict[str, str] = {}
    pos, end = 0, len(text.rstrip(" \t,"))
    while pos < end:
        found = _AUTH_PARAM_RE.match(text, pos)
        if found is None:
            return None
        name, quoted, plain = found.groups()
        name = name.lower()
        if name in params:
            return None
        if quoted is None:
            params[name] = plain
        else:
            params[name] = _ESCAPED_RE.sub(r"\1", quoted) if "\\" in quoted else quoted
        pos = found.end()
    return params


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Digest a=b, c="d"`` into the scheme and lower-cased parameter names with
    unquoted values; raises ``SipParseError`` on malformed text."""
    scheme, _, rest = value.strip().partition(" ")
    if not is_token(scheme):
        raise SipParseError(f"bad auth scheme in {value[:60]!r}")
    fast = _auth_params_fast(rest)
    if fast is not None:
        return scheme, fast
    params: dict[str, str] = {}
    pos, text = 0, rest
    while pos < len(text):
        while pos < len(text) and text[pos] in " \t,":
            pos += 1
        if pos >= len(text):
            break
        start = pos
        while pos < len(text) and text[pos] in TOKEN_CHARS:
            pos += 1
        name = text[start:pos].lower()
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if not name or pos >= len(text) or text[pos] != "=":
            raise SipParseError(f"bad auth parameter at {text[start : start + 40]!r}")
        pos += 1
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == '"':
            param, pos = read_quoted(text, pos)
        else:
            start = pos
            while pos < len(text) and text[pos] not in " \t,":
                pos += 1
            param = text[start:pos]
        if name in params:
            raise SipParseError(f"auth parameter {name!r} given twice")
        params[name] = param
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] != ",":
            raise SipParseError(f"bad auth parameters: expected ',' at {text[pos : pos + 40]!r}")
    return scheme, params


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` / ``Proxy-Authenticate`` Digest challenge."""

    realm: str
    nonce: str
    algorithm: Algorithm = Algorithm.MD5
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> Challenge:
        """Parse a Digest challenge; an unknown algorithm raises ``SipParseError``."""
        scheme, params = parse_auth_params(value)
        if scheme.lower() != "digest":
            raise SipParseError(f"not a Digest challenge: {scheme!r}")
        if "realm" not in params or "nonce" not in params:
            raise SipParseError("Digest challenge without realm or nonce")
        algorithm = Algorithm.parse(params.get("algorithm"))
        if algorithm is None:
            raise SipParseError(f"unsupported digest algorithm {params['algorithm']!r}")
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=algorithm,
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
        )

    def __str__(self) -> str:
        out = f"Digest realm={quote(self.realm)}, nonce={quote(self.nonce)}"
        if self.opaque is not None:
            out += f", opaque={quote(self.opaque)}"
        out += f", algorithm={self.algorithm.value}"
        if self.qop:
            out += f', qop="{",".join(self.qop)}"'
        if self.stale:
            out += ", stale=true"
        return out


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """The Digest parameters of an ``Authorization`` / ``Proxy-Authorization`` header."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: Algorithm = Algorithm.MD5
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    @classmethod
    def parse(cls, value: str) -> DigestCredentials:
        scheme, params = parse_auth_params(value)
        if scheme.lower() != "digest":
            raise SipParseError(f"not Digest credentials: {scheme!r}")
        missing = [n for n in ("username", "realm", "nonce", "uri", "response") if n not in params]
        if missing:
            raise SipParseError(f"Digest credentials without {', '.join(missing)}")
        algorithm = Algorithm.parse(params.get("algorithm"))
        if algorithm is None:
            raise SipParseError(f"unsupported digest algorithm {params['algorithm']!r}")
        qop = params.get("qop")
        if qop is not None and ("nc" not in params or "cnonce" not in params):
            raise SipParseError("Digest credentials with qop need nc and cnonce")
        return cls(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"].lower(),
            algorithm=algorithm,
            qop=qop.lower() if qop is not None else None,
            nc=params.get("nc"),
            cnonce=params.get("cnonce"),
            opaque=params.get("opaque"),
        )

    def __str__(self) -> str:
        out = (
            f"Digest username={quote(self.username)}, realm={quote(self.realm)}, "
            f"nonce={quote(self.nonce)}, uri={quote(self.uri)}, response={quote(self.response)}, "
            f"algorithm={self.algorithm.value}"
        )
        if self.qop is not None:
            out += f", cnonce={quote(self.cnonce or '')}, qop={self.qop}, nc={self.nc}"
        if self.opaque is not None:
            out += f", opaque={quote(self.opaque)}"
        return out


def digest_response(
    *,
    algorithm: Algorithm,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value of RFC 2617 section 3.2.2 (and RFC 7616 for SHA-256)."""
    ha1 = algorithm.hash(f"{username}:{realm}:{password}")
    if algorithm.session:
        ha1 = algorithm.hash(f"{ha1}:{nonce}:{cnonce or ''}")
    if qop == "auth-int":
        body_hash = (
            hashlib.sha256(body).hexdigest()
            if algorithm.strength == 2
            else hashlib.md5(body, usedforsecurity=False).hexdigest()
        )
        ha2 = algorithm.hash(f"{method}:{uri}:{body_hash}")
    else:
        ha2 = algorithm.hash(f"{method}:{uri}")
    if qop is None:
        return algorithm.hash(f"{ha1}:{nonce}:{ha2}")
    return algorithm.hash(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# -- server side ---------------------------------------------------------------------------


class AuthOutcome(enum.Enum):
    OK = "ok"
    MISSING = "missing"  # no credentials for our realm: challenge
    STALE = "stale"  # right password, but the nonce expired, is not ours or was replayed
    REJECTED = "rejected"  # unknown user or wrong password
    MALFORMED = "malformed"  # unparsable or incomplete credentials


@dataclass(frozen=True, slots=True)
class AuthResult:
    outcome: AuthOutcome
    username: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK


_NONCE_LEN = 8 + 16 + 32


class DigestServer:
    """Challenges and checks Digest credentials for one realm.

    Nonces are stateless: hex timestamp, salt and an HMAC-SHA-256 over both and the realm
    with ``secret``, so any nonce this server made can be checked without storage, and
    one older than ``nonce_ttl`` seconds is answered with ``stale=true``. The highest
    nonce-count seen per nonce is kept (at most ``max_tracked_nonces``; when that many
    are in use, the oldest are dropped and nonces as old as them count as stale) so a
    replayed ``nc`` is refused.
    """

    def __init__(
        self,
        realm: str,
        *,
        secret: bytes | None = None,
        nonce_ttl: float = 300.0,
        algorithms: Iterable[Algorithm] = (Algorithm.SHA256, Algorithm.MD5),
        max_tracked_nonces: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.realm = realm
        self.algorithms = tuple(algorithms)
        if not self.algorithms:
            raise ValueError("DigestServer needs at least one algorithm")
        self.nonce_ttl = nonce_ttl
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._clock = clock
        self._max_tracked = max_tracked_nonces
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._floor = -1  # nonces with a timestamp at or below this are stale

    @property
    def tracked_nonces(self) -> int:
        """How many nonces have their nonce-count remembered (bounded)."""
        return len(self._counts)

    def _mac(self, stamp: str, salt: str) -> str:
        digest = hmac.new(self._secret, f"{stamp}{salt}{self.realm}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    def new_nonce(self, now: float | None = None) -> str:
        stamp = f"{int(self._clock() if now is None else now) & 0xFFFFFFFF:08x}"
        salt = secrets.token_hex(8)
        return stamp + salt + self._mac(stamp, salt)

    def _nonce_time(self, nonce: str) -> int | None:
        """The nonce's timestamp when this server made it, else None."""
        if len(nonce) != _NONCE_LEN:
            return None
        stamp, salt, mac = nonce[:8], nonce[8:24], nonce[24:]
        if not hmac.compare_digest(mac, self._mac(stamp, salt)):
            return None
        try:
            return int(stamp, 16)
        except ValueError:
            return None

    def challenges(self, *, stale: bool = False, now: float | None = None) -> list[Challenge]:
        """One challenge per algorithm, strongest first (RFC 8760 section 2.4)."""
        nonce = self.new_nonce(now)
        return [Challenge(self.realm, nonce, a, ("auth",), None, stale) for a in self.algorithms]

    def challenge_headers(
        self, *, proxy: bool = False, stale: bool = False, now: float | None = None
    ) -> tuple[Header, ...]:
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        return tuple(Header(name, str(c)) for c in self.challenges(stale=stale, now=now))

    def verify(
        self,
        request: SipRequest,
        password_for: Callable[[str], str | None],
        *,
        proxy: bool = False,
        now: float | None = None,
    ) -> AuthResult:
        """Check the request's credentials for this realm; ``password_for(username)`` gives
        the user's password or None for an unknown user."""
        name = "Proxy-Authorization" if proxy else "Authorization"
        credentials: DigestCredentials | None = None
        for value in request.get_all(name):
            if value.split(" ", 1)[0].lower() != "digest":
                continue  # another scheme (RFC 4475 regaut01): challenge with ours
            try:
                parsed = DigestCredentials.parse(value)
            except SipParseError as err:
                return AuthResult(AuthOutcome.MALFORMED, None, err.reason)
            if parsed.realm == self.realm:
                credentials = parsed
                break
        if credentials is None:
            return AuthResult(AuthOutcome.MISSING, None, f"no credentials for {self.realm!r}")
        user = credentials.username
        if credentials.algorithm not in self.algorithms:
            return AuthResult(
                AuthOutcome.MALFORMED, user, f"algorithm {credentials.algorithm.value} not offered"
            )
        if credentials.qop != "auth":
            return AuthResult(AuthOutcome.MALFORMED, user, "qop=auth is required")
        if not _same_uri(credentials.uri, str(request.uri)):
            return AuthResult(AuthOutcome.MALFORMED, user, "digest uri differs from Request-URI")
        password = password_for(user)
        if password is None:
            return AuthResult(AuthOutcome.REJECTED, user, f"unknown user {user!r}")
        expected = digest_response(
            algorithm=credentials.algorithm,
            username=user,
            realm=self.realm,
            password=password,
            method=request.method,
            uri=credentials.uri,
            nonce=credentials.nonce,
            qop=credentials.qop,
            nc=credentials.nc,
            cnonce=credentials.cnonce,
        )
        if not hmac.compare_digest(expected, credentials.response):
            return AuthResult(AuthOutcome.REJECTED, user, "wrong password")
        return self._check_nonce(credentials, user, self._clock() if now is None else now)

    def _check_nonce(self, credentials: DigestCredentials, user: str, now: float) -> AuthResult:
        issued = self._nonce_time(credentials.nonce)
        if issued is None:
            return AuthResult(AuthOutcome.STALE, user, "nonce not issued by this server")
        if now - issued > self.nonce_ttl:
            return AuthResult(AuthOutcome.STALE, user, "nonce expired")
        try:
            count = int(credentials.nc or "", 16)
        except ValueError:
            return AuthResult(AuthOutcome.MALFORMED, user, f"bad nc {credentials.nc!r}")
        last = self._counts.get(credentials.nonce)
        if last is None and issued <= self._floor:
            return AuthResult(AuthOutcome.STALE, user, "nonce no longer tracked")
        if last is not None and count <= last:
            return AuthResult(AuthOutcome.STALE, user, f"nonce count {count} replayed")
        self._counts[credentials.nonce] = count
        self._counts.move_to_end(credentials.nonce)
        self._evict(now)
        return AuthResult(AuthOutcome.OK, user)

    def _evict(self, now: float) -> None:
        if len(self._counts) <= self._max_tracked:
            return
        for nonce in list(self._counts):
            issued = int(nonce[:8], 16)
            if now - issued > self.nonce_ttl or len(self._counts) > self._max_tracked:
                del self._counts[nonce]
                self._floor = max(self._floor, issued)
            if len(self._counts) <= self._max_tracked // 2:
                break


def _same_uri(given: str, request_uri: str) -> bool:
    if given == request_uri:
        return True
    try:
        return parse_uri(given) == parse_uri(request_uri)
    except SipParseError:
        return False


# -- client side ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a client authenticates with; ``realm`` limits them to one realm."""

    username: str
    password: str = ""
    realm: str | None = None

    def __repr__(self) -> str:  # never show the password
        return f"Credentials(username={self.username!r}, realm={self.realm!r})"


class DigestClient:
    """Answers Digest challenges for one set of credentials, counting ``nc`` per nonce."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._counts: dict[str, int] = {}
        self._last: dict[tuple[bool, str], Challenge] = {}

    def answer(self, request: SipRequest, response: SipResponse) -> list[Header]:
        """``Authorization`` / ``Proxy-Authorization`` headers answering the challenges of a
        401 or 407 to ``request``; empty when there is nothing this client can answer
        (no supported algorithm, another realm, or a nonce that was already refused)."""
        proxy = response.status == 407
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        best: dict[str, Challenge] = {}
        for value in response.get_all(name):
            try:
                challenge = Challenge.parse(value)
            except SipParseError:
                continue  # another scheme or algorithm: look for one we support
            if self.credentials.realm not in (None, challenge.realm):
                continue
            if challenge.qop and "auth" not in challenge.qop and "auth-int" not in challenge.qop:
                continue
            chosen = best.get(challenge.realm)
            if chosen is None or challenge.algorithm.strength > chosen.algorithm.strength:
                best[challenge.realm] = challenge
        headers: list[Header] = []
        for realm, challenge in best.items():
            if self._sent_nonce(request, proxy, realm) is not None and not challenge.stale:
                # We answered this realm already and were challenged again without
                # stale=true: the credentials are wrong, asking again would loop.
                self._last.pop((proxy, realm), None)
                continue
            self._last[(proxy, realm)] = challenge
            headers.append(self._authorize(request, challenge, proxy))
        return headers

    def preemptive(self, request: SipRequest) -> list[Header]:
        """Credentials for ``request`` from the last challenges seen (next ``nc``), so that
        refreshes (re-REGISTER) need no new round trip."""
        return [self._authorize(request, c, proxy) for (proxy, _), c in self._last.items()]

    def _sent_nonce(self, request: SipRequest, proxy: bool, realm: str) -> str | None:
        name = "Proxy-Authorization" if proxy else "Authorization"
        for value in request.get_all(name):
            try:
                credentials = DigestCredentials.parse(value)
            except SipParseError:
                continue
            if credentials.realm == realm:
                return credentials.nonce
        return None

    def _authorize(self, request: SipRequest, challenge: Challenge, proxy: bool) -> Header:
        uri = str(request.uri)
        qop = "auth" if "auth" in challenge.qop else ("auth-int" if challenge.qop else None)
        nc = cnonce = None
        if qop is not None:
            count = self._counts.get(challenge.nonce, 0) + 1
            if len(self._counts) > 64:
                self._counts.clear()  # old nonces are dead weight; counts restart per nonce
            self._counts[challenge.nonce] = count
            nc, cnonce = f"{count:08x}", secrets.token_hex(8)
        response = digest_response(
            algorithm=challenge.algorithm,
            username=self.credentials.username,
            realm=challenge.realm,
            password=self.credentials.password,
            method=request.method,
            uri=uri,
            nonce=challenge.nonce,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=request.body,
        )
        credentials = DigestCredentials(
            username=self.credentials.username,
            realm=challenge.realm,
            nonce=challenge.nonce,
            uri=uri,
            response=response,
            algorithm=challenge.algorithm,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            opaque=challenge.opaque,
        )
        return Header("Proxy-Authorization" if proxy else "Authorization", str(credentials))


def replace_credentials(request: SipRequest, headers: Iterable[Header]) -> SipRequest:
    """``request`` with its credentials for the given headers' realms replaced."""
    new = list(headers)
    names = {h.name for h in new}
    kept = tuple(h for h in request.headers if h.name not in names)
    return SipRequest(request.method, request.uri, (*kept, *new), request.body)
