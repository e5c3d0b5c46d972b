"""Loader of ``synthetic-logreg`` (definition: ``schedules.tasks.builtin``).

x ~ N(0, I_d); y = 1[x . w* > 0] with w* ~ N(0, I_d) / sqrt(d), then each label flipped with probability
``label_noise``. Label noise sets the gradient noise (and keeps the optimum finite: without it the data are
separable and the weights grow forever). Drawn with numpy's seeded generator so the data do not depend on
torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from schedules.tasks.models import mlp
from schedules.tasks.runtime import Task, examples


def load(options: Mapping[str, Any], device: torch.device) -> Task:
    n, n_test, d = options["n"], options["n_test"], options["d"]
    rng = np.random.default_rng(options["seed"])
    w_star = rng.standard_normal(d) / np.sqrt(d)
    x = rng.standard_normal((n + n_test, d)).astype(np.float32)
    y = (x @ w_star > 0).astype(np.int64)
    flip = rng.random(y.shape[0]) < options["label_noise"]
    y = np.where(flip, 1 - y, y)

    def build() -> torch.nn.Module:
        return mlp(d, 0, 0, 2).to(device)  # depth 0: a single linear layer, i.e. logistic regression

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    return Task(
        name="synthetic-logreg",
        build_model=build,
        train=examples(xt[:n], yt[:n], device, options),
        test=examples(xt[n:], yt[n:], device, options),
        device=device,
        measure_chunk=65536,
        grad_norm_subset=options["grad_norm_subset"],
        num_classes=2,
        options=options,
    )
