"""Definitions of the built-in tasks (torch-free), registered in ``pyproject.toml`` like any plugin.

| name | data | model | n_train |
|---|---|---|---|
| ``digits-mlp`` | scikit-learn's 8x8 digits (1797), stratified | MLP | 1797 - ceil(1797 test_fraction) |
| ``digits-cnn`` | the same, as 1x8x8 images | two-conv CNN, BatchNorm | as above |
| ``synthetic-logreg`` | Gaussian features, noisy linear labels | logistic regression | ``n`` |
| ``cifar10-resnet18`` | CIFAR-10 pickles under the data root | paper's ResNet-18 | 50,000 or ``subset`` |
| ``cifar100-resnet18`` | CIFAR-100 pickles under the data root | paper's ResNet-18 | 50,000 or ``subset`` |

Every built-in task also takes the streamed-path options (``stream``, ``num_workers``, ``grad_norm_subset``);
the CIFAR tasks take ``augment``, the paper's training augmentation (``schedules.tasks.augment``).
The loaders (``schedules.tasks.digits`` ...) import torch; this module must not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from schedules.families._base import SpecError
from schedules.tasks.definition import (
    GRAD_NORM_SUBSET_OPTION,
    NUM_WORKERS_OPTION,
    STREAM_OPTION,
    Option,
    TaskDefinition,
)

DIGITS_EXAMPLES = 1797  # scikit-learn's digits
CIFAR_TRAIN = 50_000  # CIFAR-10 and CIFAR-100 training sets
SYNTHETIC_MAX_VALUES = 500_000_000  # (n + n_test) * d floats: 2 GB of float32 on the device

STREAMED = (STREAM_OPTION, NUM_WORKERS_OPTION, GRAD_NORM_SUBSET_OPTION)

_DIGITS_SPLIT = (
    Option(
        "test_fraction",
        "float",
        0.25,
        "Share of each class held out for testing (fixed stratified split).",
        minimum=0.05,
        maximum=0.5,
    ),
    Option("split_seed", "int", 0, "Seed of the stratified split.", minimum=0),
)


def _digits_n_train(options: Mapping[str, Any]) -> int:
    # train_test_split holds out ceil(n * test_size) examples
    return DIGITS_EXAMPLES - math.ceil(DIGITS_EXAMPLES * float(options["test_fraction"]))


DIGITS_MLP = TaskDefinition(
    name="digits-mlp",
    description="scikit-learn's 8x8 digits (no download), MLP with `depth` hidden layers of width `hidden`",
    loader="schedules.tasks.digits:load_mlp",
    options=(
        *_DIGITS_SPLIT,
        Option("hidden", "int", 128, "Width of each hidden layer.", minimum=1, maximum=4096),
        Option("depth", "int", 1, "Hidden layers (0: a linear model).", minimum=0, maximum=8),
        *STREAMED,
    ),
    n_train=_digits_n_train,
)

DIGITS_CNN = TaskDefinition(
    name="digits-cnn",
    description="scikit-learn's 8x8 digits as 1x8x8 images, two-conv CNN with BatchNorm",
    loader="schedules.tasks.digits:load_cnn",
    options=(
        *_DIGITS_SPLIT,
        Option(
            "channels",
            "int",
            16,
            "Channels of the first conv (the second has twice as many).",
            minimum=1,
            maximum=512,
        ),
        *STREAMED,
    ),
    n_train=_digits_n_train,
)


def _synthetic_fits(options: Mapping[str, Any]) -> None:
    values = (int(options["n"]) + int(options["n_test"])) * int(options["d"])
    if values > SYNTHETIC_MAX_VALUES:
        raise SpecError(
            "task.options.d",
            options["d"],
            f"makes (n + n_test) * d = {values:,} floats, more than {SYNTHETIC_MAX_VALUES:,} "
            "(2 GB of float32) for task synthetic-logreg; lower n, n_test or d",
        )


SYNTHETIC_LOGREG = TaskDefinition(
    name="synthetic-logreg",
    description="Logistic regression on Gaussian features with noisy linear labels (generated, seeded)",
    loader="schedules.tasks.synthetic:load",
    options=(
        Option("n", "int", 4096, "Training examples.", minimum=1, maximum=10_000_000),
        Option("n_test", "int", 1024, "Test examples.", minimum=1, maximum=10_000_000),
        Option("d", "int", 32, "Features.", minimum=1, maximum=10_000_000),
        Option("label_noise", "float", 0.1, "Share of labels flipped.", minimum=0.0, maximum=0.5),
        Option("seed", "int", 0, "Seed of the generated data.", minimum=0),
        *STREAMED,
    ),
    n_train=lambda options: int(options["n"]),
    check=_synthetic_fits,
)

_CIFAR_OPTIONS = (
    Option(
        "folder",
        "path",
        None,
        "Dataset folder under the data root; null: the standard one (cifar-10-batches-py, cifar-100-python).",
        nullable=True,
    ),
    Option(
        "subset",
        "int",
        None,
        "Use only the first this many training images (null: all).",
        minimum=1,
        nullable=True,
    ),
    Option(
        "test_subset",
        "int",
        None,
        "Use only the first this many test images (null: all).",
        minimum=1,
        nullable=True,
    ),
    Option("width", "int", 64, "Stem width of the ResNet-18 (64 in the paper).", minimum=1, maximum=512),
    Option(
        "augment",
        "bool",
        False,
        "The paper's training augmentation on the device per batch: random crop with 4 pixels of padding, "
        "horizontal flip, rotation up to 15 degrees (the measurement pass sees it in faithful mode only).",
    ),
    Option(
        "measure_chunk",
        "int",
        1000,
        "Examples per forward/backward of a measurement pass.",
        minimum=1,
        maximum=1_000_000,
    ),
    *STREAMED,
)


def _cifar_n_train(options: Mapping[str, Any]) -> int:
    subset = options["subset"]
    return CIFAR_TRAIN if subset is None else min(int(subset), CIFAR_TRAIN)


CIFAR10_RESNET18 = TaskDefinition(
    name="cifar10-resnet18",
    description="CIFAR-10 (python pickles under the data root), the paper's ResNet-18 and optionally its "
    "augmentation",
    loader="schedules.tasks.cifar:load_cifar10",
    options=_CIFAR_OPTIONS,
    n_train=_cifar_n_train,
    needs_data_root=True,
)

CIFAR100_RESNET18 = TaskDefinition(
    name="cifar100-resnet18",
    description="CIFAR-100 (python pickles under the data root), the paper's ResNet-18 and optionally its "
    "augmentation",
    loader="schedules.tasks.cifar:load_cifar100",
    options=_CIFAR_OPTIONS,
    n_train=_cifar_n_train,
    needs_data_root=True,
)
