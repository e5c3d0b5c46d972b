"""docs/reliability.md claims each guarantee with the test that shows it: every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"


def _references() -> list[tuple[str, str | None]]:
    """(test file, test function or None) for each `tests/...py[::name]` and each `::name` that follows
    one on the same line."""
    out: list[tuple[str, str | None]] = []
    for line in DOC.read_text().splitlines():
        current: str | None = None
        for match in re.finditer(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", line):
            path, name = match.groups()
            if path:
                current = path
            if current and (path or name):
                out.append((current, name))
    return out


def test_every_test_the_reliability_doc_names_exists() -> None:
    references = _references()
    assert len(references) >= 40
    missing = []
    for path, name in references:
        file = ROOT / path
        if not file.exists():
            missing.append(path)
        elif name and not re.search(rf"^(async )?def {name}\(", file.read_text(), re.MULTILINE):
            missing.append(f"{path}::{name}")
    assert not missing, missing
