"""Job bodies the suites submit: a small valid job for the API, the reliability suite, the CLI and the
boundary checks. The workers suite's job on the real trainer is ``tests.workers.helpers.SMALL_JOB``."""

from __future__ import annotations

import copy
from typing import Any

# A small valid job: one searched candidate with distributions and one fixed baseline.
JOB: dict[str, Any] = {
    "apiVersion": "schedsearch/v1",
    "name": "digits: warm-up vs growth",
    "task": {"name": "digits-mlp"},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "space": [
        {
            "batch_size": {
                "family": "exp_growth",
                "b0": {"choice": [8, 16, 32]},
                "factor": {"uniform": [1.5, 4.0]},
                "interval": 3,
            },
            "lr": {
                "family": "warmup_const",
                "lr0": 0.1,
                "lr_max": {"loguniform": [0.2, 2.0]},
                "warmup_epochs": 6,
                "warmup_interval": 1,
            },
        }
    ],
    "baselines": [
        {
            "name": "constant",
            "batch_size": {"family": "constant", "b0": 32},
            "lr": {"family": "constant", "lr0": 0.1},
        }
    ],
    "budget": {"max_epochs": 12, "max_sfo": 100_000, "total_sfo": 2_000_000},
    "target": {"grad_norm": 0.05},
    "objective": "sfo_to_target",
    "search": {"algorithm": "tpe", "num_trials": 4, "max_concurrent": 2, "seed": 0, "early_stopping": True},
    "resources": {"cpus": 1, "gpus": 0},
}


def job_body(**changes: Any) -> dict[str, Any]:
    """A copy of JOB with top-level keys replaced."""
    body = copy.deepcopy(JOB)
    body.update(changes)
    return body
