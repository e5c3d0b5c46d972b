"""The loader (torch): the spirals dataset, the model and the ``Task`` schedsearch trains.

Point i of class c (0 or 1) lies at angle t = turns * 2 pi * u_i (u_i uniform in [0, 1), seeded) on the spiral
r = t, rotated by pi for class 1, plus Gaussian noise; coordinates are scaled to about [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from schedules.tasks.runtime import DatasetData, Task, TensorData, cross_entropy, top1_accuracy


class Spirals(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``n`` points of two spirals: ``dataset[i] -> (x (2,) float32, y () int64)``. A map-style dataset as a
    plugin would write one for data on disk; here the points are generated once, seeded."""

    def __init__(self, n: int, *, turns: float, noise: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        labels = np.arange(n) % 2
        t = turns * 2 * math.pi * rng.random(n)
        angle = t + math.pi * labels
        points = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) / (turns * 2 * math.pi)
        points += noise * rng.standard_normal(points.shape)
        self.x = torch.from_numpy(points.astype(np.float32))
        self.y = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


class SpiralNet(nn.Module):
    """Fixed random Fourier features of the 2-d input (sin and cos of 32 projections), then residual blocks
    of ``width`` units, then a 2-way linear head. The projection is a buffer: seeded by the task, not
    trained."""

    def __init__(self, width: int, blocks: int, projection: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("projection", projection)
        self.stem = nn.Linear(2 * projection.shape[1], width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU()) for _ in range(blocks)
        )
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x @ self.projection
        h = self.stem(torch.cat([torch.sin(z), torch.cos(z)], dim=1))
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


def load(options: Mapping[str, Any], device: torch.device) -> Task:
    """schedsearch calls this with validated options (defaults filled in) and the trial's device."""
    train = Spirals(options["n"], turns=options["turns"], noise=options["noise"], seed=options["seed"])
    test = Spirals(
        options["n_test"], turns=options["turns"], noise=options["noise"], seed=options["seed"] + 1
    )
    projection = torch.randn(2, 32, generator=torch.Generator().manual_seed(options["seed"])) * 4.0

    def build_model() -> nn.Module:  # called by the trainer under the trial seed
        return SpiralNet(options["width"], options["blocks"], projection).to(device)

    def data(dataset: Spirals) -> TensorData | DatasetData:
        if options["stream"]:  # read through a DataLoader that follows the batch plan
            return DatasetData(dataset, num_workers=options["num_workers"])
        return TensorData(dataset.x.to(device), dataset.y.to(device))  # on the device: the fast path

    return Task(
        name="spirals-mlp",
        build_model=build_model,
        train=data(train),
        test=data(test),
        device=device,
        loss=cross_entropy(),
        accuracy=top1_accuracy,
        measure_chunk=4096,
        grad_norm_subset=options["grad_norm_subset"],
        num_classes=2,
        options=options,
    )
