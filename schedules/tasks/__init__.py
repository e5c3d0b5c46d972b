"""Registry of (model, dataset) tasks: ``get_task(name, options, device=...)``.

| name | data | model |
|---|---|---|
| ``digits-mlp`` | scikit-learn digits (embedded default, 1347 train / 450 test) | MLP 64-128-10 |
| ``digits-cnn`` | same, as 1x8x8 images | two-conv CNN with BatchNorm |
| ``synthetic-logreg`` | Gaussian features, noisy linear labels (n, d, label_noise, seed) | logistic regr. |
| ``cifar10-resnet18`` / ``cifar100-resnet18`` | CIFAR python pickles under a data root | paper's ResNet-18 |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from schedules.tasks.base import Task, resolve_device
from schedules.tasks.cifar import cifar10_resnet18, cifar100_resnet18
from schedules.tasks.digits import digits_cnn, digits_mlp
from schedules.tasks.synthetic import synthetic_logreg

_Loader = Callable[[Mapping[str, Any] | None, torch.device], Task]

TASKS: dict[str, _Loader] = {
    "digits-mlp": digits_mlp,
    "digits-cnn": digits_cnn,
    "synthetic-logreg": synthetic_logreg,
    "cifar10-resnet18": cifar10_resnet18,
    "cifar100-resnet18": cifar100_resnet18,
}
DEFAULT_TASK = "digits-mlp"


def get_task(
    name: str, options: Mapping[str, Any] | None = None, *, device: str | torch.device | None = None
) -> Task:
    """Load task ``name`` onto ``device`` (CUDA when present if None). Unknown names list the known ones."""
    loader = TASKS.get(name)
    if loader is None:
        raise ValueError(f"task.name must be one of {', '.join(sorted(TASKS))}, got name={name!r}")
    return loader(options, resolve_device(device))


__all__ = ["DEFAULT_TASK", "TASKS", "Task", "get_task", "resolve_device"]
