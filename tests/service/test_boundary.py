"""The service imports neither torch nor ray; the task names mirror the torch-side registry."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.service.api.conftest import JOB

CHECK = textwrap.dedent(
    """
    import json, sys
    import service.api.app, service.storage, service.storage.repository, service.jobspec, service.report
    from service.jobspec import parse_job_spec, theory_warnings
    spec = parse_job_spec(json.loads(sys.argv[1]))
    theory_warnings(spec)
    heavy = sorted(m for m in ("torch", "ray") if m in sys.modules)
    print(json.dumps(heavy))
    """
)


def test_service_imports_no_torch_or_ray() -> None:
    import json

    out = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps(JOB)], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_task_names_mirror_the_task_registry() -> None:
    from schedules.tasks import catalogue
    from service.jobspec import TASK_NAMES

    assert sorted(TASK_NAMES) == sorted(catalogue().names)
