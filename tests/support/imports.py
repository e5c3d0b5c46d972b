"""The project's import graph, read from the source with ``ast`` (nothing is imported): every ``import`` and
``from ... import`` of a module, at the top or inside a function (a lazy import runs upward just the same).

A ``from package import name`` is an edge to ``package.name`` when that is a module, else to ``package``.
Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``; those implicit edges are not drawn (a
package's ``__init__`` that re-exports its modules would otherwise close a loop with each of them). Imports
under ``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Edge:
    source: str  # importing module
    target: str  # imported module of the project
    line: int
    path: Path


def project_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the given top-level packages."""
    out: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _known(name: str, modules: Mapping[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a project module; None outside the project."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_edges(modules: Mapping[str, Path]) -> list[Edge]:
    """Every import of a project module by a project module (self-imports dropped)."""
    edges: list[Edge] = []
    for source, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _import_nodes(tree):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [_known(alias.name, modules) for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = source.split(".") if is_package else source.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else _known(base, modules))
            for target in targets:
                if target is not None and target != source:
                    edges.append(Edge(source, target, node.lineno, path))
    return edges


def cycles(edges: Iterable[Edge]) -> list[list[str]]:
    """The groups of modules that import each other in a loop (strongly connected components of more than
    one module), each sorted, smallest name first."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        # Tarjan's algorithm, iterative (the graph is a few hundred modules deep at most).
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


# ------------------------------------------------------------------------------------------- the layers


@dataclass(frozen=True)
class Layer:
    name: str  # a module prefix: the layer holds the modules under it not claimed by a longer prefix
    may_import: frozenset[str]  # other layers


def _marked(text: str, marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->(.*?)<!-- /{marker} -->", text, re.DOTALL)
    if match is None:
        raise AssertionError(f"docs/design.md has no <!-- {marker} --> ... <!-- /{marker} --> section")
    return match.group(1)


def layers_from_doc(text: str) -> dict[str, Layer]:
    """The layer table of docs/design.md (between ``<!-- layers -->`` markers): the first column names the
    layer (a module prefix in backticks), the third what it may import (backticked layer names)."""
    out: dict[str, Layer] = {}
    for row in _marked(text, "layers").splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue  # the header, its rule line, blank lines
        name = cells[0].strip("`")
        out[name] = Layer(name, frozenset(re.findall(r"`([\w.]+)`", cells[2])))
    return out


def torch_free_from_doc(text: str) -> list[str]:
    """The modules docs/design.md declares torch-free (between ``<!-- torch-free -->`` markers)."""
    return re.findall(r"`([\w.]+)`", _marked(text, "torch-free"))


def layer_of(module: str, layers: Mapping[str, Layer]) -> str | None:
    """The layer whose name is the longest prefix of ``module``."""
    matches = [n for n in layers if module == n or module.startswith(n + ".")]
    return max(matches, key=len) if matches else None


def layer_violations(edges: Iterable[Edge], layers: Mapping[str, Layer], root: Path) -> list[str]:
    """One line per import of a layer that the importing module's layer may not import."""
    out = []
    for e in edges:
        source, target = layer_of(e.source, layers), layer_of(e.target, layers)
        if source is None or target is None or source == target:
            continue
        if target not in layers[source].may_import:
            allowed = ", ".join(sorted(layers[source].may_import)) or "nothing"
            out.append(
                f"{e.path.relative_to(root)}:{e.line}: {e.source} (layer {source}) imports {e.target} "
                f"(layer {target}); {source} may import {allowed}"
            )
    return sorted(out)
