"""Request bodies that the API docs offer under "Try it out" (OpenAPI ``examples`` of each JSON body).

Swagger UI shows the first one as the body to send; without them it made one up from the schema (``max_epochs:
0``, a batch family without its parameters), which the API rejected. Each example here is accepted as it is:
``tests/service/api/test_openapi_examples.py`` posts every example the schema shows.
"""

from __future__ import annotations

from typing import Any

_DIGITS_SEARCH: dict[str, Any] = {
    "apiVersion": "schedsearch/v1",
    "name": "digits: growing batch + warm-up",
    "task": {"name": "digits-mlp"},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "space": [
        {
            "batch_size": {"family": "exp_growth", "b0": {"choice": [8, 16]}, "factor": 2.0, "interval": 3},
            "lr": {
                "family": "warmup_const",
                "lr0": 0.1,
                "lr_max": {"loguniform": [0.2, 1.0]},
                "warmup_epochs": 6,
                "warmup_interval": 2,
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
    "budget": {"max_epochs": 12, "max_sfo": 100000, "total_sfo": 1000000},
    "target": {"grad_norm": 0.05},
    "objective": "sfo_to_target",
    "search": {"algorithm": "tpe", "num_trials": 3, "max_concurrent": 1, "seed": 0},
}

_PAPER_STRATEGIES: dict[str, Any] = {
    "name": "digits: the paper's four strategies",
    "task": {"name": "digits-mlp"},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "baselines": ["paper"],
    "budget": {"max_epochs": 20, "total_sfo": 2000000},
    "target": {"grad_norm": 0.02},
    "search": {"num_trials": 0},
}

_SYNTHETIC_GRID: dict[str, Any] = {
    "name": "synthetic: grid over the growth factor",
    "task": {"name": "synthetic-logreg", "options": {"n": 2048, "d": 16}},
    "optimizer": {"name": "shb", "momentum": 0.9},
    "space": [
        {
            "batch_size": {
                "family": "exp_growth",
                "b0": 16,
                "factor": {"choice": [1.5, 2.0, 3.0]},
                "interval": 2,
            },
            "lr": {"family": "cosine", "lr0": {"choice": [0.05, 0.1]}},
        }
    ],
    "budget": {"max_epochs": 10, "total_sfo": 1000000},
    "target": {"grad_norm": 0.03},
    "search": {"algorithm": "grid", "num_trials": 6, "max_concurrent": 2, "early_stopping": False},
}

#: ``POST /v1/jobs``: name -> {summary, value} (FastAPI ``openapi_examples``); the first is what Swagger UI
#: shows by default.
JOB_EXAMPLES: dict[str, Any] = {
    "search": {
        "summary": "Search a growing batch with a warm-up LR (3 trials and a baseline, digits)",
        "value": _DIGITS_SEARCH,
    },
    "paper": {"summary": "Run the paper's four strategies, no search (digits)", "value": _PAPER_STRATEGIES},
    "grid": {"summary": "Grid search over the growth factor and LR (synthetic)", "value": _SYNTHETIC_GRID},
}

#: ``POST /v1/schedules/check``.
CHECK_EXAMPLES: dict[str, Any] = {
    "increasing": {
        "summary": "Increasing batch and increasing LR (the paper's strategy iii)",
        "value": {
            "schedule": {
                "batch_size": {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 3},
                "lr": {"family": "exp_growth", "lr0": 0.1, "lr_max": 0.5, "interval": 3},
            },
            "optimizer": "nshb",
            "momentum": 0.9,
            "max_epochs": 30,
        },
    },
    "constant-batch": {
        "summary": "Constant batch with a cosine LR on 1,347 examples (strategy i)",
        "value": {
            "schedule": {
                "batch_size": {"family": "constant", "b0": 128},
                "lr": {"family": "cosine", "lr0": 0.1},
            },
            "optimizer": "shb",
            "momentum": 0.9,
            "max_epochs": 100,
            "n_train": 1347,
        },
    },
}
