"""Task registry, the digits split, synthetic data, and the CIFAR reader on a tiny folder written here."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from schedules.tasks import get_task, resolve_device
from schedules.tasks.cifar import DATA_ROOT_ENV
from schedules.tasks.models import resnet18


def test_digits_split_is_stratified_fixed_and_scaled() -> None:
    task = get_task("digits-mlp", {}, device="cpu")
    assert (task.n_train, task.n_test) == (1347, 450)
    assert task.x_train.shape == (1347, 64) and task.x_train.dtype == torch.float32
    assert float(task.x_train.min()) == 0.0 and float(task.x_train.max()) == 1.0
    # stratified: every class holds the same share of the test set as of the whole set (within one example)
    all_counts = torch.bincount(torch.cat([task.y_train, task.y_test]), minlength=10).double()
    test_counts = torch.bincount(task.y_test, minlength=10).double()
    assert (test_counts - all_counts * 450 / 1797).abs().max() <= 1.0
    again = get_task("digits-mlp", {}, device="cpu")
    assert torch.equal(task.x_train, again.x_train) and torch.equal(task.y_test, again.y_test)


def test_digits_cnn_sees_images() -> None:
    task = get_task("digits-cnn", device="cpu")
    assert task.x_train.shape == (1347, 1, 8, 8)
    assert task.build_model()(task.x_train[:4]).shape == (4, 10)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        # unknown task: the error lists the registry
        (
            "mnist",
            {},
            r"task.name must be one of cifar10-resnet18, cifar100-resnet18, digits-cnn, digits-mlp, "
            r"synthetic-logreg, got name='mnist'",
        ),
        # unknown option key
        (
            "digits-mlp",
            {"hiden": 3},
            r"unknown key\(s\) hiden for task 'digits-mlp'; valid keys: test_fraction",
        ),
        # wrong type
        ("synthetic-logreg", {"n": "many"}, r"task.options.n must be an integer, got n='many'"),
        # out of range
        ("synthetic-logreg", {"label_noise": 0.7}, r"label_noise must be in \[0, 0.5\], got label_noise=0.7"),
        # booleans are not integers
        ("digits-mlp", {"depth": True}, r"task.options.depth must be an integer, got depth=True"),
    ],
)
def test_bad_task_requests_name_the_field(name: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_task(name, options, device="cpu")


def test_synthetic_size_seed_and_label_noise() -> None:
    clean = get_task("synthetic-logreg", {"n": 3000, "n_test": 500, "d": 7, "label_noise": 0.0}, device="cpu")
    noisy = get_task("synthetic-logreg", {"n": 3000, "n_test": 500, "d": 7, "label_noise": 0.3}, device="cpu")
    other = get_task("synthetic-logreg", {"n": 3000, "n_test": 500, "d": 7, "seed": 1}, device="cpu")
    assert clean.x_train.shape == (3000, 7) and clean.n_test == 500
    assert torch.equal(clean.x_train, noisy.x_train)  # same seed: same features, only labels flipped
    flipped = float((clean.y_train != noisy.y_train).double().mean())
    assert 0.27 < flipped < 0.33
    assert not torch.equal(clean.x_train, other.x_train)


def test_resolve_device_prefers_cuda() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    assert resolve_device("cpu").type == "cpu"


def test_resnet18_matches_the_cifar_resnet18_size() -> None:
    # The CIFAR ResNet-18 (3x3 stem, BasicBlocks 2-2-2-2, 1x1 conv shortcuts) has 11,173,962 parameters
    # with 10 classes.
    assert sum(p.numel() for p in resnet18(10).parameters()) == 11_173_962


def _write_cifar(root: Path, classes: int, per_file: int) -> None:
    rng = np.random.default_rng(classes)
    if classes == 10:
        folder, files, key = (
            root / "cifar-10-batches-py",
            [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"],
            b"labels",
        )
    else:
        folder, files, key = root / "cifar-100-python", ["train", "test"], b"fine_labels"
    folder.mkdir(parents=True)
    for name in files:
        batch = {
            b"data": rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8),
            key: [int(v) for v in rng.integers(0, classes, size=per_file)],
        }
        with (folder / name).open("wb") as fh:
            pickle.dump(batch, fh)


@pytest.mark.parametrize(("classes", "n_train", "n_test"), [(10, 5 * 6, 6), (100, 6, 6)])
def test_cifar_reader_on_a_tiny_folder(tmp_path: Path, classes: int, n_train: int, n_test: int) -> None:
    _write_cifar(tmp_path, classes, per_file=6)
    task = get_task(f"cifar{classes}-resnet18", {"data_root": str(tmp_path), "width": 4}, device="cpu")
    assert task.x_train.shape == (n_train, 3, 32, 32) and task.n_test == n_test
    assert task.num_classes == classes
    # normalised with the dataset's mean/std: uniform bytes land around (0.5 - mean) / std
    assert abs(float(task.x_train.mean())) < 1.5
    assert int(task.y_train.max()) < classes
    assert task.build_model()(task.x_train[:2]).shape == (2, classes)
    subset = get_task(f"cifar{classes}-resnet18", {"data_root": str(tmp_path), "subset": 4}, device="cpu")
    assert subset.n_train == 4 and torch.equal(subset.x_train, task.x_train[:4])


def test_cifar_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_cifar(tmp_path, 10, per_file=2)
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert get_task("cifar10-resnet18", {"width": 4}, device="cpu").n_train == 10


@pytest.mark.parametrize(
    ("options", "message"),
    [
        # folder climbing out of the root
        (
            {"folder": "../elsewhere"},
            r"task.options.folder must stay inside the data root, got folder='../elsewhere'",
        ),
        # absolute folder
        ({"folder": "/etc"}, r"task.options.folder must stay inside the data root"),
        # data_root outside the configured root
        ({"data_root": "/"}, r"task.options.data_root must lie inside SCHEDSEARCH_DATA_ROOT"),
        # missing folder
        ({"folder": "nothing-here"}, r"no CIFAR folder 'nothing-here' under the data root"),
    ],
)
def test_cifar_paths_cannot_escape_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, str], message: str
) -> None:
    (tmp_path / "root").mkdir()
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "root"))
    with pytest.raises(ValueError, match=message):
        get_task("cifar10-resnet18", options, device="cpu")


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo should-not-run",))


def test_cifar_reader_refuses_foreign_pickles(tmp_path: Path) -> None:
    _write_cifar(tmp_path, 100, per_file=2)
    with (tmp_path / "cifar-100-python" / "train").open("wb") as fh:
        pickle.dump({b"data": _Evil()}, fh)
    with pytest.raises(pickle.UnpicklingError, match="which a CIFAR file never does"):
        get_task("cifar100-resnet18", {"data_root": str(tmp_path)}, device="cpu")
