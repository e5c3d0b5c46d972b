"""uint8 images as a task's examples, shared by the CIFAR and image-folder loaders.

Images arrive as a uint8 array (N, C, H, W) and labels (N,). They are normalised with per-channel ``mean``
and ``std`` (of pixel values scaled to [0, 1]) either once on the device as float32 (the default, fast path)
or per batch on the host when ``stream`` is set, where the uint8 images stay in host memory (a quarter of
the float size) and are read through a DataLoader (``schedules.tasks.runtime.DatasetData``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from schedules.tasks.runtime import DatasetData, Examples, TensorData

Stats = tuple[Sequence[float], Sequence[float]]


def normalise(x: torch.Tensor, stats: Stats) -> torch.Tensor:
    """uint8 images (..., C, H, W) to float32 ``(x / 255 - mean) / std`` per channel."""
    channels = len(stats[0])
    mean, std = (torch.tensor(v, device=x.device).view(channels, 1, 1) for v in stats)
    return (x.float() / 255.0 - mean) / std


def channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, C, H, W) scaled to [0, 1] (a std of 0 becomes 1), in
    float64, one channel at a time so no float copy of the whole set is made."""
    mean, std = [], []
    for c in range(x.shape[1]):
        plane = x[:, c].astype(np.float64) / 255.0
        mean.append(float(plane.mean()))
        s = float(plane.std())
        std.append(s if s > 0 else 1.0)
    return mean, std


class UInt8Images(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """uint8 images on the host, normalised per batch when read (the streamed path)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, stats: Stats) -> None:
        self.x, self.y, self.stats = torch.from_numpy(x), torch.from_numpy(y), stats

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return normalise(self.x[i], self.stats), self.y[i]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        # One gather and one normalisation per batch; the collate function then passes the pair through.
        idx = torch.as_tensor(indices)
        return normalise(self.x[idx], self.stats), self.y[idx]


def _collate_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch


def image_examples(
    x: np.ndarray, y: np.ndarray, stats: Stats, device: torch.device, options: Mapping[str, Any]
) -> Examples:
    """Normalised images on the device, or streamed from the host when ``options["stream"]``."""
    if options["stream"]:
        return DatasetData(
            UInt8Images(x, y, stats), num_workers=options["num_workers"], collate=_collate_batch
        )
    return TensorData(normalise(torch.from_numpy(x).to(device), stats), torch.from_numpy(y).to(device))
