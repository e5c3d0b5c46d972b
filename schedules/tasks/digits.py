"""``digits-mlp`` and ``digits-cnn``: scikit-learn's bundled 8x8 digits (1797 images, no download).

Fixed stratified split (``test_fraction`` of each class held out, ``split_seed``), features scaled to [0, 1]
(pixel values are 0..16). With the defaults: 1347 training and 450 test examples.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from schedules.tasks.base import Task, parse_options
from schedules.tasks.models import mlp, small_cnn


@dataclass(frozen=True)
class DigitsOptions:
    test_fraction: float = 0.25
    split_seed: int = 0
    hidden: int = 128  # MLP width / CNN channels of the first conv (16 is used when hidden is left at 128)
    depth: int = 1  # hidden layers of the MLP

    def __post_init__(self) -> None:
        if not 0.05 <= self.test_fraction <= 0.5:
            raise ValueError(
                f"task.options.test_fraction must be in [0.05, 0.5], got test_fraction={self.test_fraction}"
            )
        if self.hidden < 1:
            raise ValueError(f"task.options.hidden must be >= 1, got hidden={self.hidden}")
        if not 0 <= self.depth <= 8:
            raise ValueError(f"task.options.depth must be in [0, 8], got depth={self.depth}")


@functools.lru_cache(maxsize=8)
def _split(test_fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=split_seed
    )
    return x_tr, x_te, y_tr, y_te


def _load(name: str, options: Mapping[str, Any] | None, device: torch.device, image: bool) -> Task:
    opts = parse_options(DigitsOptions, options, name)
    x_tr, x_te, y_tr, y_te = _split(opts.test_fraction, opts.split_seed)
    shape = (-1, 1, 8, 8) if image else (-1, 64)
    channels = 16 if opts.hidden == 128 else opts.hidden

    def build() -> torch.nn.Module:
        model = small_cnn(channels, 10) if image else mlp(64, opts.hidden, opts.depth, 10)
        return model.to(device)

    return Task(
        name=name,
        x_train=torch.from_numpy(x_tr).reshape(shape).to(device),
        y_train=torch.from_numpy(y_tr).to(device),
        x_test=torch.from_numpy(x_te).reshape(shape).to(device),
        y_test=torch.from_numpy(y_te).to(device),
        num_classes=10,
        build_model=build,
        device=device,
        # MLP: the whole training set in one pass; CNN: compute-bound, and 512-image chunks stay in cache
        measure_chunk=512 if image else 2048,
        options=opts.__dict__,
    )


def digits_mlp(options: Mapping[str, Any] | None, device: torch.device) -> Task:
    return _load("digits-mlp", options, device, image=False)


def digits_cnn(options: Mapping[str, Any] | None, device: torch.device) -> Task:
    return _load("digits-cnn", options, device, image=True)
