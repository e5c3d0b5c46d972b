"""Loaders of ``digits-mlp`` and ``digits-cnn`` (definitions: ``schedules.tasks.builtin``).

scikit-learn's bundled 8x8 digits (1797 images, no download). Fixed stratified split (``test_fraction`` of
each class held out, ``split_seed``), features scaled to [0, 1] (pixel values are 0..16). With the defaults:
1347 training and 450 test examples.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from schedules.tasks.models import mlp, small_cnn
from schedules.tasks.runtime import Task, examples


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


def _load(name: str, options: Mapping[str, Any], device: torch.device, image: bool) -> Task:
    x_tr, x_te, y_tr, y_te = _split(options["test_fraction"], options["split_seed"])
    shape = (-1, 1, 8, 8) if image else (-1, 64)

    def build() -> torch.nn.Module:
        if image:
            return small_cnn(options["channels"], 10).to(device)
        return mlp(64, options["hidden"], options["depth"], 10).to(device)

    return Task(
        name=name,
        build_model=build,
        train=examples(torch.from_numpy(x_tr).reshape(shape), torch.from_numpy(y_tr), device, options),
        test=examples(torch.from_numpy(x_te).reshape(shape), torch.from_numpy(y_te), device, options),
        device=device,
        # MLP: the whole training set in one pass; CNN: compute-bound, and 512-image chunks stay in cache
        measure_chunk=512 if image else 2048,
        grad_norm_subset=options["grad_norm_subset"],
        num_classes=10,
        options=options,
    )


def load_mlp(options: Mapping[str, Any], device: torch.device) -> Task:
    return _load("digits-mlp", options, device, image=False)


def load_cnn(options: Mapping[str, Any], device: torch.device) -> Task:
    return _load("digits-cnn", options, device, image=True)
