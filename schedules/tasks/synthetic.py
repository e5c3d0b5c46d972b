"""``synthetic-logreg``: logistic regression on Gaussian features with controlled label noise.

x ~ N(0, I_d); y = 1[x . w* > 0] with w* ~ N(0, I_d) / sqrt(d), then each label flipped with probability
``label_noise``. Label noise sets the gradient noise (and keeps the optimum finite: without it the data are
separable and the weights grow forever). Drawn with numpy's seeded generator so the data do not depend on
torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from schedules.tasks.base import Task, parse_options
from schedules.tasks.models import mlp


@dataclass(frozen=True)
class SyntheticOptions:
    n: int = 4096
    n_test: int = 1024
    d: int = 32
    label_noise: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("n", "n_test", "d"):
            value = getattr(self, key)
            if not 1 <= value <= 10_000_000:
                raise ValueError(f"task.options.{key} must be in [1, 10000000], got {key}={value}")
        if not 0.0 <= self.label_noise <= 0.5:
            raise ValueError(
                f"task.options.label_noise must be in [0, 0.5], got label_noise={self.label_noise}"
            )


def synthetic_logreg(options: Mapping[str, Any] | None, device: torch.device) -> Task:
    opts = parse_options(SyntheticOptions, options, "synthetic-logreg")
    rng = np.random.default_rng(opts.seed)
    w_star = rng.standard_normal(opts.d) / np.sqrt(opts.d)
    x = rng.standard_normal((opts.n + opts.n_test, opts.d)).astype(np.float32)
    y = (x @ w_star > 0).astype(np.int64)
    flip = rng.random(y.shape[0]) < opts.label_noise
    y = np.where(flip, 1 - y, y)

    def build() -> torch.nn.Module:
        return mlp(opts.d, 0, 0, 2).to(device)  # depth 0: a single linear layer, i.e. logistic regression

    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    return Task(
        name="synthetic-logreg",
        x_train=xt[: opts.n],
        y_train=yt[: opts.n],
        x_test=xt[opts.n :],
        y_test=yt[opts.n :],
        num_classes=2,
        build_model=build,
        device=device,
        measure_chunk=65536,
        options=opts.__dict__,
    )
