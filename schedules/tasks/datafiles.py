"""What the generic tasks know about their files before loading them. Torch-free (the API calls these through
``TaskDefinition.n_train``), numpy imported lazily.

- ``split_sizes(n, test_fraction)`` and ``split_indices(n, test_fraction, seed)``: the seeded train/test split
  the tabular and image-folder tasks share (``ceil(n * test_fraction)`` examples held out);
- ``npz_rows(path)``: rows of the array ``X`` in an ``.npz`` file, read from its header only;
- ``list_images(folder)``: the ImageFolder listing (sorted class sub-folders give the label indices, files
  with an image extension anywhere below a class folder, sorted), and ``count_images(folder)``, its length,
  cached per folder until a directory below it changes;
- ``byte_windows(size, context)``: how many next-token sequences of ``context`` inputs a file of ``size``
  bytes gives.

Sizes are "known cheaply" here: a header, a directory listing, a file size. Where a file cannot be read on
this machine (the API may not mount the data the workers read) the size functions return None, and the
service then plans as for a task of unknown size (docs/tasks-generic.md).
"""

from __future__ import annotations

import math
import os
import threading
import zipfile
from pathlib import Path

#: The extensions torchvision's ImageFolder accepts (case-insensitive); Pillow decodes all of them.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def split_sizes(n: int, test_fraction: float) -> tuple[int, int]:
    """(train, test) sizes of the seeded split of ``n`` examples: ``ceil(n * test_fraction)`` held out, as
    scikit-learn's ``train_test_split`` does."""
    n_test = math.ceil(n * test_fraction)
    return n - n_test, n_test


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Train and test indices (each sorted, so both keep the file order) of a seeded random split."""
    import numpy as np

    _, n_test = split_sizes(n, test_fraction)
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(perm[n_test:].tolist()), sorted(perm[:n_test].tolist())


def npz_rows(path: Path) -> int | None:
    """Rows of ``X`` in the ``.npz`` file at ``path`` from the array header alone (the data are not read), or
    None when the file is missing, not an npz, or has no readable ``X``."""
    if not path.is_file():
        return None
    import numpy as np

    try:
        with zipfile.ZipFile(path) as archive, archive.open("X.npy") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, _ = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, _ = np.lib.format.read_array_header_2_0(fh)
            else:
                return None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return int(shape[0]) if shape else None


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _class_folders(folder: Path) -> list[str]:
    # Hidden folders (.ipynb_checkpoints, .git) are skipped: torchvision would make them classes.
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _walk(folder: Path) -> tuple[list[str], list[tuple[str, int]], dict[str, int]]:
    classes = _class_folders(folder)
    samples: list[tuple[str, int]] = []
    directories = {".": folder.stat().st_mtime_ns}
    for label, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(folder / name):  # symlinked folders are not followed
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            relative = Path(dirpath).relative_to(folder).as_posix()
            directories[relative] = Path(dirpath).stat().st_mtime_ns
            samples.extend((f"{relative}/{f}", label) for f in sorted(filenames) if is_image_file(f))
    return classes, samples, directories


def list_images(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """The ImageFolder layout of ``folder``: (class names, [(file path relative to ``folder``, label)]).

    Class names are the sorted names of the sub-folders (hidden ones skipped); a class's label is its index
    in that list (torchvision's rule). Files are taken from anywhere below a class folder when their
    extension is in ``IMAGE_EXTENSIONS``, in sorted order. Raises ``OSError`` when the folder cannot be read.
    """
    classes, samples, _ = _walk(folder)
    return classes, samples


_COUNTS: dict[Path, tuple[dict[str, int], int]] = {}
_COUNTS_LOCK = threading.Lock()
_COUNTS_KEPT = 64


def _unchanged(folder: Path, directories: dict[str, int]) -> bool:
    try:
        return all((folder / d).stat().st_mtime_ns == m for d, m in directories.items())
    except OSError:
        return False


def count_images(folder: Path) -> int | None:
    """How many images ``list_images(folder)`` finds, or None when the folder cannot be read.

    The API calls this for every job it checks, so the count is kept per folder together with the
    modification times of every directory it walked; it is reused while none of them has changed (adding,
    removing or renaming a file or folder changes the time of the directory that holds it), at the cost of
    one ``stat`` per directory instead of listing every file."""
    with _COUNTS_LOCK:
        cached = _COUNTS.get(folder)
    if cached is not None and _unchanged(folder, cached[0]):
        return cached[1]
    try:
        _, samples, directories = _walk(folder)
    except OSError:
        return None
    with _COUNTS_LOCK:
        if len(_COUNTS) >= _COUNTS_KEPT:
            _COUNTS.pop(next(iter(_COUNTS)))
        _COUNTS[folder] = (directories, len(samples))
    return len(samples)


def byte_windows(size: int, context: int) -> int:
    """Non-overlapping next-token sequences in ``size`` bytes: sequence i reads bytes
    [i * context, (i + 1) * context] (``context`` inputs, each predicting the byte after it), so
    consecutive sequences share one byte and there are ``(size - 1) // context`` of them."""
    return max(0, (size - 1) // context)
