"""Boundary: the torch-free modules of ``schedules`` import without torch (the service imports them)."""

from __future__ import annotations

import subprocess
import sys


def test_torch_free_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import schedules.spec, schedules.theory, schedules.paper, schedules.space, schedules.metrics\n"
        "import schedules.clock, schedules.export\n"
        "import schedules.tasks, schedules.tasks.definition, schedules.tasks.registry\n"
        "import schedules.tasks.builtin\n"
        "bad = sorted(m for m in ('torch', 'ray', 'sklearn') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
