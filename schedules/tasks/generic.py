"""Definitions of the generic data tasks (torch-free): train on the user's files with no code.

- ``tabular-mlp``: a ``.npz`` (arrays ``X``, ``y``) or a ``.csv``/``.tsv`` with a ``label`` column; an MLP
  (``depth`` 0: linear); cross-entropy and accuracy, or MSE and no accuracy (``problem``); n from the npz
  array header, None for a CSV;
- ``image-folder``: one sub-folder per class of PNG/JPEG/... files (torchvision's ImageFolder layout); a small
  CNN or the paper's ResNet-18; cross-entropy and accuracy; optional paper augmentation; n from the number
  of image files;
- ``text-transformer``: a UTF-8 text file as bytes; a small causal transformer; next-byte cross-entropy and
  accuracy; n from the file size and ``context``.

Each has a seeded train/test split of its file (or a second file given as ``test_file`` / ``test_folder``),
the streamed-path options, and reads only under the data root (``needs_data_root``). ``n_train`` reads a
header, a directory listing or a file size (``schedules.tasks.datafiles``) and returns None where the data
cannot be read on this machine or the size needs the whole file (CSV: rows are only known once parsed);
the service then checks plans against an unbounded training set and the driver uses ``budget.max_sfo``
(or turns early stopping off and says so), and the trainer counts SFO on the data it loaded.
The loaders (``schedules.tasks.tabular``, ``imagefolder``, ``text``) import torch; this module must not.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from schedules.families._base import SpecError
from schedules.tasks.datafiles import byte_windows, count_images, npz_rows, split_sizes
from schedules.tasks.definition import (
    GRAD_NORM_SUBSET_OPTION,
    NUM_WORKERS_OPTION,
    STREAM_OPTION,
    Option,
    TaskDefinition,
    resolve_data_path,
)

STREAMED = (STREAM_OPTION, NUM_WORKERS_OPTION, GRAD_NORM_SUBSET_OPTION)
TABULAR_FORMATS = (".npz", ".csv", ".tsv")


def _required(options: Mapping[str, Any], name: str, task: str, what: str) -> None:
    if options[name] is None:
        raise SpecError(f"task.options.{name}", None, f"must name {what} under the data root for task {task}")


def _same_format(
    options: Mapping[str, Any], name: str, other: str, task: str, formats: tuple[str, ...]
) -> None:
    suffix = Path(str(options[name])).suffix.lower()
    if suffix not in formats:
        raise SpecError(
            f"task.options.{name}",
            options[name],
            f"must end in {', '.join(formats)} for task {task}",
        )
    if options[other] is not None and Path(str(options[other])).suffix.lower() != suffix:
        raise SpecError(
            f"task.options.{other}",
            options[other],
            f"must be a {suffix} file like task.options.{name} for task {task}",
        )


def _train_part(total: int | None, options: Mapping[str, Any], held_out_by: str) -> int | None:
    """n of the training part: all of ``total`` when a separate test file is given, else the split's."""
    if total is None:
        return None
    n = total if options[held_out_by] is not None else split_sizes(total, options["test_fraction"])[0]
    return n if n >= 1 else None  # the loader says why there is nothing to train on


SPLIT_SEED = Option("split_seed", "int", 0, "Seed of the train/test split.", minimum=0)

# ------------------------------------------------------------------------------------------------- tabular


def _tabular_check(options: Mapping[str, Any]) -> None:
    _required(options, "file", TABULAR_MLP_NAME, "a .npz or .csv file")
    _same_format(options, "file", "test_file", TABULAR_MLP_NAME, TABULAR_FORMATS)


def _tabular_n_train(options: Mapping[str, Any]) -> int | None:
    path = resolve_data_path(options, options["file"], what="file")
    if path.suffix.lower() != ".npz":
        return None  # a CSV's rows are known only once it is parsed (quoted fields may span lines)
    return _train_part(npz_rows(path), options, "test_file")


TABULAR_MLP_NAME = "tabular-mlp"
TABULAR_MLP = TaskDefinition(
    name=TABULAR_MLP_NAME,
    description="Your table (.npz arrays X, y or a CSV with a label column), an MLP; classification or "
    "regression",
    loader="schedules.tasks.tabular:load",
    options=(
        Option(
            "file",
            "path",
            None,
            "Required. The training data under the data root: a .npz holding arrays X (examples x features) "
            "and y, or a .csv/.tsv with a header row whose `label` column holds the targets.",
            nullable=True,
        ),
        Option(
            "test_file",
            "path",
            None,
            "A second file of the same kind holding the test examples; null: hold out `test_fraction` of "
            "`file` (seeded by `split_seed`).",
            nullable=True,
        ),
        Option(
            "label", "str", "label", "CSV only: the column of the targets; every other column is a feature."
        ),
        Option(
            "problem",
            "str",
            "classification",
            "classification (cross-entropy, accuracy; labels become 0..K-1 in sorted order) or regression "
            "(mean squared error, no accuracy).",
            choices=("classification", "regression"),
        ),
        Option(
            "test_fraction",
            "float",
            0.2,
            "Share of `file` held out for testing when `test_file` is null (ceil(n x this) examples).",
            minimum=0.01,
            maximum=0.9,
        ),
        SPLIT_SEED,
        Option("hidden", "int", 128, "Width of each hidden layer.", minimum=1, maximum=4096),
        Option("depth", "int", 1, "Hidden layers (0: a linear model).", minimum=0, maximum=8),
        Option(
            "standardize",
            "bool",
            True,
            "Scale each feature to mean 0 and std 1 with the training split's statistics.",
        ),
        Option(
            "standardize_target",
            "bool",
            True,
            "Regression only: scale the targets the same way (losses are then in units of the targets' "
            "training std).",
        ),
        *STREAMED,
    ),
    n_train=_tabular_n_train,
    needs_data_root=True,
    check=_tabular_check,
)

# -------------------------------------------------------------------------------------------- image folder


def _image_check(options: Mapping[str, Any]) -> None:
    _required(options, "folder", IMAGE_FOLDER_NAME, "a folder with one sub-folder of images per class")


def _image_n_train(options: Mapping[str, Any]) -> int | None:
    path = resolve_data_path(options, options["folder"], what="folder")
    return _train_part(count_images(path) if path.is_dir() else None, options, "test_folder")


IMAGE_FOLDER_NAME = "image-folder"
IMAGE_FOLDER = TaskDefinition(
    name=IMAGE_FOLDER_NAME,
    description="Your images, one sub-folder per class (the ImageFolder layout); a small CNN or the paper's "
    "ResNet-18",
    loader="schedules.tasks.imagefolder:load",
    options=(
        Option(
            "folder",
            "path",
            None,
            "Required. Folder under the data root with one sub-folder of images per class; sorted class "
            "names give the labels 0..K-1.",
            nullable=True,
        ),
        Option(
            "test_folder",
            "path",
            None,
            "A folder of the same layout holding the test images; null: hold out `test_fraction` of "
            "`folder` (seeded by `split_seed`).",
            nullable=True,
        ),
        Option(
            "test_fraction",
            "float",
            0.2,
            "Share of `folder` held out for testing when `test_folder` is null (ceil(n x this) images).",
            minimum=0.01,
            maximum=0.9,
        ),
        SPLIT_SEED,
        Option(
            "image_size",
            "int",
            32,
            "Side in pixels: each image is centre-cropped to a square and resized to this.",
            minimum=8,
            maximum=512,
        ),
        Option("grayscale", "bool", False, "Decode to one channel instead of three (RGB)."),
        Option(
            "model",
            "str",
            "cnn",
            "cnn (three conv layers with BatchNorm) or resnet18 (the paper's CIFAR ResNet-18).",
            choices=("cnn", "resnet18"),
        ),
        Option(
            "width",
            "int",
            None,
            "Channels of the first conv layer; null: 32 for cnn, 64 (the paper's) for resnet18.",
            minimum=1,
            maximum=512,
            nullable=True,
        ),
        Option(
            "augment",
            "bool",
            False,
            "The paper's training augmentation on the device per batch: random crop with image_size/8 "
            "pixels of padding, horizontal flip, rotation up to 15 degrees.",
        ),
        Option(
            "measure_chunk",
            "int",
            500,
            "Images per forward/backward of a measurement pass.",
            minimum=1,
            maximum=1_000_000,
        ),
        *STREAMED,
    ),
    n_train=_image_n_train,
    needs_data_root=True,
    check=_image_check,
)

# ---------------------------------------------------------------------------------------------------- text


def _text_check(options: Mapping[str, Any]) -> None:
    _required(options, "file", TEXT_TRANSFORMER_NAME, "a UTF-8 text file")
    if options["width"] % options["heads"]:
        raise SpecError(
            "task.options.heads",
            options["heads"],
            f"must divide task.options.width={options['width']} for task {TEXT_TRANSFORMER_NAME}",
        )


def _text_n_train(options: Mapping[str, Any]) -> int | None:
    path = resolve_data_path(options, options["file"], what="file")
    if not path.is_file():
        return None
    size = path.stat().st_size
    if options["test_file"] is None:
        size = split_sizes(size, options["test_fraction"])[0]
    n = byte_windows(size, options["context"])
    return n if n >= 1 else None


TEXT_TRANSFORMER_NAME = "text-transformer"
TEXT_TRANSFORMER = TaskDefinition(
    name=TEXT_TRANSFORMER_NAME,
    description="Your UTF-8 text file, byte-level next-token prediction with a small causal transformer",
    loader="schedules.tasks.text:load",
    options=(
        Option(
            "file",
            "path",
            None,
            "Required. A UTF-8 text file under the data root; its bytes are the tokens (vocabulary 256).",
            nullable=True,
        ),
        Option(
            "test_file",
            "path",
            None,
            "A second text file for testing; null: the last `test_fraction` of `file`'s bytes.",
            nullable=True,
        ),
        Option(
            "test_fraction",
            "float",
            0.1,
            "Share of `file`'s bytes, at its end, held out for testing when `test_file` is null.",
            minimum=0.01,
            maximum=0.5,
        ),
        Option(
            "context",
            "int",
            64,
            "Tokens per sequence (one example); the text is cut into non-overlapping sequences.",
            minimum=2,
            maximum=4096,
        ),
        Option("width", "int", 128, "Model width (embedding size).", minimum=8, maximum=4096),
        Option("layers", "int", 2, "Transformer blocks.", minimum=1, maximum=48),
        Option("heads", "int", 4, "Attention heads per block; must divide `width`.", minimum=1, maximum=64),
        Option(
            "measure_chunk",
            "int",
            256,
            "Sequences per forward/backward of a measurement pass.",
            minimum=1,
            maximum=1_000_000,
        ),
        *STREAMED,
    ),
    n_train=_text_n_train,
    needs_data_root=True,
    check=_text_check,
)
