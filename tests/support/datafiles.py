"""Small generated files for the generic tasks, written under a test's data root: learnable, so a test can
see training lower the loss, and tiny, so a few epochs take well under a second."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TABULAR_ROWS = 120  # 96 training rows at the default test_fraction 0.2
TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
    "want of a wife. Ünïcödé bytes count as several tokens. "
)


def tabular_arrays(rows: int = TABULAR_ROWS, features: int = 5, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Features with different scales and offsets (so standardisation matters), a 3-class label from a
    linear rule on them, and a regression target (two outputs)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, features))
    x = z * np.arange(1, features + 1) * 10.0 + 100.0
    y_class = np.digitize(z @ rng.standard_normal(features), [-0.5, 0.5])  # 0, 1, 2
    y_reg = np.stack([z @ rng.standard_normal(features), z[:, 0] - z[:, 1]], axis=1) * 5.0 + 3.0
    return x, y_class, y_reg


def write_npz(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, X=x, y=y)
    return path


def write_csv(path: Path, x: np.ndarray, labels: list[str], *, label: str = "label", sep: str = ",") -> Path:
    """A header ``f0, f1, ..., <label>`` with the label column in the middle, labels quoted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    middle = x.shape[1] // 2
    names = [f"f{i}" for i in range(x.shape[1])]
    header = [*names[:middle], label, *names[middle:]]
    lines = [sep.join(header)]
    for row, value in zip(x, labels, strict=True):
        cells = [repr(float(v)) for v in row]
        lines.append(sep.join([*cells[:middle], f'"{value}"', *cells[middle:]]))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_image_folder(
    folder: Path, classes: tuple[str, ...] = ("horizontal", "vertical"), per_class: int = 12, size: int = 12
) -> Path:
    """One sub-folder per class of striped images (PNG and JPEG alternating, odd sizes so they get cropped
    and resized): horizontal stripes in one class, vertical in the other, with noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            stripes = (np.arange(size + 2) // 2 % 2 * 200).astype(np.float64)
            image = (
                np.tile(stripes[:, None], (1, size))
                if k % 2 == 0
                else np.tile(stripes[None, :], (size + 2, 1))
            )
            pixels = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
            rgb = np.stack([pixels, pixels // 2, 255 - pixels], axis=-1)
            suffix = ".png" if i % 2 == 0 else ".JPG"
            Image.fromarray(rgb).save(folder / name / f"img{i:03d}{suffix}", quality=95)
    return folder


def write_text(path: Path, repeats: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TEXT * repeats, encoding="utf-8")
    return path


def write_cifar10(root: Path, per_file: int = 16) -> Path:
    """A tiny ``cifar-10-batches-py`` folder (5 training batches and a test batch of ``per_file`` random
    images each) in the python-pickle layout the CIFAR tasks read."""
    import pickle

    rng = np.random.default_rng(10)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, size=per_file)],
        }
        with (folder / name).open("wb") as fh:
            pickle.dump(batch, fh)
    return folder
