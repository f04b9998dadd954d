"""What sits behind what: the site's dependency graph (power, network) for suppression."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from monitoring.config import Dependency


class Topology:
    """Parents and children of each source (a DAG: the site file is checked for cycles)."""

    def __init__(self, dependencies: Sequence[Dependency]) -> None:
        self._parents: dict[str, list[str]] = {}
        self._children: dict[str, list[str]] = {}
        for dep in dependencies:
            for child in dep.children:
                self._parents.setdefault(child, []).append(dep.parent)
                self._children.setdefault(dep.parent, []).append(child)

    def ancestors(self, source: str) -> Iterator[str]:
        """Parents first, then theirs (breadth first, each once)."""
        seen: set[str] = set()
        queue = list(self._parents.get(source, ()))
        while queue:
            node = queue.pop(0)
            if node in seen:
                continue
            seen.add(node)
            yield node
            queue.extend(self._parents.get(node, ()))

    def descendants(self, source: str) -> set[str]:
        out: set[str] = set()
        stack = list(self._children.get(source, ()))
        while stack:
            node = stack.pop()
            if node not in out:
                out.add(node)
                stack.extend(self._children.get(node, ()))
        return out
