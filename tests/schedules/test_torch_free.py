"""Boundary: every module that docs/design.md declares torch-free imports without torch (the service imports
them), read from the doc's list so the doc and the check cannot drift apart."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from tests.support.imports import torch_free_from_doc

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"


def test_the_declared_torch_free_modules_exist() -> None:
    modules = torch_free_from_doc(DESIGN.read_text())
    assert "schedules.spec" in modules and "schedules.tasks.definition" in modules
    assert [m for m in modules if importlib.util.find_spec(m) is None] == []


def test_torch_free_modules_do_not_import_torch() -> None:
    modules = torch_free_from_doc(DESIGN.read_text())
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in ('torch', 'ray', 'sklearn') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
