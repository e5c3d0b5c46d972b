"""What users see of a failure: one sentence.

A job's or a trial's ``error`` and the job's events are shown to the job's owner through the API. They hold
one line saying what failed and why, never a traceback, a path on a server or a database statement with its
parameters (which can carry other users' data); the full text goes to the log of the process that saw the
failure, with the job id, for the operator.
"""

from __future__ import annotations

import re

#: Longest sentence stored for a user (a trial's error is shown in tables).
MAX_CHARS = 300

# An absolute POSIX path (a file of a worker, a temp dir of Ray); the surrounding quotes are kept.
_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s'\"():,;\[\]]+/?)+")


def _clean(line: str, limit: int = MAX_CHARS) -> str:
    line = _PATH.sub("<path>", line.strip())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def one_sentence(exc: BaseException) -> str:
    """``<ExceptionType>: <the first line of its message>``, paths replaced by ``<path>``; a database error
    as its kind only (its message holds the SQL statement and its parameters)."""
    name = type(exc).__name__
    if any(cls.__module__.startswith("sqlalchemy") for cls in type(exc).__mro__):
        return f"{name} from the database"
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return _clean(f"{name}: {lines[0]}") if lines else name


def scrub(text: str, *, limit: int = MAX_CHARS) -> str:
    """The last non-empty line of a traceback or a log tail (the exception line), paths replaced, at most
    ``limit`` characters."""
    lines = [line for line in text.splitlines() if line.strip()]
    return _clean(lines[-1], limit) if lines else ""
