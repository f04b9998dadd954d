"""NUT's network protocol (upsd on TCP 3493): sans-IO line codec and reply assembly, asyncio client.

Lines end in LF. Words are split like NUT's parseconf: ``"`` quotes a word with spaces, a
backslash escapes the next character (``\\"``, ``\\\\``). Replies: ``OK``, ``ERR <code>``,
``VAR <ups> <var> "<value>"``, ``UPS <ups> "<desc>"`` and ``BEGIN LIST ...`` / ``END LIST ...``
around multi-line answers; ``VER`` and ``NETVER`` answer one line of free text.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

from protocols.framing import DelimiterFramer, FramingError

logger = logging.getLogger(__name__)

R = TypeVar("R")

DEFAULT_PORT = 3493
EOL = b"\n"
MAX_LINE = 4096  # upsd's own buffers are smaller; a longer line is not from upsd

# --- words -------------------------------------------------------------------------------

_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/@+=,")


def quote(value: str) -> str:
    """``value`` as one quoted word: ``"`` and ``\\`` escaped with a backslash."""
    _check_text(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_word(value: str) -> str:
    """A request word: bare if it is a plain token, else quoted."""
    _check_text(value)
    if value and all(c in _PLAIN for c in value):
        return value
    return quote(value)


def _check_text(value: str) -> None:
    bad = next((c for c in value if c in "\r\n\0"), None)
    if bad is not None:
        raise ValueError(f"a NUT word may not contain {bad!r}: {value!r}")


def split_words(line: str) -> list[str]:
    """Split one line into words (parseconf rules); raise ``ValueError`` on a broken quote."""
    words: list[str] = []
    current: list[str] = []
    in_word = quoted = escaped = False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = in_word = True
        elif quoted:
            if char == '"':
                quoted = False
            else:
                current.append(char)
        elif char == '"':
            quoted = in_word = True
        elif char in " \t":
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(char)
            in_word = True
    if escaped:
        raise ValueError(f"line ends in a lone backslash: {line!r}")
    if quoted:
        raise ValueError(f"unterminated quote: {line!r}")
    if in_word:
        words.append("".join(current))
    return words


def _decode_line(data: bytes) -> str:
    if data.endswith(EOL):
        data = data[:-1]
    if data.endswith(b"\r"):
        data = data[:-1]
    if b"\n" in data or b"\0" in data:
        raise ValueError(f"a NUT line may not contain LF or NUL: {data!r}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"NUT line is not UTF-8 at byte {err.start}: {data!r}") from None


# --- requests (client -> upsd) ----------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request line, e.g. ``Request(("GET", "VAR", "ups1", "ups.status"))``."""

    words: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.words or not self.words[0]:
            raise ValueError("a NUT request needs a command word")

    @classmethod
    def parse(cls, data: bytes) -> Request:
        words = split_words(_decode_line(data))
        if not words:
            raise ValueError("empty NUT request")
        return cls(tuple(words))

    def __bytes__(self) -> bytes:
        return (" ".join(encode_word(w) for w in self.words) + "\n").encode("utf-8")

    @property
    def is_list(self) -> bool:
        return self.words[0].upper() == "LIST"

    def describe(self) -> str:
        """The request for logs and errors (a password is never shown)."""
        if self.words[0].upper() == "PASSWORD":
            return "PASSWORD ***"
        return " ".join(self.words)


def ver() -> Request:
    return Request(("VER",))


def netver() -> Request:
    return Request(("NETVER",))


def list_ups() -> Request:
    return Request(("LIST", "UPS"))


def list_var(ups: str) -> Request:
    return Request(("LIST", "VAR", ups))


def get_var(ups: str, var: str) -> Request:
    return Request(("GET", "VAR", ups, var))


def username(name: str) -> Request:
    return Request(("USERNAME", name))


def password(secret: str) -> Request:
    return Request(("PASSWORD", secret))


def login(ups: str) -> Request:
    return Request(("LOGIN", ups))


def logout() -> Request:
    return Request(("LOGOUT",))


# --- replies (upsd -> client) -----------------------------------------------------------


@dataclass(frozen=True)
class Ok:
    """``OK`` or ``OK <detail>`` (``OK Goodbye``)."""

    detail: str = ""

    def __bytes__(self) -> bytes:
        return (f"OK {self.detail}" if self.detail else "OK").encode() + EOL


@dataclass(frozen=True)
class Err:
    """``ERR <code> [<extra>...]``; ``code`` never holds spaces."""

    code: str
    extra: tuple[str, ...] = ()

    def __bytes__(self) -> bytes:
        return " ".join(("ERR", self.code, *map(encode_word, self.extra))).encode() + EOL


@dataclass(frozen=True)
class Var:
    """``VAR <ups> <name> "<value>"`` (one item of LIST VAR, or the answer to GET VAR)."""

    ups: str
    name: str
    value: str

    def __bytes__(self) -> bytes:
        return f"VAR {self.ups} {self.name} {quote(self.value)}".encode() + EOL


@dataclass(frozen=True)
class UpsEntry:
    """``UPS <ups> "<description>"`` (one item of LIST UPS)."""

    ups: str
    description: str

    def __bytes__(self) -> bytes:
        return f"UPS {self.ups} {quote(self.description)}".encode() + EOL


@dataclass(frozen=True)
class BeginList:
    query: tuple[str, ...]

    def __bytes__(self) -> bytes:
        return " ".join(("BEGIN", "LIST", *self.query)).encode() + EOL


@dataclass(frozen=True)
class EndList:
    query: tuple[str, ...]

    def __bytes__(self) -> bytes:
        return " ".join(("END", "LIST", *self.query)).encode() + EOL


@dataclass(frozen=True)
class Text:
    """A line of free text: the answers to ``VER``, ``NETVER`` and ``HELP``."""

    text: str

    def __bytes__(self) -> bytes:
        return self.text.encode() + EOL


Reply = Ok | Err | Var | UpsEntry | BeginList | EndList | Text


def parse_reply(data: bytes) -> Reply:
    """Parse one reply line (with or without its LF); raise ``ValueError`` if malformed."""
    line = _decode_line(data)
    head = line.split(" ", 1)[0]
    if head not in ("OK", "ERR", "VAR", "UPS", "BEGIN", "END"):
        if not line:
            raise ValueError("empty NUT reply line")
        return Text(line)
    words = split_words(line)
    if head == "OK":
        return Ok(" ".join(words[1:]))
    if head == "ERR":
        if len(words) < 2:
            raise ValueError(f"ERR without a code: {line!r}")
        return Err(words[1], tuple(words[2:]))
    if head == "VAR":
        if len(words) != 4:
            raise ValueError(f"VAR needs <ups> <name> <value>, got {line!r}")
        return Var(words[1], words[2], words[3])
    if head == "UPS":
        if len(words) != 3:
            raise ValueError(f"UPS needs <ups> <description>, got {line!r}")
        return UpsEntry(words[1], words[2])
    if len(words) < 3 or words[1] != "LIST":
        raise ValueError(f"{head} must be followed by LIST <query>, got {line!r}")
    return BeginList(tuple(words[2:])) if head == "BEGIN" else EndList(tuple(words[2:]))


def nut_framer() -> DelimiterFramer:
    """Cuts upsd's byte stream into LF-terminated lines (kept)."""
    return DelimiterFramer(EOL, MAX_LINE)


# --- errors --------------------------------------------------------------------------------


class NutErrorCode(enum.StrEnum):
    """The ``ERR`` codes of the protocol (NUT developer guide, "Error responses")."""

    ACCESS_DENIED = "ACCESS-DENIED"
    UNKNOWN_UPS = "UNKNOWN-UPS"
    VAR_NOT_SUPPORTED = "VAR-NOT-SUPPORTED"
    CMD_NOT_SUPPORTED = "CMD-NOT-SUPPORTED"
    INVALID_ARGUMENT = "INVALID-ARGUMENT"
    INSTCMD_FAILED = "INSTCMD-FAILED"
    SET_FAILED = "SET-FAILED"
    READONLY = "READONLY"
    TOO_LONG = "TOO-LONG"
    FEATURE_NOT_SUPPORTED = "FEATURE-NOT-SUPPORTED"
    FEATURE_NOT_CONFIGURED = "FEATURE-NOT-CONFIGURED"
    ALREADY_SSL_MODE = "ALREADY-SSL-MODE"
    DRIVER_NOT_CONNECTED = "DRIVER-NOT-CONNECTED"
    DATA_STALE = "DATA-STALE"
    ALREADY_LOGGED_IN = "ALREADY-LOGGED-IN"
    INVALID_PASSWORD = "INVALID-PASSWORD"
    ALREADY_SET_PASSWORD = "ALREADY-SET-PASSWORD"
    INVALID_USERNAME = "INVALID-USERNAME"
    ALREADY_SET_USERNAME = "ALREADY-SET-USERNAME"
    USERNAME_REQUIRED = "USERNAME-REQUIRED"
    PASSWORD_REQUIRED = "PASSWORD-REQUIRED"
    UNKNOWN_COMMAND = "UNKNOWN-COMMAND"
    INVALID_VALUE = "INVALID-VALUE"


ERROR_MEANINGS: Mapping[str, str] = {
    NutErrorCode.ACCESS_DENIED: "host or credentials not allowed to do this",
    NutErrorCode.UNKNOWN_UPS: "no such UPS in upsd's ups.conf",
    NutErrorCode.VAR_NOT_SUPPORTED: "the UPS does not have this variable",
    NutErrorCode.CMD_NOT_SUPPORTED: "the UPS does not have this instant command",
    NutErrorCode.INVALID_ARGUMENT: "argument not recognised",
    NutErrorCode.INSTCMD_FAILED: "upsd could not pass the command to the driver",
    NutErrorCode.SET_FAILED: "upsd could not pass the setting to the driver",
    NutErrorCode.READONLY: "the variable is read-only",
    NutErrorCode.TOO_LONG: "the value is too long",
    NutErrorCode.FEATURE_NOT_SUPPORTED: "upsd lacks this feature",
    NutErrorCode.FEATURE_NOT_CONFIGURED: "upsd is not configured for this feature",
    NutErrorCode.ALREADY_SSL_MODE: "TLS is already on",
    NutErrorCode.DRIVER_NOT_CONNECTED: "upsd has no connection to the UPS driver",
    NutErrorCode.DATA_STALE: "the UPS driver stopped sending fresh data",
    NutErrorCode.ALREADY_LOGGED_IN: "LOGIN was already sent on this connection",
    NutErrorCode.INVALID_PASSWORD: "the password is invalid",
    NutErrorCode.ALREADY_SET_PASSWORD: "PASSWORD was already sent",
    NutErrorCode.INVALID_USERNAME: "the user name is invalid",
    NutErrorCode.ALREADY_SET_USERNAME: "USERNAME was already sent",
    NutErrorCode.USERNAME_REQUIRED: "this needs USERNAME first",
    NutErrorCode.PASSWORD_REQUIRED: "this needs PASSWORD first",
    NutErrorCode.UNKNOWN_COMMAND: "upsd does not know this command",
    NutErrorCode.INVALID_VALUE: "the value is not allowed",
}

# the UPS is known but upsd has no live data for it: the device is unavailable, not broken
NO_DATA = frozenset({NutErrorCode.DATA_STALE, NutErrorCode.DRIVER_NOT_CONNECTED})


class NutError(Exception):
    """upsd answered ``ERR <code>``; ``code`` is the protocol's own code."""

    def __init__(self, err: Err, request: Request) -> None:
        self.code = err.code
        self.extra = err.extra
        self.request = request
        meaning = ERROR_MEANINGS.get(err.code, "undocumented error")
        extra = f" {' '.join(err.extra)}" if err.extra else ""
        super().__init__(f"{err.code}{extra}: {meaning} (request: {request.describe()})")


class NutProtocolError(ValueError):
    """upsd's answer broke the protocol (wrong list, unexpected line); reconnect to resync."""


# --- reply assembly -----------------------------------------------------------------------


@dataclass(frozen=True)
class ListReply:
    """A complete ``BEGIN LIST`` ... ``END LIST`` answer."""

    query: tuple[str, ...]
    items: tuple[Reply, ...]


Answer = Reply | ListReply


@dataclass
class Exchange:
    """Collects the reply lines of one request until its answer is complete (sans-IO)."""

    request: Request
    answer: Answer | None = None
    _items: list[Reply] = field(default_factory=list)
    _begun: bool = False

    @property
    def done(self) -> bool:
        return self.answer is not None

    def feed(self, reply: Reply) -> bool:
        """Take the next reply line; True once the answer is complete.

        Raise :class:`NutProtocolError` for a line that cannot belong to this answer.
        """
        if self.answer is not None:
            raise NutProtocolError(f"{reply!r} after the answer to {self.request.describe()}")
        if not self.request.is_list:
            if isinstance(reply, BeginList | EndList):
                raise NutProtocolError(f"unexpected {reply!r} for {self.request.describe()}")
            self.answer = reply
            return True
        query = self.request.words[1:]
        if not self._begun:
            if isinstance(reply, Err):
                self.answer = reply
                return True
            if not isinstance(reply, BeginList) or reply.query != query:
                raise NutProtocolError(f"expected BEGIN LIST {' '.join(query)}, got {reply!r}")
            self._begun = True
            return False
        if isinstance(reply, EndList):
            if reply.query != query:
                raise NutProtocolError(f"END LIST {' '.join(reply.query)} inside {query}")
            self.answer = ListReply(query, tuple(self._items))
            return True
        if isinstance(reply, BeginList | Err | Ok | Text):
            raise NutProtocolError(f"unexpected {reply!r} inside LIST {' '.join(query)}")
        self._items.append(reply)
        return False


# --- ups.status ---------------------------------------------------------------------------


class StatusFlag(enum.StrEnum):
    """Tokens of ``ups.status`` (NUT developer guide, "Status data")."""

    OL = "OL"  # on line (mains)
    OB = "OB"  # on battery
    LB = "LB"  # low battery
    HB = "HB"  # high battery
    RB = "RB"  # replace battery
    CHRG = "CHRG"  # charging
    DISCHRG = "DISCHRG"  # discharging
    BYPASS = "BYPASS"  # on bypass
    CAL = "CAL"  # runtime calibration
    OFF = "OFF"  # output off
    OVER = "OVER"  # overloaded
    TRIM = "TRIM"  # trimming incoming voltage
    BOOST = "BOOST"  # boosting incoming voltage
    FSD = "FSD"  # forced shutdown (treat like OB LB)
    ALARM = "ALARM"  # ups.alarm holds details
    TEST = "TEST"  # self-test running
    WAIT = "WAIT"  # upsd/driver have no status yet


def parse_status(value: str) -> tuple[list[StatusFlag], list[str]]:
    """Split ``ups.status`` into known flags and unknown tokens (kept, never dropped)."""
    flags: list[StatusFlag] = []
    unknown: list[str] = []
    for token in value.split():
        try:
            flags.append(StatusFlag(token.upper()))
        except ValueError:
            unknown.append(token)
    return flags, unknown


def split_alarms(value: str) -> list[str]:
    """``ups.alarm`` as a list: NUT 2.8.1+ brackets each alarm (``[a] [b]``); older is one text."""
    text = value.strip()
    if not text:
        return []
    if text.startswith("[") and text.endswith("]"):
        parts = [p.strip(" []") for p in text.split("]")]
        return [p for p in parts if p]
    return [text]


# --- asyncio client -----------------------------------------------------------------------


class NutClient:
    """One connection to upsd; one request in flight at a time.

    Raises :class:`NutError` for ``ERR`` answers, :class:`NutProtocolError` when the answer is
    garbled (the connection is then closed), ``ConnectionError`` when upsd hangs up and
    ``TimeoutError`` when an answer is late.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, timeout: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.timeout = timeout
        self._framer = nut_framer()
        self._lines: deque[bytes] = deque()
        self._lock = asyncio.Lock()
        self.closed = False

    @classmethod
    async def connect(cls, host: str, port: int = DEFAULT_PORT, *, limit: float = 5.0) -> NutClient:
        """Open a connection within ``limit`` seconds; answers must come within ``limit`` too."""
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, timeout=limit)

    async def __aenter__(self) -> NutClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()

    async def request(self, request: Request) -> Answer:
        """Send ``request`` and return its complete answer (``ERR`` raises :class:`NutError`)."""
        async with self._lock:
            if self.closed:
                raise ConnectionError("the connection to upsd is closed")
            exchange = Exchange(request)
            try:
                async with asyncio.timeout(self.timeout):
                    self._writer.write(bytes(request))
                    await self._writer.drain()
                    while not exchange.done:
                        try:
                            reply = parse_reply(await self._next_line())
                        except ValueError as err:
                            logger.debug("dropped malformed line from upsd: %s", err)
                            continue
                        exchange.feed(reply)
            except (NutProtocolError, TimeoutError, ConnectionError, OSError):
                # the stream is out of step with our requests: nobody may use it again
                await self.close()
                raise
            answer = exchange.answer
            assert answer is not None
            if isinstance(answer, Err):
                raise NutError(answer, request)
            return answer

    async def _next_line(self) -> bytes:
        while not self._lines:
            data = await self._reader.read(4096)
            if not data:
                raise ConnectionError("upsd closed the connection")
            try:
                frames = self._framer.feed(data)
            except FramingError as err:
                logger.debug("framing: %s", err)
                frames = err.frames
            self._lines.extend(frames)
        return self._lines.popleft()

    async def _simple(self, request: Request) -> Reply:
        answer = await self.request(request)
        if isinstance(answer, ListReply):
            raise NutProtocolError(f"a list answered {request.describe()}")
        return answer

    async def _ok(self, request: Request) -> None:
        answer = await self._simple(request)
        if not isinstance(answer, Ok):
            raise NutProtocolError(f"expected OK for {request.describe()}, got {answer!r}")

    async def version(self) -> str:
        """upsd's ``VER`` text, e.g. ``Network UPS Tools upsd 2.8.0 - ...``."""
        answer = await self._simple(ver())
        return answer.text if isinstance(answer, Text) else repr(answer)

    async def authenticate(self, user: str, secret: str) -> None:
        """``USERNAME`` and ``PASSWORD``; upsd checks them only on LOGIN, SET, INSTCMD..."""
        await self._ok(username(user))
        await self._ok(password(secret))

    async def login(self, ups: str) -> None:
        """``LOGIN <ups>`` (needs ``upsmon primary|secondary`` for the user in upsd.users)."""
        await self._ok(login(ups))

    async def logout(self) -> None:
        with contextlib.suppress(NutError, NutProtocolError):
            await self._simple(logout())

    async def list_ups(self) -> dict[str, str]:
        """UPS name -> description."""
        items = await self._list(list_ups())
        return {i.ups: i.description for i in _of_type(items, UpsEntry)}

    async def list_var(self, ups: str) -> dict[str, str]:
        """Every variable of ``ups`` and its value."""
        items = await self._list(list_var(ups))
        return {i.name: i.value for i in _of_type(items, Var) if i.ups == ups}

    async def get_var(self, ups: str, var: str) -> str:
        answer = await self._simple(get_var(ups, var))
        if not isinstance(answer, Var) or answer.ups != ups or answer.name != var:
            raise NutProtocolError(f"expected VAR {ups} {var}, got {answer!r}")
        return answer.value

    async def _list(self, request: Request) -> tuple[Reply, ...]:
        answer = await self.request(request)
        if not isinstance(answer, ListReply):
            raise NutProtocolError(f"expected a list for {request.describe()}, got {answer!r}")
        return answer.items


def _of_type(items: Iterable[Reply], kind: type[R]) -> list[R]:
    out: list[R] = []
    for item in items:
        if isinstance(item, kind):
            out.append(item)
        else:
            logger.debug("ignored %r in a list of %s", item, kind.__name__)
    return out


__all__ = [
    "DEFAULT_PORT",
    "ERROR_MEANINGS",
    "NO_DATA",
    "Answer",
    "BeginList",
    "EndList",
    "Err",
    "Exchange",
    "ListReply",
    "NutClient",
    "NutError",
    "NutErrorCode",
    "NutProtocolError",
    "Ok",
    "Reply",
    "Request",
    "StatusFlag",
    "Text",
    "UpsEntry",
    "Var",
    "encode_word",
    "get_var",
    "list_ups",
    "list_var",
    "login",
    "logout",
    "netver",
    "nut_framer",
    "parse_reply",
    "parse_status",
    "password",
    "quote",
    "split_alarms",
    "split_words",
    "username",
    "ver",
]
