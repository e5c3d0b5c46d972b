"""Query and path parameters shared by several routes, each with its bounds in one place.

Every integer parameter has a maximum: a value past 64 bits reaches the database as an overflow (a 500 on
SQLite and PostgreSQL alike) instead of a 422 naming the parameter. A test walks the OpenAPI schema for it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path, Query

#: Largest paging offset and database id accepted: 32-bit keys; a larger offset would return nothing anyway.
MAX_INT32 = 2**31 - 1

Offset = Annotated[
    int, Query(ge=0, le=MAX_INT32, description="Items to skip before the page (at most 2^31 - 1).")
]
# Trial ids are 32-bit database keys; a larger number is a 422, not a database overflow.
TrialId = Annotated[int, Path(ge=1, le=MAX_INT32)]
# Visible ASCII only: the key is stored and echoed in messages, so no control or invisible characters.
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Retries with the same key and body return the same job (visible ASCII, at most 200).",
    ),
]
