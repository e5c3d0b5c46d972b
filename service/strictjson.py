"""Strict JSON: the values the service accepts in a request body or a job spec file, checked in one pass.

JSON (RFC 8259) lets a document say things that break the code behind it long after parsing:

| problem | what it broke | rule here |
|---|---|---|
| a lone surrogate (``"\\ud800"``) | UTF-8 cannot encode it: a stored job answered 500 on reads | refused |
| a duplicate key | the last value silently won (even over an invalid first one) | refused |
| nesting hundreds deep | recursive code past the parser hit the recursion limit (500) | ``MAX_DEPTH`` |
| an integer with hundreds of digits | ``float()`` overflowed (500); 64-bit columns overflow | 64 bits |
| ``NaN`` / ``Infinity`` (Python's JSON extension) | PostgreSQL's JSON type refuses them | refused |

:func:`loads` parses text and checks it; :func:`check` checks a value built another way (a YAML document) and
also refuses what JSON cannot hold at all (dates, bytes, sets) and aliases that expand beyond ``max_values``.
Both raise :class:`StrictJSONError` listing each :class:`Problem` with the path (``loc``) to the offending
value, so the API can answer a 422 that names the field. Pure standard library: the CLI uses it without
importing the HTTP stack.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Deepest nesting of objects and arrays accepted; a job spec needs about 8 (space.0.lr.base.lr0.choice).
MAX_DEPTH = 32
#: Integers are stored in 64-bit columns and used as floats; anything larger is refused.
MAX_INT = 2**63 - 1
#: Values (scalars and containers) a document may hold once expanded; bounds YAML alias expansion.
MAX_VALUES = 200_000
#: Problems reported at most (the rest are left out: one request, one readable answer).
MAX_PROBLEMS = 20

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One offending value: where (``loc``, keys and indexes from the document root), what kind, a sentence
    saying what is valid, and the offending input in a form JSON can always carry."""

    loc: Loc
    kind: str
    message: str
    input: Any = None


class StrictJSONError(ValueError):
    """The document is not strict JSON; ``problems`` says where and why (never empty)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        where = ".".join(str(p) for p in first.loc)
        super().__init__(f"{where}: {first.message}" if where else first.message)


class _DuplicateKeys(dict[str, Any]):
    """An object in which some key appeared more than once (reported by :func:`check`)."""

    def __init__(self, pairs: list[tuple[str, Any]], duplicates: list[str]) -> None:
        super().__init__(pairs)
        self.duplicates = duplicates


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) == len(pairs):
        return out
    seen: set[str] = set()
    duplicates = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    return _DuplicateKeys(pairs, duplicates)


def loads(data: str | bytes) -> Any:
    """Parse JSON text and :func:`check` it; ``StrictJSONError`` on malformed text or a refused value."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise StrictJSONError(
            [Problem((), "json_invalid", f"the body is not UTF-8 text (byte {exc.start}); send UTF-8 JSON")]
        ) from None
    try:
        # NaN, Infinity and overflowing literals (1e400) parse to non-finite floats; check() locates them.
        value = json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise StrictJSONError([Problem((), "json_invalid", f"not valid JSON: {exc.msg} ({where})")]) from None
    except RecursionError:  # deeper than the parser's own limit (about 1000)
        raise StrictJSONError([_too_deep(_deep_loc(text))]) from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's int-parsing limit
        raise StrictJSONError([Problem((), "json_invalid", f"not valid JSON: {exc}")]) from None
    check(value)
    return value


def check(value: Any, *, max_values: int = MAX_VALUES) -> None:
    """Raise ``StrictJSONError`` unless ``value`` is plain, finite, UTF-8-encodable JSON data within the
    limits. Iterative, so a deep or self-referencing value cannot exhaust the stack."""
    problems: list[Problem] = []
    count = 0
    for loc, node, ancestors, size in _walk(value):
        count += size
        if count > max_values:
            problems.append(
                Problem(
                    (),
                    "too_large",
                    f"the document holds more than {max_values} values (counting every repetition of an "
                    "alias); a job spec needs a few hundred",
                )
            )
            break
        problem = _problem(loc, node, ancestors)
        if problem is not None:
            problems.append(problem)
            if problem.kind in ("too_deep", "recursive") or len(problems) >= MAX_PROBLEMS:
                break
    if problems:
        raise StrictJSONError(problems)


def _plain(node: Any) -> bool:
    """A scalar that needs no further look (the common case, kept cheap: no loc is built for it)."""
    kind = type(node)
    if kind is str:
        return node.isascii()
    if kind is int:
        return -MAX_INT - 1 <= node <= MAX_INT
    if kind is float:
        return math.isfinite(node)
    return node is None or kind is bool


def _walk(value: Any) -> Iterator[tuple[Loc, Any, tuple[int, ...], int]]:
    """(loc, node, ids of the containers above it, values it stands for) in document order, depth first, for
    the root, every container and every scalar that is not plainly fine; a container stands for itself and
    its plain scalars. Containers deeper than ``MAX_DEPTH`` or inside themselves are not entered."""
    stack: list[tuple[Loc, Any, tuple[int, ...]]] = [((), value, ())]
    while stack:
        loc, node, ancestors = stack.pop()
        if not isinstance(node, dict | list | tuple) or len(loc) >= MAX_DEPTH or id(node) in ancestors:
            yield loc, node, ancestors, 1
            continue
        inner = (*ancestors, id(node))
        if isinstance(node, dict):
            children = [((*loc, _key_text(k)), v, inner) for k, v in node.items() if not _plain(v)]
        else:
            children = [((*loc, i), v, inner) for i, v in enumerate(node) if not _plain(v)]
        yield loc, node, ancestors, 1 + len(node) - len(children)
        stack.extend(reversed(children))


def _problem(loc: Loc, node: Any, ancestors: tuple[int, ...]) -> Problem | None:
    if isinstance(node, dict | list | tuple):
        if id(node) in ancestors:
            return Problem(loc, "recursive", "refers to itself (a recursive alias); JSON cannot hold a cycle")
        if len(loc) >= MAX_DEPTH and node:
            return _too_deep(loc)
        if isinstance(node, dict):
            for key in node:
                if not isinstance(key, str):
                    return Problem(
                        (*loc, _key_text(key)), "json_type", f"keys must be text, got {type(key).__name__}"
                    )
                if not _encodable(key):
                    return _surrogate((*loc, _key_text(key)), key, "key")
            if isinstance(node, _DuplicateKeys):
                key = node.duplicates[0]
                message = f"key {key!r} appears more than once; each key may appear once"
                return Problem((*loc, key), "duplicate_key", message)
        return None
    if isinstance(node, str):
        return None if _encodable(node) else _surrogate(loc, node, "text")
    if isinstance(node, bool) or node is None:
        return None
    if isinstance(node, int):
        if -MAX_INT - 1 <= node <= MAX_INT:
            return None
        digits = len(str(abs(node))) if abs(node).bit_length() < 14_000 else "thousands of"
        return Problem(
            loc,
            "int_range",
            f"is an integer with {digits} digits; numbers must lie within +-{MAX_INT} (64 bits) and be "
            "representable as a float",
            f"{'-' if node < 0 else ''}{str(abs(node))[:20]}... ({digits} digits)",
        )
    if isinstance(node, float):
        if math.isfinite(node):
            return None
        name = "NaN" if node != node else ("Infinity" if node > 0 else "-Infinity")
        return Problem(loc, "not_finite", f"must be a finite number, got {name}", name)
    return Problem(
        loc,
        "json_type",
        f"is a {type(node).__name__} ({node!r:.40}), which JSON cannot hold; write it as text or a number",
        repr(node)[:60],
    )


_TOKENS = re.compile(r'[{}\[\],:]|"(?:[^"\\]|\\.)*"')


def _deep_loc(text: str) -> Loc:
    """Where ``text`` first nests deeper than ``MAX_DEPTH``, from its brackets, keys and commas alone: for
    a document too deep for the parser to build. () when it cannot be told (the text is malformed)."""
    frames: list[list[Any]] = []  # [is_object, current key or index]
    last_string: str | None = None
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "{[":
            if len(frames) >= MAX_DEPTH:
                return tuple(frame[1] for frame in frames)
            frames.append([token == "{", None if token == "{" else 0])
        elif token in "}]":
            if frames:
                frames.pop()
        elif token == ":" and frames and frames[-1][0]:
            frames[-1][1] = escape_surrogates(last_string) if last_string is not None else None
        elif token == "," and frames and not frames[-1][0]:
            frames[-1][1] += 1
        elif token.startswith('"'):
            try:
                last_string = json.loads(token)
            except ValueError:
                return ()
    return ()


def _too_deep(loc: Loc) -> Problem:
    return Problem(loc, "too_deep", f"objects and arrays nest deeper than {MAX_DEPTH} levels")


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape_surrogates(text: str) -> str:
    """``text`` with every lone surrogate written as a ``\\udXXX`` escape (printable, UTF-8-encodable)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _key_text(key: Any) -> str | int:
    return escape_surrogates(key) if isinstance(key, str) else repr(key)


def _surrogate(loc: Loc, text: str, what: str) -> Problem:
    shown = escape_surrogates(text)
    return Problem(
        loc,
        "unicode",
        f"{what} holds a lone UTF-16 surrogate ('{shown[:60]}') that UTF-8 cannot encode; send valid Unicode",
        shown[:200],
    )
