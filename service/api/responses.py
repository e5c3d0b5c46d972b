"""The one JSON response class of the API: every answer, whatever a stored row holds, is valid UTF-8 JSON.

Starlette's ``JSONResponse`` raises (and the client gets a 500) on two kinds of value a row may hold from
before input was checked, or from a writer with a bug: a lone surrogate, which UTF-8 cannot encode, and a
non-finite float, which JSON cannot write. :class:`SafeJSONResponse` renders those as U+FFFD and null
instead; the fast path (plain data) costs nothing extra.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi.responses import JSONResponse


def _dumps(content: Any) -> bytes:
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def clean_text(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (pairs become the character they encode)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as null and lone surrogates (in keys and text) as U+FFFD."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value if value.isascii() else clean_text(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class SafeJSONResponse(JSONResponse):
    """``JSONResponse`` that never fails on stored text or numbers (see the module docstring)."""

    def render(self, content: Any) -> bytes:
        try:
            return _dumps(content)
        except (ValueError, UnicodeEncodeError):  # NaN/Infinity, or a lone surrogate
            return _dumps(json_safe(content))
