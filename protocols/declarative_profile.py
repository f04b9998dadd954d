"""Declarative device profiles as written (YAML): the schema, and the checks that compile one.

Every problem is reported with its key path and line (``commands.recall_layout.send: unknown
field 'layuot' (fields here: layout), line 12``), like the site file.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, StrictInt, StrictStr, ValidationError

from protocols.declarative import (
    CHECKSUM_FIELD,
    CHECKSUMS,
    FRAMING_KINDS,
    NAME,
    Checksum,
    Converter,
    DelimiterFraming,
    ErrorRule,
    FixedFraming,
    FramingSpec,
    MarkerFraming,
    Notification,
    Path,
    Pattern,
    Profile,
    Query,
    Segment,
    Spec,
    Step,
    Template,
    Value,
    Vocabulary,
    bytes_of,
    checksum_count,
    parse_hex,
    parse_text,
)


class ProfileError(ValueError):
    """The profile is invalid; ``problems`` lists each finding as ``path: phrase, line N``."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(problems))


# --- YAML with lines ----------------------------------------------------------------------


def parse_yaml(text: str) -> tuple[Any, dict[Path, int], list[str]]:
    """Parse ``text``; return the data, the line of every key path, and syntax problems."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        return None, {}, [f"YAML syntax: {err.problem}{line}"]
    except yaml.YAMLError as err:
        return None, {}, [f"YAML syntax: {err}"]
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    pending: list[tuple[yaml.Node, Path]] = [(node, ())] if node is not None else []
    while pending:
        current, path = pending.pop()
        lines.setdefault(path, current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                child = (*path, str(key.value))
                lines.setdefault(child, key.start_mark.line + 1)
                pending.append((value, child))
        elif isinstance(current, yaml.SequenceNode):
            pending.extend((item, (*path, i)) for i, item in enumerate(current.value))
    return data, lines, []


def format_path(path: Path) -> str:
    """``("queries", 0, "send")`` -> ``queries[0].send``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out or "(top level)"


# --- the profile as written ------------------------------------------------------------


class ChecksumSpec(Spec):
    kind: Literal["none", "sum8", "xor8", "crc16-modbus", "crc16-ccitt"] = "none"
    start: int = Field(0, ge=0, alias="from", description="first byte covered")
    to: StrictInt | None = Field(None, description="end (exclusive); default: the checksum")
    byteorder: Literal["big", "little"] | None = None


class StepSpec(Spec):
    send: StrictStr | None = Field(None, description="the frame template")
    reply: StrictStr | None = Field(None, description="regex (ascii) or byte pattern (hex)")
    convert: dict[str, Converter] = {}
    state: dict[str, StrictStr] = Field({}, description="state key -> capture")


class CommandSpec(StepSpec):
    steps: list[StepSpec] | None = None


class QuerySpec(StepSpec):
    each: dict[str, tuple[StrictInt | StrictStr, StrictInt | StrictStr]] = {}


class MatchSpec(Spec):
    match: StrictStr
    convert: dict[str, Converter] = {}
    state: dict[str, StrictStr] = {}


class ErrorSpec(MatchSpec):
    code: StrictStr | None = Field(None, description="template over captures, e.g. E{code:02d}")
    reason: StrictStr = ""
    reasons: dict[str, StrictStr] = {}


class ProfileSpec(Spec):
    profile: StrictStr = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    description: StrictStr = ""
    encoding: Literal["ascii", "hex"]
    charset: StrictStr = "ascii"
    framing: FramingSpec
    terminator: StrictStr | None = None
    checksum: ChecksumSpec = ChecksumSpec()
    constants: dict[str, StrictInt | StrictStr] = {}
    maps: dict[str, dict[str, StrictInt]] = {}
    absent: dict[str, StrictInt] = {}
    state: dict[str, Any] = {}
    commands: dict[str, CommandSpec] = Field(min_length=1)
    queries: list[QuerySpec] = []
    notifications: list[MatchSpec] = []
    errors: list[ErrorSpec] = []


# --- loading and checking ------------------------------------------------------------------


class _Checker:
    """Collects problems as ``path: phrase, line N``."""

    def __init__(self, lines: Mapping[Path, int], prefix: Path = ()) -> None:
        self.lines = lines
        self.prefix = prefix
        self.problems: list[str] = []

    def add(self, path: Path, message: str) -> None:
        full = (*self.prefix, *path)
        line = None
        probe = path
        while line is None:
            line = self.lines.get(probe)
            if not probe:
                break
            probe = probe[:-1]
        suffix = f", line {line}" if line is not None else ""
        self.problems.append(f"{format_path(full)}: {message}{suffix}")


def load_profile(
    text: str,
    source: str = "",
    *,
    vocabulary: Vocabulary,
    constants: Mapping[str, Any] | None = None,
    maps: Mapping[str, Any] | None = None,
) -> Profile:
    """Parse and check a profile (YAML text); raise :class:`ProfileError` listing every problem.

    ``constants`` and ``maps`` come from the site file and override the profile's.
    """
    data, lines, problems = parse_yaml(text)
    if problems:
        raise ProfileError(problems, source)
    return compile_profile(
        data, source, vocabulary=vocabulary, lines=lines, constants=constants, maps=maps
    )


def compile_profile(
    data: Any,
    source: str = "",
    *,
    vocabulary: Vocabulary,
    lines: Mapping[Path, int] | None = None,
    prefix: Path = (),
    constants: Mapping[str, Any] | None = None,
    maps: Mapping[str, Any] | None = None,
) -> Profile:
    """Check a parsed profile; ``prefix`` is where it sits in a bigger file (inline profiles)."""
    check = _Checker(lines or {}, prefix)
    if not isinstance(data, dict):
        check.add((), "expected a mapping (a profile)")
        raise ProfileError(check.problems, source)
    try:
        spec = ProfileSpec.model_validate(data)
    except ValidationError as err:
        for error in err.errors():
            loc = _clean_loc(error["loc"])
            check.add(loc, _phrase(error, loc, data))
        raise ProfileError(check.problems, source) from None
    profile = _Compiler(spec, check, vocabulary, constants or {}, maps or {}).build()
    if check.problems or profile is None:
        raise ProfileError(check.problems, source)
    return profile


def _group_names(regex: str) -> set[str]:
    try:
        return set(re.compile(regex).groupindex)
    except re.error:
        return set()


def _clean_loc(loc: tuple[Any, ...]) -> Path:
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] == "framing" and part in FRAMING_KINDS:
            continue  # pydantic's union tag
        if isinstance(part, str) and "[" in part:
            continue  # function-after[...] and the like
        out.append(part)
    return tuple(out)


def _model_at(loc: Path, data: Any) -> Any:
    """The spec model of the mapping at ``loc`` (for 'allowed keys' in messages)."""
    annotation: Any = ProfileSpec
    for part in loc:
        data = data.get(part) if isinstance(data, dict) else None
        annotation = _pick(annotation, data)
        fields = getattr(annotation, "model_fields", None)
        if fields is None:
            origin = getattr(annotation, "__args__", ())
            annotation = origin[-1] if origin else None  # list[X] / dict[str, X] -> X
            continue
        by_alias = {(f.alias or n): f for n, f in fields.items()}
        if part not in by_alias:
            return None
        annotation = by_alias[part].annotation
    return _pick(annotation, data)


def _pick(annotation: Any, data: Any) -> Any:
    """Unwrap Optional/Annotated/unions to the model matching ``data`` (framing by ``kind``)."""
    for _ in range(4):
        metadata = getattr(annotation, "__metadata__", None)
        if metadata is not None:
            annotation = annotation.__origin__
            continue
        args = getattr(annotation, "__args__", ())
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models and getattr(annotation, "__origin__", None) is not list:
            if len(models) == 1:
                return models[0]
            kind = data.get("kind") if isinstance(data, dict) else None
            for model in models:
                if model.model_fields.get("kind") and kind in getattr(
                    model.model_fields["kind"].annotation, "__args__", ()
                ):
                    return model
            return None
        break
    return annotation


_PHRASES = {
    "missing": "is required",
    "string_type": "must be a string (quote it: hex bytes such as '03' are numbers in YAML)",
    "int_type": "must be an integer",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "tuple_type": "must be a pair [from, to]",
    "too_short": "must not be empty",
    "string_too_short": "must not be empty",
}


def _phrase(error: Any, loc: Path, data: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1], data)
        fields = getattr(model, "model_fields", None)
        legal = (
            f" (allowed: {', '.join(f.alias or n for n, f in fields.items())})" if fields else ""
        )
        return f"unknown key{legal}"
    if kind == "union_tag_invalid":
        return f"unknown kind {error['ctx']['tag']!r} (legal kinds: {', '.join(FRAMING_KINDS)})"
    if kind == "union_tag_not_found":
        return f"'kind' is required (legal kinds: {', '.join(FRAMING_KINDS)})"
    if kind == "literal_error":
        return f"must be one of {error['ctx']['expected']}, got {error['input']!r}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        op = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">"}
        return f"must be {op.get(kind, '<')} {next(iter(error['ctx'].values()))}"
    if kind == "string_pattern_mismatch":
        return "must be a name of letters, digits, '.', '_' or '-'"
    if kind in _PHRASES:
        return _PHRASES[kind]
    message: str = error["msg"]
    return message.removeprefix("Value error, ")


class _Compiler:
    """Turns a validated spec into a :class:`Profile`, reporting every problem it finds."""

    def __init__(
        self,
        spec: ProfileSpec,
        check: _Checker,
        vocabulary: Vocabulary,
        constants: Mapping[str, Any],
        maps: Mapping[str, Any],
    ) -> None:
        self.spec = spec
        self.check = check
        self.vocabulary = vocabulary
        self.constants: dict[str, Value] = dict(spec.constants)
        self.maps: dict[str, dict[str, int]] = {k: dict(v) for k, v in spec.maps.items()}
        self._overrides(constants, maps)
        self.checksum: Checksum | None = None
        if spec.checksum.kind != "none":
            kind = CHECKSUMS[spec.checksum.kind]
            self.checksum = Checksum(
                kind,
                spec.checksum.start,
                spec.checksum.to,
                spec.checksum.byteorder or kind.byteorder,
            )

    def _overrides(self, constants: Mapping[str, Any], maps: Mapping[str, Any]) -> None:
        for name, value in constants.items():
            if name not in self.constants:
                known = ", ".join(self.constants) or "none"
                self.check.problems.append(
                    f"options.constants.{name}: not a constant of profile "
                    f"{self.spec.profile!r} (constants: {known})"
                )
            elif isinstance(value, bool) or not isinstance(value, int | str):
                self.check.problems.append(
                    f"options.constants.{name}: must be a number or a string, got {value!r}"
                )
            else:
                self.constants[name] = value
        for name, table in maps.items():
            if not isinstance(table, Mapping) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                for k, v in table.items()
            ):
                self.check.problems.append(
                    f"options.maps.{name}: must map names to device numbers, got {table!r}"
                )
                continue
            # the site's names come first and replace the profile's for the same numbers
            numbers = set(table.values())
            kept = {k: v for k, v in self.maps.get(name, {}).items() if v not in numbers}
            self.maps[name] = {**table, **{k: v for k, v in kept.items() if k not in table}}

    def build(self) -> Profile | None:
        spec = self.spec
        try:
            codecs.lookup(spec.charset)
        except LookupError:
            self.check.add(("charset",), f"unknown character set {spec.charset!r}")
            return None
        self._check_names()
        terminator = self._terminator()
        self._check_framing()
        commands = {name: self._command(name, command) for name, command in spec.commands.items()}
        queries = tuple(self._query(i, q) for i, q in enumerate(spec.queries))
        notifications = tuple(
            Notification(format_path(("notifications", i)), pattern, n.state)
            for i, n in enumerate(spec.notifications)
            if (pattern := self._pattern(("notifications", i), n.match, n.convert, n.state))
        )
        errors = tuple(
            rule for i, e in enumerate(spec.errors) if (rule := self._error(i, e)) is not None
        )
        if self.check.problems:
            return None
        return Profile(
            name=spec.profile,
            description=spec.description,
            encoding=spec.encoding,
            charset=spec.charset,
            framing=spec.framing,
            terminator=terminator,
            constants=self.constants,
            maps=self.maps,
            absent=dict(spec.absent),
            state=dict(spec.state),
            commands={n: c for n, c in commands.items() if c is not None},
            queries=tuple(q for q in queries if q is not None),
            notifications=notifications,
            errors=errors,
        )

    def _check_names(self) -> None:
        for section, names in (("constants", self.spec.constants), ("maps", self.spec.maps)):
            for name in names:
                if NAME.fullmatch(name) is None:
                    self.check.add((section, name), "must be a name of letters, digits and '_'")

    def _terminator(self) -> bytes:
        spec = self.spec
        if spec.terminator is None:
            if isinstance(spec.framing, DelimiterFraming):
                return self._bytes(("framing", "delimiter"), spec.framing.delimiter)
            return b""
        return self._bytes(("terminator",), spec.terminator)

    def _bytes(self, path: Path, text: str) -> bytes:
        try:
            return bytes_of(text, self.spec.encoding, self.spec.charset)
        except (ValueError, UnicodeEncodeError) as err:
            self.check.add(path, str(err))
            return b""

    def _check_framing(self) -> None:
        framing = self.spec.framing
        if isinstance(framing, DelimiterFraming):
            self._bytes(("framing", "delimiter"), framing.delimiter)
        elif isinstance(framing, FixedFraming) and framing.header:
            header = self._bytes(("framing", "header"), framing.header)
            if len(header) >= framing.length:
                self.check.add(("framing", "header"), f"is as long as the frame ({framing.length})")
        elif isinstance(framing, MarkerFraming):
            self._bytes(("framing", "start"), framing.start)
            self._bytes(("framing", "end"), framing.end)

    def _command(self, name: str, command: CommandSpec) -> tuple[Step, ...] | None:
        path: Path = ("commands", name)
        if name not in self.vocabulary:
            legal = ", ".join(sorted(self.vocabulary))
            self.check.add(path, f"unknown command {name!r} (legal: {legal})")
            return None
        inline = command.send is not None or command.reply is not None
        if command.steps is not None and inline:
            self.check.add(path, "give either 'steps' or send/reply, not both")
            return None
        if command.steps is None and command.send is None:
            self.check.add(path, "needs 'send' (or 'steps')")
            return None
        fields = self.vocabulary[name] | frozenset(self.constants)
        if command.steps is None:
            step = self._step(path, command, fields)
            return (step,) if step is not None else None
        if not command.steps:
            self.check.add((*path, "steps"), "must not be empty")
            return None
        steps = [self._step((*path, "steps", i), s, fields) for i, s in enumerate(command.steps)]
        if any(s is None for s in steps):
            return None
        return tuple(s for s in steps if s is not None)

    def _step(self, path: Path, spec: StepSpec, fields: frozenset[str]) -> Step | None:
        if spec.send is None:
            self.check.add(path, "needs 'send'")
            return None
        send = self._template((*path, "send"), spec.send, fields)
        reply = None
        if spec.reply is not None:
            reply = self._pattern((*path, "reply"), spec.reply, spec.convert, spec.state, fields)
        elif spec.convert or spec.state:
            self.check.add(path, "'convert' and 'state' need a 'reply' to capture from")
        if send is None or (spec.reply is not None and reply is None):
            return None
        return Step(format_path((*self.check.prefix, *path)), send, reply, dict(spec.state))

    def _query(self, index: int, spec: QuerySpec) -> Query | None:
        path: Path = ("queries", index)
        each: dict[str, range] = {}
        for name, (low, high) in spec.each.items():
            bounds = [self._bound((*path, "each", name), b) for b in (low, high)]
            if None in bounds:
                continue
            first, last = bounds[0], bounds[1]
            assert first is not None and last is not None
            if not NAME.fullmatch(name):
                self.check.add((*path, "each", name), "must be a field name")
            elif first > last or last - first > 255:
                self.check.add((*path, "each", name), f"bad range {first}..{last} (at most 256)")
            else:
                each[name] = range(first, last + 1)
        # every 'each' name is a field, even one whose range is wrong (no cascading errors)
        step = self._step(path, spec, frozenset(self.constants) | frozenset(spec.each))
        return Query(step, each) if step is not None else None

    def _bound(self, path: Path, value: int | str) -> int | None:
        if isinstance(value, int):
            return value
        constant = self.constants.get(value)
        if not isinstance(constant, int):
            self.check.add(path, f"{value!r} is not a number nor a numeric constant")
            return None
        return constant

    def _error(self, index: int, spec: ErrorSpec) -> ErrorRule | None:
        path: Path = ("errors", index)
        # a code is text ("03" stays "03") unless the profile converts it
        convert: dict[str, Converter] = {"code": "str", **spec.convert}
        if self.spec.encoding == "hex" or "code" not in _group_names(spec.match):
            convert = dict(spec.convert)
        pattern = self._pattern((*path, "match"), spec.match, convert, spec.state)
        if pattern is None:
            return None
        code = None
        if spec.code is not None:
            code = self._text_template((*path, "code"), spec.code, pattern.captures)
            if code is None:
                return None
        elif "code" not in pattern.captures:
            self.check.add(path, "needs 'code', or a capture named 'code' in 'match'")
            return None
        return ErrorRule(format_path(path), pattern, code, spec.reason, dict(spec.reasons))

    def _text_template(self, path: Path, text: str, fields: frozenset[str]) -> Template | None:
        try:
            segments = parse_text(text, "utf-8")
        except ValueError as err:
            self.check.add(path, str(err))
            return None
        template = Template(text, tuple(segments), "ascii", "utf-8", None)
        self._known_fields(path, template.fields, fields)
        return template

    def _known_fields(self, path: Path, used: frozenset[str], fields: frozenset[str]) -> bool:
        unknown = sorted(used - fields)
        if unknown:
            legal = ", ".join(sorted(fields)) or "none"
            self.check.add(path, f"unknown field {unknown[0]!r} (fields here: {legal})")
        return not unknown

    def _template(self, path: Path, text: str, fields: frozenset[str]) -> Template | None:
        spec = self.spec
        try:
            if spec.encoding == "hex":
                segments = parse_hex(text, wildcards=False)
            else:
                segments = parse_text(text, spec.charset)
        except (ValueError, UnicodeEncodeError) as err:
            self.check.add(path, str(err))
            return None
        template = Template(text, tuple(segments), spec.encoding, spec.charset, self.checksum)
        known = self._known_fields(path, template.fields, fields)
        if not self._one_checksum(path, segments) or not known:
            return None
        self._fits_framing(path, template.size, "renders")
        return template

    def _one_checksum(self, path: Path, segments: list[Segment]) -> bool:
        sums = checksum_count(segments)
        if sums and self.checksum is None:
            self.check.add(path, "uses {checksum} but checksum.kind is none")
            return False
        if sums > 1:
            self.check.add(path, "has more than one {checksum}")
            return False
        return True

    def _fits_framing(self, path: Path, size: int | None, verb: str) -> None:
        framing = self.spec.framing
        if size is not None and isinstance(framing, FixedFraming) and size != framing.length:
            self.check.add(path, f"{verb} {size} bytes, but framing.length is {framing.length}")

    def _pattern(
        self,
        path: Path,
        text: str,
        convert: Mapping[str, Converter],
        state: Mapping[str, str],
        sent: frozenset[str] = frozenset(),
    ) -> Pattern | None:
        spec = self.spec
        if spec.encoding == "ascii":
            try:
                regex = re.compile(text)
            except re.error as err:
                self.check.add(path, f"not a valid regular expression: {err}")
                return None
            if CHECKSUM_FIELD in regex.groupindex and self.checksum is None:
                self.check.add(path, "captures a checksum but checksum.kind is none")
                return None
            pattern = Pattern(
                text, "ascii", spec.charset, self.checksum, regex=regex, convert=convert
            )
        else:
            try:
                segments = parse_hex(text, wildcards=True)
            except ValueError as err:
                self.check.add(path, str(err))
                return None
            if not self._one_checksum(path, segments):
                return None
            pattern = Pattern(text, "hex", spec.charset, self.checksum, segments=tuple(segments))
            self._fits_framing(path, pattern.size, "matches")
            if convert:
                self.check.add((*path[:-1], "convert"), "only ascii captures are converted")
        captures = pattern.captures
        for name in convert:
            if name not in captures:
                self.check.add((*path[:-1], "convert", name), f"{text!r} captures no {name!r}")
        for key, capture in state.items():
            if capture not in captures and capture not in sent:
                legal = ", ".join(sorted(captures | sent)) or "none"
                self.check.add((*path[:-1], "state", key), f"no capture {capture!r} ({legal})")
        return pattern


__all__ = [
    "ProfileError",
    "ProfileSpec",
    "compile_profile",
    "format_path",
    "load_profile",
    "parse_yaml",
]
