"""The built-in loaders (digits split, synthetic data, the CIFAR reader on a tiny folder written here) and
``load_task``: options checked by the one definition, plugins that cannot load, the device bytes logged."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from schedules.spec import SpecError
from schedules.tasks import DATA_ROOT_ENV, TaskUnavailable
from schedules.tasks.models import resnet18
from schedules.tasks.runtime import DatasetData, TensorData, load_task, resolve_device
from tests.support import toy_tasks


def test_digits_split_is_stratified_fixed_and_scaled() -> None:
    task = load_task("digits-mlp", {}, device="cpu")
    assert (task.n_train, task.n_test) == (1347, 450)
    assert task.train.x.shape == (1347, 64) and task.train.x.dtype == torch.float32
    assert float(task.train.x.min()) == 0.0 and float(task.train.x.max()) == 1.0
    # stratified: every class holds the same share of the test set as of the whole set (within one example)
    all_counts = torch.bincount(torch.cat([task.train.y, task.test.y]), minlength=10).double()
    test_counts = torch.bincount(task.test.y, minlength=10).double()
    assert (test_counts - all_counts * 450 / 1797).abs().max() <= 1.0
    again = load_task("digits-mlp", {}, device="cpu")
    assert torch.equal(task.train.x, again.train.x) and torch.equal(task.test.y, again.test.y)


def test_digits_cnn_sees_images() -> None:
    task = load_task("digits-cnn", device="cpu")
    assert task.train.x.shape == (1347, 1, 8, 8)
    assert task.build_model()(task.train.x[:4]).shape == (4, 10)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        # unknown task: the error lists the catalogue
        (
            "mnist",
            {},
            r"task.name must be one of cifar10-resnet18, cifar100-resnet18, digits-cnn, digits-mlp, "
            r"image-folder, synthetic-logreg, tabular-mlp, text-transformer, got name='mnist'",
        ),
        # unknown option key: the error lists the task's options
        (
            "digits-mlp",
            {"hiden": 3},
            r"task.options.hiden is not an option of task digits-mlp \(valid: test_fraction, split_seed, "
            r"hidden, depth, stream, num_workers, grad_norm_subset\), got hiden=3",
        ),
        # an option of another task is unknown here (digits-cnn has channels, not hidden or depth)
        ("digits-cnn", {"depth": 2}, r"task.options.depth is not an option of task digits-cnn"),
        # wrong type
        ("synthetic-logreg", {"n": "many"}, r"task.options.n must be an integer in \[1, 10000000\]"),
        # out of range
        (
            "synthetic-logreg",
            {"label_noise": 0.7},
            r"label_noise must be a number in \[0, 0.5\].*got label_noise=0.7",
        ),
        # booleans are not integers
        ("digits-mlp", {"depth": True}, r"task.options.depth must be an integer in \[0, 8\].*got depth=True"),
    ],
)
def test_bad_task_requests_name_the_field(name: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_task(name, options, device="cpu")


def test_synthetic_size_seed_and_label_noise() -> None:
    clean = load_task(
        "synthetic-logreg", {"n": 3000, "n_test": 500, "d": 7, "label_noise": 0.0}, device="cpu"
    )
    noisy = load_task(
        "synthetic-logreg", {"n": 3000, "n_test": 500, "d": 7, "label_noise": 0.3}, device="cpu"
    )
    other = load_task("synthetic-logreg", {"n": 3000, "n_test": 500, "d": 7, "seed": 1}, device="cpu")
    assert clean.train.x.shape == (3000, 7) and clean.n_test == 500
    assert torch.equal(clean.train.x, noisy.train.x)  # same seed: same features, only labels flipped
    flipped = float((clean.train.y != noisy.train.y).double().mean())
    assert 0.27 < flipped < 0.33
    assert not torch.equal(clean.train.x, other.train.x)


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
    task = load_task(f"cifar{classes}-resnet18", {"data_root": str(tmp_path), "width": 4}, device="cpu")
    assert task.train.x.shape == (n_train, 3, 32, 32) and task.n_test == n_test
    assert task.num_classes == classes
    # normalised with the dataset's mean/std: uniform bytes land around (0.5 - mean) / std
    assert abs(float(task.train.x.mean())) < 1.5
    assert int(task.train.y.max()) < classes
    assert task.build_model()(task.train.x[:2]).shape == (2, classes)
    subset = load_task(f"cifar{classes}-resnet18", {"data_root": str(tmp_path), "subset": 4}, device="cpu")
    assert subset.n_train == 4 and torch.equal(subset.train.x, task.train.x[:4])


def test_cifar_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_cifar(tmp_path, 10, per_file=2)
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert load_task("cifar10-resnet18", {"width": 4}, device="cpu").n_train == 10


@pytest.mark.parametrize(
    ("options", "message"),
    [
        # folder climbing out of the root: refused by the option's type before anything is read
        ({"folder": "../elsewhere"}, r"task.options.folder must not contain '..'"),
        # absolute folder
        ({"folder": "/etc"}, r"task.options.folder must be a path relative to the data root"),
        # a symbolic link inside the root that points out of it
        (
            {"folder": "link-out"},
            r"task.options.folder must stay inside the data root, got folder='link-out'",
        ),
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
    (tmp_path / "root" / "link-out").symlink_to(tmp_path)
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "root"))
    with pytest.raises(ValueError, match=message):
        load_task("cifar10-resnet18", options, device="cpu")


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo should-not-run",))


def test_cifar_reader_refuses_foreign_pickles(tmp_path: Path) -> None:
    _write_cifar(tmp_path, 100, per_file=2)
    with (tmp_path / "cifar-100-python" / "train").open("wb") as fh:
        pickle.dump({b"data": _Evil()}, fh)
    with pytest.raises(pickle.UnpicklingError, match="which a CIFAR file never does"):
        load_task("cifar100-resnet18", {"data_root": str(tmp_path)}, device="cpu")


def test_without_any_data_root_the_cifar_error_names_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    with pytest.raises(SpecError, match=r"task.options.data_root must be set, or SCHEDSEARCH_DATA_ROOT"):
        load_task("cifar10-resnet18", {}, device="cpu")


@pytest.mark.parametrize("classes", [10, 100])
def test_streamed_cifar_reads_the_same_images(tmp_path: Path, classes: int) -> None:
    # Normalised per batch on the host (uint8 stays in memory) or once on the device: the same floats.
    _write_cifar(tmp_path, classes, per_file=6)
    options = {"data_root": str(tmp_path), "width": 4}
    resident = load_task(f"cifar{classes}-resnet18", options, device="cpu")
    streamed = load_task(f"cifar{classes}-resnet18", {**options, "stream": True}, device="cpu")
    assert isinstance(resident.train, TensorData) and isinstance(streamed.train, DatasetData)
    resident_tensors = (resident.train.x, resident.train.y, resident.test.x, resident.test.y)
    assert resident.device_bytes == sum(t.nbytes for t in resident_tensors) and streamed.device_bytes == 0
    x, y = streamed.train.dataset.__getitems__([3, 0, 5])  # type: ignore[attr-defined]
    assert torch.equal(x, resident.train.x[[3, 0, 5]]) and torch.equal(y, resident.train.y[[3, 0, 5]])
    x1, y1 = streamed.train.dataset[4]
    assert torch.equal(x1, resident.train.x[4]) and int(y1) == int(resident.train.y[4])


def test_loading_logs_the_device_bytes_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="schedules.tasks.runtime"):
        task = load_task("synthetic-logreg", {"n": 100, "n_test": 20, "d": 3}, device="cpu")
    lines = [r.getMessage() for r in caplog.records if "bytes of tensors on the device" in r.getMessage()]
    # x: 120 x 3 float32, y: 120 int64
    assert task.device_bytes == 120 * 3 * 4 + 120 * 8
    assert lines == [
        "task synthetic-logreg on cpu: 100 training and 20 test examples (on the device), "
        f"{120 * 3 * 4 + 960} bytes of tensors on the device"
    ]


def test_plugins_that_cannot_load_say_so_in_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    toy_tasks.install(monkeypatch, toy_tasks.NOT_A_TASK, toy_tasks.MISSING_MODULE)
    with pytest.raises(TaskUnavailable, match=r"returned a dict, not a Task"):
        load_task("toy-not-a-task", device="cpu")
    with pytest.raises(TaskUnavailable) as info:
        load_task("toy-missing-module", device="cpu")
    assert str(info.value) == (
        "task.name names a task that cannot be used here: the loader "
        "'toy_tasks_that_do_not_exist.loader:load' (package toy-plugin 0.0.1) cannot be imported "
        "(ModuleNotFoundError: No module named 'toy_tasks_that_do_not_exist'), got name='toy-missing-module'"
    )
    assert "\n" not in str(info.value)
