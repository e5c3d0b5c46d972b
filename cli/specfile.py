"""Job spec files for ``schedsearch submit``: JSON or YAML, read with limits, each problem one line.

A spec file is data a person wrote or was sent, so reading it is bounded before anything else happens:

- at most ``MAX_SPEC_BYTES`` (the server's default body limit); the size is checked before the file is read;
- YAML: at most ``MAX_ALIASES`` aliases (``*name``), no alias inside the node it names (a cycle), nesting at
  most ``strictjson.MAX_DEPTH`` deep (PyYAML's composer recurses per level), no duplicate keys, and only the
  types JSON has: a date, ``!!binary``, ``!!set`` or another tag, ``.nan`` or ``.inf`` is refused with its
  line instead of failing later as a traceback (the client cannot send them);
- JSON and the loaded YAML then pass :func:`service.strictjson.check` (what the API enforces), which also
  bounds what aliases expand to (``strictjson.MAX_VALUES``): a billion-laughs file is refused, not expanded.

:func:`load_spec` raises ``ValueError`` with one line naming the file; docs/reliability.md lists the lines.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode

from service import strictjson

MAX_SPEC_BYTES = 1_000_000
MAX_ALIASES = 64
_YAML_SUFFIXES = (".yaml", ".yml")
_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{name}" for name in ("map", "seq", "str", "int", "float", "bool", "null", "merge")
}


class SpecFileError(ValueError):
    """A problem at a line of a YAML document (the caller adds the file name)."""

    def __init__(self, node_or_mark: Any, message: str) -> None:
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        super().__init__(f"line {mark.line + 1}: {message}" if mark is not None else message)


class _SpecLoader(yaml.SafeLoader):
    """``SafeLoader`` with the limits of the module docstring."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0
        self._open_anchors: set[str] = set()

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise SpecFileError(
                    event, f"more than {MAX_ALIASES} YAML aliases (*name); a job spec needs few, if any"
                )
            if event.anchor in self._open_anchors:
                raise SpecFileError(
                    event,
                    f"the alias *{event.anchor} is inside the node it names (a recursive alias); a job spec "
                    "cannot hold a cycle",
                )
            return super().compose_node(parent, index)
        event = self.peek_event()
        if self._depth >= strictjson.MAX_DEPTH:
            raise SpecFileError(event, f"maps and lists nest deeper than {strictjson.MAX_DEPTH} levels")
        anchor = getattr(event, "anchor", None)
        self._depth += 1
        if anchor:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor:
                self._open_anchors.discard(anchor)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        if node.tag not in _PLAIN_TAGS:
            if node.tag == "tag:yaml.org,2002:timestamp":
                what = f"{node.value} is read as a date, which a job spec cannot hold"
                raise SpecFileError(node, f"{what}; quote it to keep it as text")
            short = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise SpecFileError(
                node,
                f"the YAML tag {short} is not allowed in a job spec (only maps, lists, text, numbers, "
                "true/false and null)",
            )
        return super().construct_object(node, deep)

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<: *base" then a key of base: overriding is what merge keys are for
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # an unhashable key; the base class reports it
                    continue
                if duplicate:
                    raise SpecFileError(
                        key_node,
                        f"the key {key!r} appears more than once in one map; each key may appear once",
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_float(self, node: Node) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            text = node.value if isinstance(node, ScalarNode) else str(value)
            raise SpecFileError(node, f"{text} is not a finite number; a job spec needs one")
        return float(value)


_SpecLoader.add_constructor("tag:yaml.org,2002:float", _SpecLoader.construct_yaml_float)


def _read(path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
            if len(data) > MAX_SPEC_BYTES:
                size = path.stat().st_size
                raise ValueError(
                    f"{path} is {size} bytes; a job spec file may be at most {MAX_SPEC_BYTES} bytes"
                )
    except OSError as exc:
        raise ValueError(f"cannot read job spec {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start})") from None


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: the problem and where."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} (line {mark.line + 1})" if mark is not None else str(problem)


def load_spec(path: Path) -> dict[str, Any]:
    """The job spec in ``path`` (JSON, or YAML by suffix) as plain JSON data; ``ValueError`` with one line
    naming the file on any problem (the service validates the content itself)."""
    text = _read(path)
    if path.suffix.lower() in _YAML_SUFFIXES:
        try:
            data = yaml.load(text, Loader=_SpecLoader)
        except SpecFileError as exc:
            raise ValueError(f"{path}: {exc}") from None
        except (yaml.YAMLError, ConstructorError) as exc:
            raise ValueError(f"{path} is not valid YAML: {_one_line(exc)}") from None
        except RecursionError:  # a structure PyYAML's parser itself cannot follow
            raise ValueError(f"{path}: maps and lists nest too deeply") from None
        try:
            strictjson.check(data)
        except strictjson.StrictJSONError as exc:
            raise ValueError(f"{path}: {exc}") from None
    else:
        try:
            data = strictjson.loads(text)
        except strictjson.StrictJSONError as exc:
            first = exc.problems[0]
            if first.kind == "json_invalid":  # "not valid JSON: <what> (line l, column c)"
                raise ValueError(f"{path} is {first.message}") from None
            raise ValueError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold one JSON object (the job spec), got {type(data).__name__}")
    return data
