"""The service imports neither torch nor ray, also when it lists and validates tasks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.jobs import JOB

CHECK = textwrap.dedent(
    """
    import json, sys
    import service.api.app, service.storage, service.storage.repository, service.jobspec, service.report
    from service.jobspec import parse_job, theory_warnings
    from schedules.tasks import catalogue
    job = parse_job(json.loads(sys.argv[1]))
    theory_warnings(job)
    required = {"tabular-mlp": {"file": "t.npz"}, "image-folder": {"folder": "f"},
                "text-transformer": {"file": "t"}}  # the generic tasks' required options
    for definition in catalogue().tasks.values():  # what GET /v1/tasks and the job checks read
        definition.to_json(), definition.training_size(required.get(definition.name, {}))
    heavy = sorted(m for m in ("torch", "ray") if m in sys.modules)
    print(json.dumps(heavy))
    """
)


def test_service_imports_no_torch_or_ray(tmp_path: Path) -> None:
    import json

    env = {**os.environ, "SCHEDSEARCH_DATA_ROOT": str(tmp_path)}  # the generic tasks size files under it
    out = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps(JOB)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
