"""The generic data tasks on small generated files: sizes without loading, the loaders' rules (splits,
standardisation, labels, decode cache, byte sequences), refusals that name the option, and training through
the trainer and ``schedsearch train``. The REST path is tests/workers/test_generic_tasks_e2e.py."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cli import main
from schedules.spec import SpecError, TrialSpec
from schedules.tasks import catalogue, datafiles, imagefolder
from schedules.tasks.runtime import TensorData, load_task
from schedules.trainer import train
from tests.support.datafiles import (
    TABULAR_ROWS,
    tabular_arrays,
    write_csv,
    write_image_folder,
    write_npz,
    write_text,
)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root holding one file of each kind; decode caches go to a folder outside it."""
    data = tmp_path / "data"
    x, y_class, y_reg = tabular_arrays()
    write_npz(data / "table.npz", x, y_class)
    write_npz(data / "regression.npz", x, y_reg)
    write_csv(data / "iris.csv", x, [["setosa", "versicolor", "virginica"][int(k)] for k in y_class])
    write_image_folder(data / "stripes")
    write_text(data / "book.txt")
    monkeypatch.setenv("SCHEDSEARCH_DATA_ROOT", str(data))
    monkeypatch.setenv("SCHEDSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    return data


def _size(name: str, options: dict[str, Any]) -> int | None:
    return catalogue().get(name).training_size(options)


# --- definitions: n without loading, required options -------------------------------------------------


def test_n_train_without_loading(root: Path) -> None:
    # npz: the rows of X from its header; 120 - ceil(120 x 0.2) held out
    assert _size("tabular-mlp", {"file": "table.npz"}) == 96
    assert _size("tabular-mlp", {"file": "table.npz", "test_fraction": 0.5}) == 60
    assert _size("tabular-mlp", {"file": "table.npz", "test_file": "regression.npz"}) == TABULAR_ROWS
    # CSV: rows are known only once parsed; a file this machine cannot see: unknown
    assert _size("tabular-mlp", {"file": "iris.csv"}) is None
    assert _size("tabular-mlp", {"file": "elsewhere.npz"}) is None
    # image folder: 24 image files, 24 - ceil(4.8) for training
    assert _size("image-folder", {"folder": "stripes"}) == 19
    assert _size("image-folder", {"folder": "stripes", "test_folder": "stripes"}) == 24
    assert _size("image-folder", {"folder": "missing"}) is None
    # text: (training bytes - 1) // context sequences
    size = (root / "book.txt").stat().st_size
    assert (
        _size("text-transformer", {"file": "book.txt", "context": 32})
        == (size - math.ceil(size * 0.1) - 1) // 32
    )
    assert _size("text-transformer", {"file": "book.txt", "test_file": "book.txt"}) == (size - 1) // 64
    # and the loaders load exactly that many
    for name, options in [
        ("tabular-mlp", {"file": "table.npz"}),
        ("image-folder", {"folder": "stripes"}),
        ("text-transformer", {"file": "book.txt", "context": 32}),
    ]:
        assert load_task(name, options, device="cpu").n_train == _size(name, options), name


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        (
            "tabular-mlp",
            {},
            "task.options.file must name a .npz or .csv file under the data root for task tabular-mlp, "
            "got file=None",
        ),
        (
            "tabular-mlp",
            {"file": "table.parquet"},
            "task.options.file must end in .npz, .csv, .tsv for task tabular-mlp, got file='table.parquet'",
        ),
        (
            "tabular-mlp",
            {"file": "table.npz", "test_file": "test.csv"},
            "task.options.test_file must be a .npz file like task.options.file for task tabular-mlp, "
            "got test_file='test.csv'",
        ),
        (
            "tabular-mlp",
            {"file": "../outside.npz"},
            "task.options.file must not contain '..' (task tabular-mlp reads its data under the data root), "
            "got file='../outside.npz'",
        ),
        (
            "image-folder",
            {"folder": "/srv/images"},
            "task.options.folder must be a path relative to the data root (task image-folder reads its data "
            "under the data root), got folder='/srv/images'",
        ),
        (
            "text-transformer",
            {"file": "book.txt", "width": 30, "heads": 4},
            "task.options.heads must divide task.options.width=30 for task text-transformer, got heads=4",
        ),
    ],
)
def test_definitions_refuse_options_naming_the_field(
    name: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError) as info:
        catalogue().get(name).validate(options)
    assert str(info.value) == message


def test_image_count_is_cached_until_a_folder_changes(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = root / "stripes"
    assert datafiles.count_images(folder) == 24
    walks: list[Path] = []
    real_walk = datafiles._walk
    monkeypatch.setattr(datafiles, "_walk", lambda f: walks.append(f) or real_walk(f))
    assert datafiles.count_images(folder) == 24 and walks == []  # unchanged: one stat per directory
    (folder / "vertical" / "new.png").write_bytes((folder / "vertical" / "img000.png").read_bytes())
    os.utime(folder / "vertical", ns=(1, 1))  # a distinct time even on a coarse-grained file system
    assert datafiles.count_images(folder) == 25 and walks == [folder]


# --- tabular ------------------------------------------------------------------------------------------


def test_tabular_npz_split_and_standardisation_from_the_training_split_only(root: Path) -> None:
    task = load_task("tabular-mlp", {"file": "table.npz", "split_seed": 3}, device="cpu")
    x, y, _ = tabular_arrays()
    train_idx, test_idx = datafiles.split_indices(TABULAR_ROWS, 0.2, 3)
    assert isinstance(task.train, TensorData) and isinstance(task.test, TensorData)
    assert (task.n_train, task.n_test, task.num_classes) == (96, 24, 3)
    mean, std = x[train_idx].mean(0), x[train_idx].std(0)
    expected_test = (x[test_idx] - mean) / std
    assert torch.allclose(task.test.x, torch.from_numpy(expected_test).float(), atol=1e-5)
    assert torch.allclose(task.train.x.mean(0), torch.zeros(5), atol=1e-5)
    assert not torch.allclose(task.test.x.mean(0), torch.zeros(5), atol=1e-2)  # test statistics unused
    assert task.train.y.tolist() == y[train_idx].tolist() and task.loss.name == "cross_entropy"
    other = load_task("tabular-mlp", {"file": "table.npz", "split_seed": 4}, device="cpu")
    assert not torch.equal(other.train.y, task.train.y)  # the seed chooses the split
    raw = load_task("tabular-mlp", {"file": "table.npz", "standardize": False, "depth": 0}, device="cpu")
    assert float(raw.train.x.mean()) > 50  # the features' offset of 100 kept
    assert [type(m).__name__ for m in raw.build_model()] == ["Linear"]  # depth 0: a linear model


def test_tabular_csv_labels_by_name_in_sorted_order(root: Path) -> None:
    task = load_task("tabular-mlp", {"file": "iris.csv", "hidden": 8}, device="cpu")
    npz = load_task("tabular-mlp", {"file": "table.npz", "hidden": 8}, device="cpu")
    # setosa < versicolor < virginica are the npz's 0, 1, 2: the same examples, the same labels
    assert torch.equal(task.train.y, npz.train.y) and torch.allclose(task.train.x, npz.train.x, atol=1e-5)
    # a spreadsheet's byte-order mark is not part of the first column's name
    rows = "".join(f"{k % 2},{k},{k * k % 7}\n" for k in range(20))
    (root / "bom.csv").write_text("label,a,b\n" + rows, encoding="utf-8-sig")
    assert load_task("tabular-mlp", {"file": "bom.csv"}, device="cpu").num_classes == 2
    x, y, _ = tabular_arrays()
    write_csv(root / "t.tsv", x, [str(int(v) * 5 + 1) for v in y], sep="\t")
    numeric = load_task("tabular-mlp", {"file": "t.tsv"}, device="cpu")
    # labels 1, 6, 11 are numbers: sorted as numbers (a string sort would put 11 before 6)
    assert torch.equal(numeric.train.y, npz.train.y)


def test_tabular_regression_has_mse_and_no_accuracy(root: Path) -> None:
    options = {"file": "regression.npz", "problem": "regression", "hidden": 16}
    task = load_task("tabular-mlp", options, device="cpu")
    assert task.loss.name == "mse" and task.accuracy is None and task.num_classes is None
    assert task.train.y.shape == (96, 2) and task.train.y.dtype == torch.float32
    assert torch.allclose(task.train.y.mean(0), torch.zeros(2), atol=1e-5)  # targets standardised
    kept = load_task("tabular-mlp", {**options, "standardize_target": False}, device="cpu")
    assert float(kept.train.y.mean()) > 1  # the targets' offset of 3 kept
    result = train(_spec("tabular-mlp", options, lr0=0.05, epochs=3), device="cpu")
    assert all(r.test_acc is None for r in result.records)
    assert result.records[-1].full_loss < result.records[0].full_loss


def test_tabular_given_test_file(root: Path) -> None:
    x, y, _ = tabular_arrays(rows=30, seed=5)
    write_npz(root / "held_out.npz", x, y)
    task = load_task("tabular-mlp", {"file": "table.npz", "test_file": "held_out.npz"}, device="cpu")
    assert (task.n_train, task.n_test) == (TABULAR_ROWS, 30)


def _write_bad(root: Path, name: str) -> str:
    x, y, _ = tabular_arrays(rows=10)
    path = root / name
    if name == "no_y.npz":
        np.savez(path, X=x, labels=y)
    elif name == "objects.npz":
        np.savez(path, X=np.array([object()] * 10, dtype=object), y=y)
    elif name == "array.npz":
        with path.open("wb") as fh:
            np.save(fh, x)
    elif name == "floats.npz":
        np.savez(path, X=x, y=y + 0.5)
    elif name == "one_class.npz":
        np.savez(path, X=x, y=np.zeros(10))
    elif name == "nan.npz":
        x[3, 1] = np.nan
        np.savez(path, X=x, y=y)
    elif name == "one_row.npz":
        np.savez(path, X=x[:1], y=y[:1])
    elif name == "no_label.csv":
        write_csv(path, x, [str(v) for v in y], label="target")
    elif name == "words.csv":
        path.write_text("a,label,b\n1,x,2\n3,y,many\n")
    return name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.npz", "must name a file under the data root; there is none"),
        ("no_y.npz", "must hold arrays X and y (found: X, labels)"),
        ("objects.npz", "must hold numeric arrays X and y, not Python objects"),
        ("array.npz", "is a single .npy array, not an .npz archive holding X and y"),
        (
            "floats.npz",
            "must hold integer or string class labels for classification (use problem: regression",
        ),
        ("one_class.npz", "must hold at least two classes for classification"),
        ("nan.npz", "must hold finite features (no NaN or infinity)"),
        ("one_row.npz", "must hold at least 2 examples to split, got 1"),
        ("no_label.csv", "has no column 'label' (task.options.label; columns: f0, f1, target, f2, f3, f4)"),
        ("words.csv", "could not convert string 'many' to float64 at row 1, column 3"),
    ],
)
def test_tabular_bad_files_are_one_sentence_naming_the_option(root: Path, name: str, message: str) -> None:
    _write_bad(root, name)
    with pytest.raises(SpecError) as info:
        load_task("tabular-mlp", {"file": name}, device="cpu")
    text = str(info.value)
    assert info.value.field == "task.options.file" and message in text
    assert (
        text.endswith(f"(task tabular-mlp), got file={name!r}") and str(root) not in text and "\n" not in text
    )


# --- image folder -------------------------------------------------------------------------------------


def test_image_folder_follows_imagefolder_rules(root: Path) -> None:
    folder = root / "stripes"
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "x.png").write_bytes((folder / "vertical" / "img000.png").read_bytes())
    (folder / "vertical" / "notes.txt").write_text("not an image")
    (folder / "vertical" / "more").mkdir()
    (folder / "vertical" / "more" / "deep.png").write_bytes((folder / "vertical" / "img000.png").read_bytes())
    classes, samples = datafiles.list_images(folder)
    assert classes == ["horizontal", "vertical"]  # sorted; the hidden folder is no class
    assert samples[0] == ("horizontal/img000.png", 0) and samples[1] == ("horizontal/img001.JPG", 0)
    assert ("vertical/more/deep.png", 1) in samples and len(samples) == 25
    assert not any(f.endswith(".txt") for f, _ in samples)
    task = load_task(
        "image-folder", {"folder": "stripes", "test_fraction": 0.2, "image_size": 8}, device="cpu"
    )
    assert isinstance(task.train, TensorData)
    assert task.train.x.shape == (20, 3, 8, 8) and task.train.x.dtype == torch.float32
    assert task.num_classes == 2 and sorted(set(task.train.y.tolist())) == [0, 1]
    # normalised with the training split's statistics, per channel
    assert torch.allclose(task.train.x.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    gray = load_task("image-folder", {"folder": "stripes", "grayscale": True, "image_size": 8}, device="cpu")
    assert gray.train.x.shape[1] == 1 and gray.build_model()(gray.train.x[:2]).shape == (2, 2)
    resnet = load_task("image-folder", {"folder": "stripes", "model": "resnet18", "width": 4}, device="cpu")
    assert resnet.build_model()(resnet.train.x[:2]).shape == (2, 2)


def test_image_decode_cache_is_reused_and_invalidated(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Path(os.environ["SCHEDSEARCH_CACHE_DIR"]) / "image-folder"
    first = load_task("image-folder", {"folder": "stripes"}, device="cpu")
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 1 and not list(root.rglob("*.npz.tmp"))
    assert not [p for p in root.rglob("*") if p.suffix == ".npz" and "stripes" in str(p)]  # none in the data

    def no_decoding(*args: Any) -> Any:
        raise AssertionError("decoded although the cache is current")

    real_decode = imagefolder._decode
    monkeypatch.setattr(imagefolder, "_decode", no_decoding)
    again = load_task("image-folder", {"folder": "stripes"}, device="cpu")
    assert torch.equal(first.train.x, again.train.x)
    # another size is another cache entry; a changed image invalidates the folder's entry
    monkeypatch.setattr(imagefolder, "_decode", real_decode)
    load_task("image-folder", {"folder": "stripes", "image_size": 16}, device="cpu")
    assert len(list(cache.glob("*.npz"))) == 2
    image = root / "stripes" / "horizontal" / "img000.png"
    from PIL import Image

    Image.new("RGB", (12, 14), (255, 0, 0)).save(image)
    changed = load_task("image-folder", {"folder": "stripes"}, device="cpu")
    assert not torch.equal(changed.train.x, first.train.x)
    remaining = sorted(cache.glob("*.npz"))
    assert len(remaining) == 2 and files[0] not in remaining  # the stale entry was removed
    # a damaged cache file is decoded again, not an error
    folder_key = files[0].name.split("-")[0]  # the first load's folder and settings (32 px)
    current = next(p for p in remaining if p.name.startswith(folder_key))
    current.write_bytes(b"PK\x03\x04 truncated")
    assert torch.equal(
        load_task("image-folder", {"folder": "stripes"}, device="cpu").train.x, changed.train.x
    )


def test_image_test_folder_maps_classes_by_name(root: Path) -> None:
    write_image_folder(root / "test", classes=("vertical",), per_class=3)
    task = load_task("image-folder", {"folder": "stripes", "test_folder": "test"}, device="cpu")
    assert (task.n_train, task.n_test) == (24, 3) and task.test.y.tolist() == [1, 1, 1]
    write_image_folder(root / "other", classes=("diagonal",), per_class=1)
    with pytest.raises(
        SpecError, match=r"task.options.test_folder has classes that task.options.folder lacks"
    ):
        load_task("image-folder", {"folder": "stripes", "test_folder": "other"}, device="cpu")


def test_image_folder_refusals_name_the_option(root: Path) -> None:
    (root / "stripes" / "horizontal" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SpecError) as info:
        load_task("image-folder", {"folder": "stripes"}, device="cpu")
    assert str(info.value).startswith(
        "task.options.folder holds 'horizontal/broken.png', which is not a readable image"
    )
    assert str(root) not in str(info.value)
    (root / "flat").mkdir()
    with pytest.raises(SpecError, match=r"task.options.folder must hold one sub-folder of images per class"):
        load_task("image-folder", {"folder": "flat"}, device="cpu")
    (root / "flat" / "empty").mkdir()
    (root / "flat" / "full").mkdir()
    (root / "flat" / "full" / "a.png").write_bytes(
        (root / "stripes" / "vertical" / "img000.png").read_bytes()
    )
    with pytest.raises(SpecError, match="has class folders without any image: 'empty'"):
        load_task("image-folder", {"folder": "flat"}, device="cpu")
    with pytest.raises(SpecError, match=r"task.options.folder must name a folder under the data root"):
        load_task("image-folder", {"folder": "book.txt"}, device="cpu")


# --- text ---------------------------------------------------------------------------------------------


def test_text_sequences_are_shifted_bytes_sharing_one_tensor(root: Path) -> None:
    data = (root / "book.txt").read_bytes()
    task = load_task("text-transformer", {"file": "book.txt", "context": 16}, device="cpu")
    assert isinstance(task.train, TensorData) and task.tokens_per_example == 16
    n_train_bytes = len(data) - math.ceil(len(data) * 0.1)
    assert task.n_train == (n_train_bytes - 1) // 16
    assert task.train.x[1].tolist() == list(data[16:32]) and task.train.y[1].tolist() == list(data[17:33])
    tail = data[n_train_bytes:]  # the test text is the file's last tenth
    assert task.test.x[0].tolist() == list(tail[:16]) and task.n_test == (len(tail) - 1) // 16
    # inputs and targets are views of one uint8 tensor: (n, 17) bytes per split on the device
    assert task.train.x.dtype == torch.uint8
    assert task.device_bytes == task.n_train * 17 + task.n_test * 17


def test_text_model_is_causal(root: Path) -> None:
    task = load_task("text-transformer", {"file": "book.txt", "context": 16, "width": 32}, device="cpu")
    model = task.build_model().eval()
    x = task.train.x[:2].clone()
    changed = x.clone()
    changed[:, 9] += 1  # uint8: wraps at 256
    with torch.no_grad():
        before, after = model(x), model(changed)
    assert before.shape == (2, 16, 256)
    assert torch.allclose(before, model.train()(x), atol=1e-5)  # no-grad inference path, same function
    assert torch.equal(before[:, :9], after[:, :9]) and not torch.equal(before[:, 9:], after[:, 9:])


def test_text_refusals_name_the_option(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (root / "binary.txt").write_bytes(b"plain text then \xff\xfe binary")
    with pytest.raises(SpecError) as info:
        load_task("text-transformer", {"file": "binary.txt"}, device="cpu")
    assert str(info.value) == (
        "task.options.file must be UTF-8 text; byte 16 is not (task text-transformer), got file='binary.txt'"
    )
    # read in chunks that split characters: the offset is still the file's
    from schedules.tasks import text

    monkeypatch.setattr(text, "_CHUNK", 4)
    data = "é€".encode() * 3 + b"\xfe"
    (root / "split.txt").write_bytes(data)
    with pytest.raises(SpecError, match=r"byte 15 is not"):
        load_task("text-transformer", {"file": "split.txt"}, device="cpu")
    with pytest.raises(UnicodeDecodeError) as python:
        data.decode()
    assert python.value.start == 15
    (root / "short.txt").write_text("tiny")
    with pytest.raises(
        SpecError, match=r"task.options.file leaves 3 bytes for the training text, fewer than one"
    ):
        load_task("text-transformer", {"file": "short.txt", "context": 8}, device="cpu")


# --- training: the trainer and `schedsearch train` ---------------------------------------------------------

TASKS = [
    ("tabular-mlp", {"file": "iris.csv", "hidden": 16}, 0.5),
    ("image-folder", {"folder": "stripes", "width": 8, "image_size": 12}, 0.05),
    ("text-transformer", {"file": "book.txt", "context": 32, "width": 32, "layers": 1, "heads": 2}, 0.5),
]


def _spec(name: str, options: dict[str, Any], *, lr0: float, epochs: int, **extra: Any) -> TrialSpec:
    return TrialSpec.from_json(
        {
            "task": {"name": name, "options": options},
            "optimizer": {"name": "nshb", "momentum": 0.9},
            "schedule": {
                "batch_size": {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 1},
                "lr": {"family": "constant", "lr0": lr0},
            },
            "budget": {"max_epochs": epochs},
            "seed": 0,
            **extra,
        }
    )


@pytest.mark.parametrize(("name", "options", "lr0"), TASKS)
def test_trains_through_the_trainer_and_the_streamed_path_matches(
    root: Path, name: str, options: dict[str, Any], lr0: float
) -> None:
    result = train(_spec(name, options, lr0=lr0, epochs=3), device="cpu")
    n = load_task(name, options, device="cpu").n_train
    assert [r.sfo for r in result.records] == [n, 2 * n, 3 * n]
    assert [r.batch_size for r in result.records] == [min(b, n) for b in (8, 16, 32)]  # clipped to n
    assert result.records[-1].full_loss < result.records[0].full_loss  # it learns
    assert all(r.test_acc is not None and 0 <= r.test_acc <= 1 for r in result.records)
    streamed = train(_spec(name, {**options, "stream": True}, lr0=lr0, epochs=3), device="cpu")
    assert [r.full_loss for r in streamed.records] == pytest.approx([r.full_loss for r in result.records])
    assert streamed.task_bytes == 0 and result.task_bytes > 0


@pytest.mark.parametrize(("name", "options", "lr0"), TASKS)
def test_trains_through_schedsearch_train(
    root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    options: dict[str, Any],
    lr0: float,
) -> None:
    out = tmp_path / "result.json"
    argv = ["train", "--task", name, "--epochs", "2", "--batch-size", "16", "--lr0", str(lr0)]
    for key, value in options.items():
        argv += ["--task-option", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    assert main([*argv, "--no-progress", "--json", str(out)]) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "per-epoch metrics" in captured.out
    result = json.loads(out.read_text())
    assert result["spec"]["task"] == {"name": name, "options": options}
    records = result["records"]
    n = load_task(name, options, device="cpu").n_train
    assert [r["sfo"] for r in records] == [n, 2 * n]
    if name == "text-transformer":
        # SFO counts sequences; tokens = SFO x context beside it
        assert [r["tokens"] for r in records] == [n * 32, 2 * n * 32]
        assert result["summary"]["total_tokens"] == 2 * n * 32
    else:
        assert all(r["tokens"] is None for r in records)


def test_schedsearch_train_reports_a_data_problem_in_one_line(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--task", "tabular-mlp", "--task-option", "file=absent.csv", "--no-progress"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "task.options.file must name a file under the data root; there is none" in err
    assert "Traceback" not in err


@pytest.mark.gpu
def test_generic_tasks_and_augmentation_train_on_cuda(root: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    for name, options, lr0 in [*TASKS, ("image-folder", {"folder": "stripes", "augment": True}, 0.05)]:
        task = load_task(name, options, device="cuda")
        assert isinstance(task.train, TensorData) and task.train.x.is_cuda, name
        result = train(_spec(name, options, lr0=lr0, epochs=2), device=None)
        assert result.device.startswith("cuda") and len(result.records) == 2, name
        assert all(math.isfinite(r.grad_norm) for r in result.records), name
        faithful = train(_spec(name, options, lr0=lr0, epochs=1, grad_norm_mode="faithful"), device=None)
        assert faithful.summary.initial_grad_norm is not None, name
