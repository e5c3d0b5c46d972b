"""Loaders of ``cifar10-resnet18`` and ``cifar100-resnet18``: the paper's setting (paper-notes §3.1).

Reads the standard CIFAR python-pickle folder (``cifar-10-batches-py`` or ``cifar-100-python``) under the data
root (``schedules.tasks.definition.resolve_data_path``: the ``data_root`` option, defaulting to
``SCHEDSEARCH_DATA_ROOT``; ``folder`` is relative to the root and may not leave it). The pickles are read with
an unpickler that only admits the numpy array types CIFAR files contain.

Images are normalised with the dataset's mean and std: on the device as float32 (the default), or per batch
on the host when ``stream`` is set (``schedules.tasks.images``). ``augment: true`` applies the paper's
training augmentation (random crop with 4-pixel padding, horizontal flip, rotation up to 15 degrees) on the
device to every training batch (``schedules.tasks.augment``); in ``faithful`` gradient-norm mode the
measurement pass sees augmented images too, as the official code's does, in ``clean`` mode never
(paper-notes §3.1, §6.2). ``subset`` keeps the first n training images.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from schedules.tasks.augment import black, crop_flip_rotate
from schedules.tasks.definition import resolve_data_path
from schedules.tasks.images import image_examples
from schedules.tasks.models import resnet18
from schedules.tasks.runtime import Task

_LAYOUT = {
    10: ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    100: ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}
_STATS = {
    10: ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    100: ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"CIFAR file refers to {module}.{name}, which a CIFAR file never does"
            )
        return super().find_class(module, name)


def _read(path: Path) -> dict[bytes, Any]:
    with path.open("rb") as fh:
        data = _SafeUnpickler(fh, encoding="bytes").load()
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is not a CIFAR batch (expected a dict, got {type(data).__name__})")
    return data


def resolve_folder(classes: int, options: Mapping[str, Any]) -> Path:
    folder = options.get("folder") or _LAYOUT[classes][0]
    path = resolve_data_path(options, folder)
    if not path.is_dir():
        raise ValueError(f"task.options.folder: no CIFAR folder {folder!r} under the data root")
    return path


@functools.lru_cache(maxsize=4)
def _load_arrays(path: Path, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    _, train_files, test_files, label_key = _LAYOUT[classes]

    def load(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for name in files:
            if not (path / name).is_file():
                raise ValueError(f"CIFAR folder {path.name!r} lacks the file {name!r}")
            batch = _read(path / name)
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[label_key], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    x_tr, y_tr = load(train_files)
    x_te, y_te = load(test_files)
    return x_tr, y_tr, x_te, y_te


def _cifar(classes: int, options: Mapping[str, Any], device: torch.device) -> Task:
    x_tr, y_tr, x_te, y_te = _load_arrays(resolve_folder(classes, options), classes)
    if options["subset"] is not None:
        x_tr, y_tr = x_tr[: options["subset"]], y_tr[: options["subset"]]
    if options["test_subset"] is not None:
        x_te, y_te = x_te[: options["test_subset"]], y_te[: options["test_subset"]]

    stats = _STATS[classes]

    def build() -> torch.nn.Module:
        return resnet18(classes, width=options["width"]).to(device)

    return Task(
        name=f"cifar{classes}-resnet18",
        build_model=build,
        train=image_examples(x_tr, y_tr, stats, device, options),
        test=image_examples(x_te, y_te, stats, device, options),
        device=device,
        measure_chunk=options["measure_chunk"],
        augment=crop_flip_rotate(black(*stats)) if options["augment"] else None,
        grad_norm_subset=options["grad_norm_subset"],
        num_classes=classes,
        options=options,
    )


def load_cifar10(options: Mapping[str, Any], device: torch.device) -> Task:
    return _cifar(10, options, device)


def load_cifar100(options: Mapping[str, Any], device: torch.device) -> Task:
    return _cifar(100, options, device)
