"""The service imports neither torch nor ray, also when it lists and validates tasks."""

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
    from schedules.tasks import catalogue
    spec = parse_job_spec(json.loads(sys.argv[1]))
    theory_warnings(spec)
    for definition in catalogue().tasks.values():  # what GET /v1/tasks and the job checks read
        definition.to_json(), definition.training_size({})
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
