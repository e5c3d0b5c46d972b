"""The paper's augmentation on the device (schedules/tasks/augment.py) and where the trainer applies it: every
training batch; the measurement pass in faithful mode only (paper-notes §3.1, §6.2)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from schedules.spec import TrialSpec
from schedules.tasks.augment import PAPER_PADDING, black, crop_flip, crop_flip_rotate, rotate
from schedules.tasks.runtime import load_task
from schedules.trainer import train
from tests.support.datafiles import write_cifar10, write_image_folder

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)


def test_crop_and_flip_are_a_window_of_the_zero_padded_image() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 5, 7, generator=g)
    top = torch.tensor([0, 4, 2, 1, 3, 4])
    left = torch.tensor([4, 0, 2, 3, 1, 4])
    flip = torch.tensor([False, True, False, True, True, False])
    out = crop_flip(x, top, left, flip, padding=2)
    padded = F.pad(x, (2, 2, 2, 2))
    for i in range(6):
        window = padded[i, :, top[i] : top[i] + 5, left[i] : left[i] + 7]
        assert torch.equal(out[i], window.flip(-1) if flip[i] else window), i


@pytest.mark.parametrize(("height", "width"), [(16, 16), (15, 21)])
@pytest.mark.parametrize("degrees", [15.0, -15.0, 7.3, 90.0])
def test_rotation_equals_pillow_nearest_with_black_fill(height: int, width: int, degrees: float) -> None:
    """torchvision's RandomRotation rotates a PIL image with PIL's rotate (nearest, fill 0): pixel for pixel
    the same here, on square and non-square images, in the same direction."""
    from PIL import Image

    image = np.random.default_rng(1).integers(1, 256, (height, width)).astype(np.uint8)
    expected = np.asarray(
        Image.fromarray(image).rotate(degrees, resample=Image.Resampling.NEAREST, fillcolor=0)
    )
    out = rotate(torch.from_numpy(image).float()[None, None], torch.tensor([math.radians(degrees)]))
    assert np.array_equal(out[0, 0].numpy(), expected)


def _raw(x: torch.Tensor) -> torch.Tensor:
    """Normalised images back to pixel values in [0, 1]."""
    return x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)


def test_padding_and_corners_are_black_before_normalisation() -> None:
    white = torch.ones(64, 3, 32, 32)
    x = (white - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    out = _raw(crop_flip_rotate(black(MEAN, STD))(x, torch.Generator().manual_seed(0)))
    # nearest sampling: every pixel is white or the padding's black, never a blend
    assert torch.allclose(out, out.round(), atol=1e-5)
    assert {round(v) for v in out.unique().tolist()} == {0, 1}
    black_share = 1 - out.mean().item()
    assert 0.01 < black_share < 0.3  # borders and rotated-in corners, not whole images


def test_crop_offsets_cover_the_papers_range() -> None:
    """Without rotation the black border of a white image shows the crop offset: every shift in
    [-4, 4] occurs, never more."""
    white = torch.ones(500, 1, 32, 32)
    out = crop_flip_rotate([0.0], degrees=0.0)(white, torch.Generator().manual_seed(0))
    rows = out[:, 0, :, 16]  # a middle column: black rows above or below the image
    shifts = (rows[:, 0] == 0) * (32 - rows.sum(1)) - (rows[:, -1] == 0) * (32 - rows.sum(1))
    assert set(shifts.long().tolist()) == set(range(-PAPER_PADDING, PAPER_PADDING + 1))


def test_same_seed_same_augmentation_another_seed_another() -> None:
    x = torch.randn(8, 3, 32, 32)
    augment = crop_flip_rotate(black(MEAN, STD))
    first = augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(first, augment(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, augment(x, torch.Generator().manual_seed(4)))
    assert first.shape == x.shape and first.dtype == x.dtype


# --- through the trainer -------------------------------------------------------------------------------


@pytest.fixture
def image_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SCHEDSEARCH_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("SCHEDSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    write_cifar10(tmp_path, per_file=16)
    write_image_folder(tmp_path / "stripes", per_class=16)
    return tmp_path


AUGMENTED_TASKS = [
    ("cifar10-resnet18", {"width": 4, "subset": 48, "test_subset": 16}),
    ("image-folder", {"folder": "stripes", "width": 4, "image_size": 16}),
]


def _spec(name: str, options: dict[str, Any], mode: str, epochs: int = 2) -> TrialSpec:
    return TrialSpec.from_json(
        {
            "task": {"name": name, "options": options},
            "optimizer": {"name": "nshb", "momentum": 0.9},
            "schedule": {
                "batch_size": {"family": "constant", "b0": 16},
                "lr": {"family": "constant", "lr0": 0.1},
            },
            "budget": {"max_epochs": epochs},
            "grad_norm_mode": mode,
            "seed": 0,
        }
    )


@pytest.mark.parametrize(("name", "options"), AUGMENTED_TASKS)
def test_augment_option_trains_on_augmented_batches_seeded(
    image_root: Path, name: str, options: dict[str, Any]
) -> None:
    task = load_task(name, {**options, "augment": True}, device="cpu")
    assert task.augment is not None and load_task(name, options, device="cpu").augment is None
    plain = train(_spec(name, options, "clean"), device="cpu")
    augmented = train(_spec(name, {**options, "augment": True}, "clean"), device="cpu")
    again = train(_spec(name, {**options, "augment": True}, "clean"), device="cpu")
    # the training batches are augmented: the trajectory changes; the same seed augments the same way
    assert [r.train_loss for r in augmented.records] != [r.train_loss for r in plain.records]
    assert [r.to_json() | {"wall_s": 0} for r in augmented.records] == [
        r.to_json() | {"wall_s": 0} for r in again.records
    ]


@pytest.mark.parametrize(("name", "options"), AUGMENTED_TASKS)
def test_measurement_sees_augmented_data_in_faithful_mode_only(
    image_root: Path, name: str, options: dict[str, Any]
) -> None:
    """The first measurement is taken before any step, on the same initial model: clean mode measures the
    data as they are whatever ``augment`` says; faithful mode measures augmented data, as the official code's
    full-gradient pass uses the training transforms."""

    def initial_norm(augment: bool, mode: str) -> float:
        result = train(_spec(name, {**options, "augment": augment}, mode, epochs=1), device="cpu")
        assert result.summary.initial_grad_norm is not None
        return result.summary.initial_grad_norm

    assert initial_norm(True, "clean") == initial_norm(False, "clean")
    assert initial_norm(True, "faithful") != initial_norm(False, "faithful")
