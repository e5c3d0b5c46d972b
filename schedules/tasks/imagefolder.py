"""Loader of ``image-folder`` (definition: ``schedules.tasks.generic``): your images, a CNN or ResNet-18.

Layout (torchvision's ImageFolder rules, ``schedules.tasks.datafiles.list_images``): ``folder`` under the data
root holds one sub-folder per class; sorted class names give the labels 0..K-1; every file with an image
extension below a class folder is an example. Hidden folders are skipped (torchvision would make
``.ipynb_checkpoints`` a class) and symbolic links to folders are not followed. ``test_folder`` must use class
names that ``folder`` has; without it a seeded ``test_fraction`` of ``folder`` is held out.

Decoding, once: Pillow opens each file, converts it to RGB (or L with ``grayscale``), crops the centre square
and resizes it to ``image_size`` (``ImageOps.fit``, bilinear). The result is a uint8 array (N, C, S, S) kept
in a cache file, so later trials (and later jobs) read one file instead of decoding again:

- where: ``$SCHEDSEARCH_CACHE_DIR/image-folder/``, else ``$XDG_CACHE_HOME/schedsearch/image-folder/``, else
  ``~/.cache/schedsearch/image-folder/`` on the machine that trains, never inside the data root (it may be
  mounted read-only and is shared);
- name: ``<folder key>-<content key>.npz``. The folder key hashes the folder's resolved path and the decode
  settings (size, channels, cache format); the content key hashes every image's relative path, size in bytes
  and modification time. Adding, removing, renaming or rewriting an image changes the content key, so the
  stale file is never read: the folder is decoded again and the older files of that folder key are removed;
- written to a temporary file and renamed into place, so concurrent trials on one machine never see half a
  file (they may both decode once). An unwritable cache directory only costs the decoding each time.

Images are normalised with the training split's per-channel mean and std (``schedules.tasks.images``); with
``augment: true`` every training batch gets the paper's crop (padding ``image_size / 8``, i.e. 4 pixels at
32), flip and rotation on the device (``schedules.tasks.augment``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from schedules.families._base import SpecError
from schedules.tasks.augment import PAPER_DEGREES, black, crop_flip_rotate
from schedules.tasks.datafiles import list_images, split_indices
from schedules.tasks.definition import resolve_data_path
from schedules.tasks.images import channel_stats, image_examples
from schedules.tasks.models import image_cnn, resnet18
from schedules.tasks.runtime import Task

NAME = "image-folder"
CACHE_ENV = "SCHEDSEARCH_CACHE_DIR"
CACHE_FORMAT = 1  # bump when the decoding changes, so old cache files are not read
DEFAULT_WIDTH = {"cnn": 32, "resnet18": 64}

logger = logging.getLogger(__name__)


def _bad(option: str, value: Any, problem: str) -> SpecError:
    return SpecError(f"task.options.{option}", value, f"{problem} (task {NAME})")


def cache_dir() -> Path:
    """Where decoded folders are kept on this machine (module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "image-folder"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "schedsearch" / "image-folder"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, separators=(",", ":")).encode()).hexdigest()[:20]


def _decode(
    folder: Path, files: list[str], size: int, grayscale: bool, option: str, value: str
) -> np.ndarray:
    from PIL import Image, ImageOps

    channels = 1 if grayscale else 3
    out = np.empty((len(files), channels, size, size), dtype=np.uint8)
    for i, relative in enumerate(files):
        try:
            with Image.open(folder / relative) as image:
                square = ImageOps.fit(
                    image.convert("L" if grayscale else "RGB"), (size, size), Image.Resampling.BILINEAR
                )
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            why = str(exc).replace(str(folder / relative), relative)  # no server path in the message
            raise _bad(option, value, f"holds {relative!r}, which is not a readable image ({why})") from None
        pixels = np.asarray(square, dtype=np.uint8)
        out[i] = pixels[None] if grayscale else pixels.transpose(2, 0, 1)
    return out


def decoded(
    folder: Path, *, size: int, grayscale: bool, option: str, value: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images uint8 (N, C, size, size), labels int64 (N,), class names) of an ImageFolder, from the cache
    when it is current (module docstring), else decoded and cached."""
    try:
        classes, samples = list_images(folder)
        stats = [(folder / f).stat() for f, _ in samples]
    except OSError as exc:
        raise _bad(option, value, f"cannot be read ({type(exc).__name__})") from None
    if not classes:
        raise _bad(option, value, "must hold one sub-folder of images per class; it has no sub-folder")
    counts = np.bincount([label for _, label in samples], minlength=len(classes))
    if not counts.all():
        empty = ", ".join(repr(c) for c, k in zip(classes, counts, strict=True) if k == 0)
        raise _bad(option, value, f"has class folders without any image: {empty}")
    labels = np.array([label for _, label in samples], dtype=np.int64)
    files = [f for f, _ in samples]

    folder_key = _digest([CACHE_FORMAT, str(folder.resolve()), size, grayscale])
    content_key = _digest([[f, s.st_size, s.st_mtime_ns] for f, s in zip(files, stats, strict=True)])
    directory = cache_dir()
    path = directory / f"{folder_key}-{content_key}.npz"
    try:
        with np.load(path, allow_pickle=False) as cached:
            x = cached["x"]
        if x.shape == (len(files), 1 if grayscale else 3, size, size):
            return x, labels, classes
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass  # no cache file yet, or one that cannot be read (a crash while copying it in): decode
    x = _decode(folder, files, size, grayscale, option, value)
    _write_cache(directory, path, folder_key, x)
    return x, labels, classes


def _write_cache(directory: Path, path: Path, folder_key: str, x: np.ndarray) -> None:
    """Write ``x`` to ``path`` through a temporary file and a rename, then remove the folder's older files."""
    temporary: str | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, x=x)
        os.replace(temporary, path)
        temporary = None
        for stale in directory.glob(f"{folder_key}-*.npz"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("image-folder: could not write the decode cache in %s (%s)", directory, exc)
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def load(options: Mapping[str, Any], device: torch.device) -> Task:
    size, grayscale = options["image_size"], options["grayscale"]

    def read(option: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        value = options[option]
        path = resolve_data_path(options, value, what=option)
        if not path.is_dir():
            raise _bad(option, value, "must name a folder under the data root; there is none")
        return decoded(path, size=size, grayscale=grayscale, option=option, value=value)

    x, y, classes = read("folder")
    if options["test_folder"] is not None:
        x_te, y_te, test_classes = read("test_folder")
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise _bad(
                "test_folder",
                options["test_folder"],
                f"has classes that task.options.folder lacks: {', '.join(map(repr, unknown))}",
            )
        # labels by class name: the test folder may lack some of the training classes
        to_train_label = np.array([classes.index(name) for name in test_classes], dtype=np.int64)
        y_te = to_train_label[y_te]
        x_tr, y_tr = x, y
    else:
        if len(x) < 2:
            raise _bad("folder", options["folder"], f"must hold at least 2 images to split, got {len(x)}")
        train_idx, test_idx = split_indices(len(x), options["test_fraction"], options["split_seed"])
        if not train_idx:
            raise _bad("test_fraction", options["test_fraction"], f"leaves no training image of {len(x)}")
        x_tr, y_tr, x_te, y_te = x[train_idx], y[train_idx], x[test_idx], y[test_idx]

    stats = channel_stats(x_tr)
    channels, num_classes = int(x_tr.shape[1]), len(classes)
    model = options["model"]
    width = options["width"] or DEFAULT_WIDTH[model]

    def build() -> torch.nn.Module:
        if model == "resnet18":
            return resnet18(num_classes, width=width, in_channels=channels).to(device)
        return image_cnn(channels, width, num_classes).to(device)

    augment = None
    if options["augment"]:
        augment = crop_flip_rotate(black(*stats), padding=max(1, round(size / 8)), degrees=PAPER_DEGREES)
    return Task(
        name=NAME,
        build_model=build,
        train=image_examples(x_tr, y_tr, stats, device, options),
        test=image_examples(x_te, y_te, stats, device, options),
        device=device,
        measure_chunk=options["measure_chunk"],
        augment=augment,
        grad_norm_subset=options["grad_norm_subset"],
        num_classes=num_classes,
        options=options,
    )
