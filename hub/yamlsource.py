"""Load YAML keeping the line of every key, so that errors can name it (``line 42``)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$")


def format_path(path: Path_) -> str:
    """``("devices", 3, "port")`` -> ``devices[3].port``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


@dataclass
class YamlDocument:
    """Parsed data plus the 1-based line of each key path."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line_of(self, path: Path_) -> int | None:
        """Line of ``path``, or of its nearest ancestor that is in the file."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def problem(self, path: Path_, message: str) -> None:
        line = self.line_of(path)
        suffix = f", line {line}" if line is not None else ""
        self.problems.append(f"{format_path(path)}: {message}{suffix}")


def load_yaml(text: str, *, resolve_env: bool = True) -> YamlDocument:
    """Parse ``text``; syntax errors, duplicate keys and unset ``${VAR}`` become problems."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(data={})
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        return YamlDocument(data=None, problems=[f"YAML syntax: {err.problem}{line}"])
    except yaml.YAMLError as err:
        return YamlDocument(data=None, problems=[f"YAML syntax: {err}"])
    finally:
        loader.dispose()
    doc = YamlDocument(data=data)
    for path, lineno, duplicate in _walk(node, ()):
        if duplicate:
            doc.problems.append(f"{format_path(path)}: duplicate key, line {lineno}")
        else:
            doc.lines.setdefault(path, lineno)
    if resolve_env:
        doc.data = _resolve(doc.data, (), doc)
    return doc


def _walk(node: yaml.Node, path: Path_) -> Iterator[tuple[Path_, int, bool]]:
    yield path, node.start_mark.line + 1, False
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key: Any = key_node.value
            child = (*path, str(key))
            if key in seen:
                yield child, key_node.start_mark.line + 1, True
                continue
            seen.add(key)
            yield child, key_node.start_mark.line + 1, False
            yield from (x for x in _walk(value_node, child) if x[0] != child)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _walk(item, (*path, index))


def _resolve(value: Any, path: Path_, doc: YamlDocument) -> Any:
    """Replace ``${NAME}`` in strings with the environment's value (``$$`` is a ``$``)."""
    if isinstance(value, dict):
        return {k: _resolve(v, (*path, str(k)), doc) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, (*path, i), doc) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in os.environ:
            doc.problem(path, f"environment variable {name} is not set")
            return ""
        return os.environ[name]

    return _ENV_REF.sub(substitute, value)
