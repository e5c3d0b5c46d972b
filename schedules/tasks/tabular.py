"""Loader of ``tabular-mlp`` (definition: ``schedules.tasks.generic``): the user's table, an MLP.

Files, under the data root (``resolve_data_path``; ``file`` and ``test_file`` may not leave it):

- ``.npz``: arrays ``X`` (N, ...) of numbers, flattened to (N, d), and ``y`` (N,) or (N, k); read with
  ``allow_pickle=False`` (an npz of Python objects is refused, never unpickled);
- ``.csv`` (comma) / ``.tsv`` (tab): a header row, then one example per row; the column named ``label`` holds
  the target and every other column is a numeric feature (parsed by ``numpy.loadtxt``, which names the row
  of a value it cannot read).

``problem: classification``: targets are integers or strings (a float with a fraction is refused); the
distinct values of the training and test targets together, sorted (numerically when all are numbers), become
the class indices 0..K-1; loss cross-entropy, test accuracy top-1. ``problem: regression``: numeric targets
(N, k); loss the mean squared error per example over the k outputs, no accuracy (records carry
``test_acc = None``).

Split: ``test_file`` when given, else a seeded random split of ``file`` holding out ``ceil(N test_fraction)``
examples (``schedules.tasks.datafiles.split_indices``). Standardisation (``standardize``, and for regression
``standardize_target``) uses the mean and std of the training split only, so nothing of the test set leaks
into training; a constant column keeps std 1. Model: ``mlp(d, hidden, depth, outputs)``, ``depth`` 0 being a
linear model (logistic or linear regression).
"""

from __future__ import annotations

import csv
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from schedules.families._base import SpecError
from schedules.tasks.datafiles import split_indices
from schedules.tasks.definition import resolve_data_path
from schedules.tasks.models import mlp
from schedules.tasks.runtime import Task, cross_entropy, examples, mse, top1_accuracy

NAME = "tabular-mlp"


def _bad(option: str, value: Any, problem: str) -> SpecError:
    return SpecError(f"task.options.{option}", value, f"{problem} (task {NAME})")


def _read_npz(path: Path, option: str, value: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError:  # not an npy/npz file: numpy would unpickle it, which allow_pickle=False refuses
        raise _bad(option, value, "is not an .npz archive of arrays") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _bad(option, value, f"is not a readable .npz archive ({type(exc).__name__})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _bad(option, value, "is a single .npy array, not an .npz archive holding X and y")
    with archive:
        missing = [k for k in ("X", "y") if k not in archive.files]
        if missing:
            raise _bad(
                option, value, f"must hold arrays X and y (found: {', '.join(archive.files) or 'none'})"
            )
        try:
            x, y = archive["X"], archive["y"]
        except ValueError:  # object arrays need pickle
            raise _bad(option, value, "must hold numeric arrays X and y, not Python objects") from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise _bad(option, value, f"is not a readable .npz archive ({type(exc).__name__})") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if x.ndim == 0 or y.ndim == 0 or y.ndim > 2 or x.shape[0] != y.shape[0]:
        raise _bad(
            option, value, f"must hold X (N, ...) and y (N,) or (N, k), got X {x.shape} and y {y.shape}"
        )
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_):
        raise _bad(option, value, f"must hold a real-valued X, got dtype {x.dtype}")
    return x.reshape(x.shape[0], -1), y


def _read_csv(path: Path, option: str, value: str, label: str) -> tuple[np.ndarray, np.ndarray]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's BOM is no column name
            header = next(csv.reader(fh, delimiter=delimiter), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(option, value, f"is not a readable UTF-8 table ({type(exc).__name__})") from None
    if not header:
        raise _bad(option, value, "must start with a header row naming the columns")
    header = [h.strip() for h in header]
    if label not in header:
        raise _bad(
            option, value, f"has no column {label!r} (task.options.label; columns: {', '.join(header)})"
        )
    target = header.index(label)
    features = [i for i in range(len(header)) if i != target]
    if not features:
        raise _bad(option, value, "must have at least one feature column besides the label")

    def load(columns: list[int] | int, dtype: Any) -> np.ndarray:
        return np.loadtxt(
            path,
            delimiter=delimiter,
            skiprows=1,
            usecols=columns,
            dtype=dtype,
            ndmin=2 if isinstance(columns, list) else 1,
            quotechar='"',
            comments=None,
            encoding="utf-8-sig",
        )

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": the split says so
            x = load(features, np.float64)
            y = load(target, str)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(
            option,
            value,
            f"must hold a number in every feature column of every row ({exc}; rows counted from 0 below "
            "the header)",
        ) from None
    return x, y


def _read(options: Mapping[str, Any], option: str) -> tuple[np.ndarray, np.ndarray]:
    value = options[option]
    path = resolve_data_path(options, value, what=option)
    if not path.is_file():
        raise _bad(option, value, "must name a file under the data root; there is none")
    if path.suffix.lower() == ".npz":
        return _read_npz(path, option, value)
    return _read_csv(path, option, value, options["label"])


def _numeric(y: np.ndarray) -> np.ndarray | None:
    """``y`` as float64 when every value is a number, else None."""
    if np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_:
        return y.astype(np.float64)
    try:
        return np.char.strip(y.astype(str)).astype(np.float64)
    except ValueError:
        return None


def class_indices(y_train: np.ndarray, y_test: np.ndarray, option: str, value: Any) -> tuple[Any, ...]:
    """(train indices, test indices, classes): the sorted distinct targets of both splits become 0..K-1."""
    if y_train.ndim != 1 or y_test.ndim != 1:
        raise _bad(option, value, "must hold one target per example for classification (y of shape (N,))")
    both = np.concatenate([y_train, y_test])
    numbers = _numeric(both)
    if numbers is not None:
        if not np.all(np.isfinite(numbers)) or np.any(numbers != np.round(numbers)):
            raise _bad(
                option,
                value,
                "must hold integer or string class labels for classification (use problem: regression for "
                "real-valued targets)",
            )
        both = numbers.astype(np.int64)
    else:
        both = np.char.strip(both.astype(str))
        if np.any(both == ""):
            raise _bad(option, value, "must have a label in every row (an empty label is not a class)")
    classes, inverse = np.unique(both, return_inverse=True)
    if len(classes) < 2:
        raise _bad(option, value, "must hold at least two classes for classification")
    n = y_train.shape[0]
    return inverse[:n].astype(np.int64), inverse[n:].astype(np.int64), classes


def _targets(y: np.ndarray, option: str, value: Any) -> np.ndarray:
    numbers = _numeric(y)
    if numbers is None or not np.all(np.isfinite(numbers)):
        raise _bad(option, value, "must hold finite numeric targets for regression")
    return numbers.reshape(numbers.shape[0], -1)


def _standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std == 0] = 1.0
    return [(a - mean) / std for a in (train, *others)]


def load(options: Mapping[str, Any], device: torch.device) -> Task:
    x, y = _read(options, "file")
    if options["test_file"] is not None:
        x_te, y_te = _read(options, "test_file")
        if x_te.shape[1] != x.shape[1]:
            raise _bad(
                "test_file",
                options["test_file"],
                f"must have as many features as task.options.file ({x.shape[1]}), got {x_te.shape[1]}",
            )
        x_tr, y_tr = x, y
    else:
        if x.shape[0] < 2:
            raise _bad("file", options["file"], f"must hold at least 2 examples to split, got {x.shape[0]}")
        train_idx, test_idx = split_indices(x.shape[0], options["test_fraction"], options["split_seed"])
        if not train_idx:
            raise _bad("test_fraction", options["test_fraction"], f"leaves no training example of {len(x)}")
        x_tr, y_tr, x_te, y_te = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    x_tr, x_te = x_tr.astype(np.float64), x_te.astype(np.float64)
    if not (np.all(np.isfinite(x_tr)) and np.all(np.isfinite(x_te))):
        raise _bad("file", options["file"], "must hold finite features (no NaN or infinity)")
    if options["standardize"]:
        x_tr, x_te = _standardize(x_tr, x_te)

    classification = options["problem"] == "classification"
    if classification:
        t_tr, t_te, classes = class_indices(y_tr, y_te, "file", options["file"])
        outputs = len(classes)
    else:
        t_tr, t_te = _targets(y_tr, "file", options["file"]), _targets(y_te, "file", options["file"])
        if options["standardize_target"]:
            t_tr, t_te = _standardize(t_tr, t_te)
        t_tr, t_te = t_tr.astype(np.float32), t_te.astype(np.float32)
        outputs = int(t_tr.shape[1])
    d = int(x_tr.shape[1])

    def build() -> torch.nn.Module:
        return mlp(d, options["hidden"], options["depth"], outputs).to(device)

    def as_tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a))

    return Task(
        name=NAME,
        build_model=build,
        train=examples(as_tensor(x_tr.astype(np.float32)), as_tensor(t_tr), device, options),
        test=examples(as_tensor(x_te.astype(np.float32)), as_tensor(t_te), device, options),
        device=device,
        loss=cross_entropy() if classification else mse(),
        accuracy=top1_accuracy if classification else None,
        measure_chunk=4096,
        grad_norm_subset=options["grad_norm_subset"],
        num_classes=outputs if classification else None,
        options=options,
    )
