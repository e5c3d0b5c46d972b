"""What a task is (a model factory plus in-memory tensors on the device) and option validation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn


@dataclass(frozen=True, eq=False)
class Task:
    """A (model, dataset) pair ready to train: every tensor already lives on ``device``.

    ``build_model`` returns a freshly initialised model on ``device``; the trainer calls it under a seeded RNG
    so the initial weights depend only on the trial seed. ``measure_chunk`` is how many examples one
    forward/backward
    of a measurement pass takes (the whole set for small tasks: one big matmul beats many small ones).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    build_model: Callable[[], nn.Module]
    device: torch.device
    measure_chunk: int
    options: Mapping[str, Any]

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])


OptionsT = TypeVar("OptionsT")


def parse_options(cls: type[OptionsT], options: Mapping[str, Any] | None, task: str) -> OptionsT:
    """Build the options dataclass ``cls``; unknown keys and wrong types name the field and what is valid.

    Value checks live in each options class's ``__post_init__`` (raising ``ValueError`` that names
    ``task.options.<field>``).
    """
    options = dict(options or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(
            f"task.options has unknown key(s) {', '.join(unknown)} for task {task!r}; "
            f"valid keys: {', '.join(fields) or '(none)'}"
        )
    for key, value in options.items():
        expected = fields[key].type
        _check_type(key, value, str(expected))
    return cls(**options)


def _check_type(key: str, value: Any, expected: str) -> None:
    # Field annotations are strings (postponed evaluation); only the few shapes the options classes use.
    nullable = "None" in expected
    if value is None:
        if not nullable:
            raise ValueError(f"task.options.{key} must not be null")
        return
    if expected.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        kind = "an integer"
    elif expected.startswith("float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        kind = "a number"
    elif expected.startswith("bool"):
        ok = isinstance(value, bool)
        kind = "true or false"
    elif expected.startswith("str"):
        ok = isinstance(value, str)
        kind = "a string"
    else:  # pragma: no cover - every options field uses one of the shapes above
        return
    if not ok:
        raise ValueError(f"task.options.{key} must be {kind}, got {key}={value!r}")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` picks CUDA when present, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
