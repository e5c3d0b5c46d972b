"""``cifar10-resnet18`` and ``cifar100-resnet18``: the paper's setting (paper-notes §3.1).

Reads the standard CIFAR python-pickle folder (``cifar-10-batches-py`` or ``cifar-100-python``) under a data
root: the ``data_root`` option, defaulting to the ``SCHEDSEARCH_DATA_ROOT`` environment variable.
``folder`` is relative to the root and may not leave it; when the environment variable is set, an explicit
``data_root`` must
lie inside it (the service passes user options through, so a job must not choose arbitrary server paths). The
pickles are read with an unpickler that only admits the numpy array types CIFAR files contain.

Images are normalised with the dataset's mean and std and kept on the device as float32. No augmentation: the
trainer measures the clean objective (paper-notes §6.2). ``subset`` keeps the first n training images.
"""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from schedules.tasks.base import Task, parse_options
from schedules.tasks.models import resnet18

DATA_ROOT_ENV = "SCHEDSEARCH_DATA_ROOT"

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


@dataclass(frozen=True)
class CifarOptions:
    data_root: str | None = None
    folder: str | None = None  # default: the standard folder name for the dataset
    subset: int | None = None
    test_subset: int | None = None
    width: int = 64
    measure_chunk: int = 1000

    def __post_init__(self) -> None:
        for key in ("subset", "test_subset"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"task.options.{key} must be >= 1 or null, got {key}={value}")
        if not 1 <= self.width <= 512:
            raise ValueError(f"task.options.width must be in [1, 512], got width={self.width}")
        if self.measure_chunk < 1:
            raise ValueError(
                f"task.options.measure_chunk must be >= 1, got measure_chunk={self.measure_chunk}"
            )


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


def resolve_folder(classes: int, opts: CifarOptions) -> Path:
    env_root = os.environ.get(DATA_ROOT_ENV)
    root_text = opts.data_root or env_root
    if not root_text:
        raise ValueError(
            f"task.options.data_root is not set and {DATA_ROOT_ENV} is empty: "
            "give the folder that holds the CIFAR python-pickle directory"
        )
    root = Path(root_text).resolve()
    if opts.data_root and env_root and not root.is_relative_to(Path(env_root).resolve()):
        raise ValueError(
            f"task.options.data_root must lie inside {DATA_ROOT_ENV}, got data_root={opts.data_root!r}"
        )
    folder = opts.folder or _LAYOUT[classes][0]
    path = (root / folder).resolve()
    if Path(folder).is_absolute() or not path.is_relative_to(root):
        raise ValueError(f"task.options.folder must stay inside the data root, got folder={folder!r}")
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


def _to_device(x: np.ndarray, classes: int, device: torch.device) -> torch.Tensor:
    mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in _STATS[classes])
    return (torch.from_numpy(x).to(device).float() / 255.0 - mean) / std


def _cifar(classes: int, options: Mapping[str, Any] | None, device: torch.device) -> Task:
    name = f"cifar{classes}-resnet18"
    opts = parse_options(CifarOptions, options, name)
    x_tr, y_tr, x_te, y_te = _load_arrays(resolve_folder(classes, opts), classes)
    if opts.subset is not None:
        x_tr, y_tr = x_tr[: opts.subset], y_tr[: opts.subset]
    if opts.test_subset is not None:
        x_te, y_te = x_te[: opts.test_subset], y_te[: opts.test_subset]

    def build() -> torch.nn.Module:
        return resnet18(classes, width=opts.width).to(device)

    return Task(
        name=name,
        x_train=_to_device(x_tr, classes, device),
        y_train=torch.from_numpy(y_tr).to(device),
        x_test=_to_device(x_te, classes, device),
        y_test=torch.from_numpy(y_te).to(device),
        num_classes=classes,
        build_model=build,
        device=device,
        measure_chunk=opts.measure_chunk,
        options=opts.__dict__,
    )


def cifar10_resnet18(options: Mapping[str, Any] | None, device: torch.device) -> Task:
    return _cifar(10, options, device)


def cifar100_resnet18(options: Mapping[str, Any] | None, device: torch.device) -> Task:
    return _cifar(100, options, device)
