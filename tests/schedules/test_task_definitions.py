"""Task definitions and the catalogue (torch-free): option checks, n_train without loading, entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schedules.spec import SpecError
from schedules.tasks import TaskUnavailable, catalogue
from schedules.tasks.builtin import DIGITS_MLP, SYNTHETIC_LOGREG
from schedules.tasks.definition import DATA_ROOT_ENV, DATA_ROOT_OPTION, Option, TaskDefinition
from schedules.tasks.registry import ENTRY_POINT_GROUP, discover

BUILT_IN = ("cifar10-resnet18", "cifar100-resnet18", "digits-cnn", "digits-mlp", "synthetic-logreg")


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        (Option("k", "int", 1, "", minimum=0), 30.0, 30),  # an integral float is an integer
        (Option("k", "float", 1.0, ""), 3, 3.0),  # an integer is a number
        (Option("k", "int", None, "", nullable=True), None, None),  # null where allowed
        (Option("k", "str", "a", "", choices=("a", "b")), "b", "b"),  # one of the choices
        (Option("k", "path", None, "", nullable=True), "cifar/train", "cifar/train"),  # relative path
        (Option("k", "path", None, "", nullable=True, absolute_ok=True), "/srv/data", "/srv/data"),
    ],
)
def test_valid_option_values(option: Option, value: Any, expected: Any) -> None:
    assert option.check(value, task="t") == expected


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        # a bool is not an integer
        (
            Option("k", "int", 1, "", minimum=0, maximum=8),
            True,
            "task.options.k must be an integer in [0, 8] for task t, got k=True",
        ),
        # below the minimum
        (
            Option("k", "int", 1, "", minimum=1),
            0,
            "task.options.k must be an integer >= 1 for task t, got k=0",
        ),
        # NaN is not a number here
        (
            Option("k", "float", 1.0, ""),
            float("nan"),
            "task.options.k must be a number for task t, got k=nan",
        ),
        # null where not allowed
        (
            Option("k", "float", 1.0, "", maximum=2),
            None,
            "task.options.k must be a number <= 2 for task t, got k=None",
        ),
        # not one of the choices
        (
            Option("k", "str", "a", "", choices=("a", "b")),
            "c",
            "task.options.k must be one of 'a', 'b' for task t, got k='c'",
        ),
        # a path that climbs out of the data root
        (
            Option("k", "path", None, "", nullable=True),
            "../etc",
            "task.options.k must not contain '..' (task t "
            "reads its data under the data root), got k='../etc'",
        ),
        # an absolute path where only relative ones are allowed
        (
            Option("k", "path", None, "", nullable=True),
            "/etc",
            "task.options.k must be a path relative to the "
            "data root (task t reads its data under the data root), got k='/etc'",
        ),
    ],
)
def test_invalid_option_values_name_the_field_the_value_and_what_is_valid(
    option: Option, value: Any, message: str
) -> None:
    with pytest.raises(SpecError) as info:
        option.check(value, task="t")
    assert str(info.value) == message
    assert info.value.field == "task.options.k"


def test_validate_fills_defaults_and_lists_the_options_of_an_unknown_key() -> None:
    assert DIGITS_MLP.validate({"hidden": 8}) == {
        "test_fraction": 0.25,
        "split_seed": 0,
        "hidden": 8,
        "depth": 1,
        "stream": False,
        "num_workers": 0,
        "grad_norm_subset": None,
    }
    with pytest.raises(SpecError) as info:
        DIGITS_MLP.validate({"width": 8})
    assert info.value.field == "task.options.width"
    assert "(valid: test_fraction, split_seed, hidden, depth, stream, num_workers, grad_norm_subset)" in str(
        info.value
    )


def test_one_set_of_bounds_hidden_is_capped_at_4096() -> None:
    assert DIGITS_MLP.validate({"hidden": 4096})["hidden"] == 4096
    with pytest.raises(SpecError, match=r"task.options.hidden must be an integer in \[1, 4096\]"):
        DIGITS_MLP.validate({"hidden": 4097})


def test_synthetic_refuses_data_that_cannot_fit() -> None:
    with pytest.raises(SpecError, match=r"task.options.d makes \(n \+ n_test\) \* d = 10,010,000,000 floats"):
        SYNTHETIC_LOGREG.validate({"n": 10_000_000, "n_test": 10_000, "d": 1000})


@pytest.mark.parametrize(
    ("name", "options", "n_train"),
    [
        ("digits-mlp", {}, 1347),  # 1797 - 450 test examples at test_fraction 0.25
        ("digits-cnn", {"test_fraction": 0.5}, 898),  # 1797 - ceil(898.5)
        ("synthetic-logreg", {"n": 512}, 512),  # n is the training set
        ("cifar100-resnet18", {}, 50_000),  # the full CIFAR training set
        ("cifar10-resnet18", {"subset": 1000}, 1000),  # a subset
        ("cifar10-resnet18", {"subset": 60_000}, 50_000),  # a subset larger than the set
    ],
)
def test_n_train_without_loading_data(name: str, options: dict[str, Any], n_train: int) -> None:
    assert catalogue().get(name).training_size(options) == n_train


def test_built_in_tasks_come_from_the_entry_point_group() -> None:
    installed = catalogue()
    assert set(BUILT_IN) <= set(installed.names)
    for name in BUILT_IN:
        assert installed.tasks[name].package is not None and installed.tasks[name].package.startswith(
            "schedsearch "
        )
    # the CIFAR tasks read under the data root, so they declare it (and get the data_root option)
    assert [n for n in BUILT_IN if installed.tasks[n].needs_data_root] == [
        "cifar10-resnet18",
        "cifar100-resnet18",
    ]
    assert "augment" in installed.tasks["cifar10-resnet18"].option_names
    assert installed.tasks["cifar10-resnet18"].options[0] == DATA_ROOT_OPTION


def test_unknown_task_lists_the_installed_ones() -> None:
    with pytest.raises(
        SpecError, match=r"task.name must be one of cifar10-resnet18, .*synthetic-logreg.*, got name='mnist'"
    ):
        catalogue().get("mnist")


@dataclass
class _Dist:
    name: str
    version: str


@dataclass
class _EntryPoint:
    """What the registry reads of an ``importlib.metadata.EntryPoint``."""

    name: str
    value: str
    dist: _Dist | None
    target: Any = None
    group: str = ENTRY_POINT_GROUP

    def load(self) -> Any:
        if isinstance(self.target, BaseException):
            raise self.target
        return self.target


GOOD = TaskDefinition(name="good", description="works", loader="pkg.loader:load")


def test_broken_plugins_are_kept_apart_with_their_package_and_reason() -> None:
    points = [
        _EntryPoint("good", "pkg.defs:GOOD", _Dist("good-pkg", "1.0"), GOOD),
        _EntryPoint(
            "crash", "crash.defs:X", _Dist("crash-pkg", "2.0"), ImportError("No module named 'torch'")
        ),
        _EntryPoint("thing", "thing.defs:X", _Dist("thing-pkg", "0.1"), object()),
        _EntryPoint("renamed", "pkg.defs:GOOD", _Dist("renamed-pkg", "0.1"), GOOD),
        _EntryPoint("twice", "a.defs:T", _Dist("a", "1"), TaskDefinition("twice", "a", "a.l:f")),
        _EntryPoint("twice", "b.defs:T", _Dist("b", "1"), TaskDefinition("twice", "b", "b.l:f")),
    ]
    found = discover(points)  # type: ignore[arg-type]
    assert found.names == ("good",) and found.tasks["good"].package == "good-pkg 1.0"
    assert {k: (v.package, v.error) for k, v in found.broken.items()} == {
        "crash": ("crash-pkg 2.0", "'crash.defs:X' does not load (ImportError: No module named 'torch')"),
        "renamed": ("renamed-pkg 0.1", "the entry point is named 'renamed' but its definition 'good'"),
        "thing": ("thing-pkg 0.1", "'thing.defs:X' is a object, not a TaskDefinition"),
        "twice": ("b 1", "two packages declare it (a 1 and b 1); uninstall one"),
    }
    with pytest.raises(TaskUnavailable) as info:
        found.get("crash")
    assert str(info.value) == (
        "task.name names a task that cannot be used here: its plugin (package crash-pkg 2.0) is broken: "
        "'crash.defs:X' does not load (ImportError: No module named 'torch'), got name='crash'"
    )


def test_definitions_are_checked_when_written() -> None:
    with pytest.raises(ValueError, match="loader must be 'module:function'"):
        TaskDefinition(name="x", description="d", loader="no_colon")
    with pytest.raises(ValueError, match="declares an option twice"):
        TaskDefinition(name="x", description="d", loader="m:f", options=(Option("a", "int", 1, ""),) * 2)
    # an invalid default
    with pytest.raises(SpecError, match=r"task\.options\.a must be an integer >= 2"):
        Option("a", "int", 1, "", minimum=2)


def test_catalogue_and_validation_import_no_torch(tmp_path: Path) -> None:
    # the generic tasks need a file name; under an empty data root their size is unknown (None)
    code = (
        "import sys\n"
        "from schedules.tasks import catalogue\n"
        "required = {'tabular-mlp': {'file': 'a.npz'}, 'image-folder': {'folder': 'a'},\n"
        "            'text-transformer': {'file': 'a.txt'}}\n"
        "for d in catalogue().tasks.values():\n"
        "    d.training_size(required.get(d.name, {}))\n"
        "print(','.join(sorted(m for m in ('torch', 'sklearn', 'numpy') if m in sys.modules)))\n"
    )
    env = {**os.environ, DATA_ROOT_ENV: str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, env=env
    )
    assert out.stdout.strip() == ""
