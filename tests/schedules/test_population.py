"""The population trainer: every member gets the numbers it gets alone.

Exact: a member's batch sizes, LRs, steps, SFO, measurement SFO, epochs and status equal its single-trial
run (``schedules.trainer.train``), and with one member (or ``engine="plain"``) every number is bit for bit the
same. Within ``REL_TOL``: the fused engine's losses and gradient norms (batched kernels sum in another order,
about 1e-6 of a gradient per step); accuracies within ``ACC_SLACK`` examples of the test set. The differences
in these runs are orders of magnitude below the tolerance, which leaves room for other CPUs' kernels.

A run that amplifies rounding differs by as much as it amplifies it: the tiny ResNet-18 on random
CIFAR-shaped data drifts by percents within two epochs, and so does the single trainer when noise of that size
is added to its own gradients. Its case here is one epoch at a small LR, before that growth.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from schedules.fused import FuseRefused, plan_round
from schedules.metrics import EpochRecord
from schedules.population import train_population
from schedules.spec import SpecError, TrialSpec
from schedules.trainer import TrialResult, train
from tests.support.datafiles import tabular_arrays, write_cifar10, write_image_folder, write_npz, write_text

REL_TOL = 1e-4
ACC_SLACK = 2  # test examples whose prediction may flip
EXACT = ("epoch", "step", "sfo", "lr", "batch_size", "measure_sfo", "grad_norm_subset", "tokens")
CLOSE = ("train_loss", "full_loss", "grad_norm", "test_loss")


def _spec(
    task: str,
    options: dict[str, Any],
    batch: dict[str, Any],
    lr: dict[str, Any] | None = None,
    **extra: Any,
) -> TrialSpec:
    d: dict[str, Any] = {
        "task": {"name": task, "options": options},
        "optimizer": {"name": "nshb", "momentum": 0.9},
        "schedule": {"batch_size": batch, "lr": lr or {"family": "constant", "lr0": 0.1}},
        "budget": {"max_epochs": 3, "max_sfo": None},
        "seed": 0,
    }
    d.update(extra)
    return TrialSpec.from_json(d)


def _members(
    task: str, options: dict[str, Any], b0: int, lr0: float, *, cut: int | None = None
) -> list[TrialSpec]:
    """Four members that differ in everything a member may: batch plan (so sizes differ within a round and
    epochs end at different steps), LR family, optimizer and momentum, seed, budget (``cut``: the fourth
    member's SFO budget), gradient-norm mode."""
    return [
        _spec(
            task,
            options,
            {"family": "exp_growth", "b0": b0, "factor": 2.0, "interval": 1},
            {"family": "constant", "lr0": lr0},
        ),
        _spec(
            task,
            options,
            {"family": "constant", "b0": b0},
            {"family": "linear", "lr0": 2 * lr0},
            optimizer={"name": "shb", "momentum": 0.5},
            seed=1,
        ),
        _spec(
            task,
            options,
            {"family": "constant", "b0": b0},
            {"family": "cosine", "lr0": lr0},
            optimizer={"name": "sgd", "momentum": 0.0},
            seed=2,
            grad_norm_mode="faithful",
        ),
        _spec(
            task,
            options,
            {"family": "constant", "b0": 2 * b0},
            {"family": "constant", "lr0": lr0},
            seed=3,
            budget={"max_epochs": 3, "max_sfo": cut},
        ),
    ]


def _numbers(records: tuple[EpochRecord, ...]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.to_json().items() if k != "wall_s"} for r in records]


def _summary(result: TrialResult) -> dict[str, Any]:
    return {k: v for k, v in result.to_json()["summary"].items() if k != "wall_s"}


def assert_same_as_alone(member: TrialResult, alone: TrialResult, n_test: int) -> float:
    """The member's exact fields equal, the rest within the tolerance; returns the largest relative
    difference seen."""
    assert (member.summary.status, member.summary.stop_reason) == (
        alone.summary.status,
        alone.summary.stop_reason,
    )
    assert len(member.records) == len(alone.records)
    worst = 0.0
    for mine, theirs in zip(member.records, alone.records, strict=True):
        for name in EXACT:
            assert getattr(mine, name) == getattr(theirs, name), name
        for name in CLOSE:
            a, b = getattr(mine, name), getattr(theirs, name)
            if not math.isfinite(b):
                assert not math.isfinite(a), name
                continue
            assert a == pytest.approx(b, rel=REL_TOL), name
            worst = max(worst, abs(a - b) / max(abs(b), 1e-12))
        if theirs.test_acc is None:
            assert mine.test_acc is None
        else:
            assert mine.test_acc is not None
            assert abs(mine.test_acc - theirs.test_acc) <= ACC_SLACK / n_test + 1e-12
    return worst


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    x, y_class, _ = tabular_arrays()
    write_npz(root / "table.npz", x, y_class)
    write_image_folder(root / "stripes")
    write_text(root / "book.txt")
    write_cifar10(root)
    monkeypatch.setenv("SCHEDSEARCH_DATA_ROOT", str(root))
    monkeypatch.setenv("SCHEDSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    return root


# Every built-in task the population trainer fuses, small: (task, options, b0, lr0, epochs).
BUILTIN = [
    ("digits-mlp", {"hidden": 32}, 16, 0.1, 3),
    ("digits-cnn", {"channels": 4}, 16, 0.03, 3),
    ("synthetic-logreg", {"n": 512, "n_test": 128}, 16, 0.5, 3),
    ("cifar10-resnet18", {"width": 2, "subset": 64}, 8, 0.002, 1),
    ("tabular-mlp", {"file": "table.npz", "hidden": 16}, 8, 0.2, 3),
    ("image-folder", {"folder": "stripes", "width": 4, "image_size": 12}, 4, 0.05, 3),
    (
        "text-transformer",
        {"file": "book.txt", "context": 16, "width": 16, "layers": 1, "heads": 2},
        8,
        0.3,
        3,
    ),
]


@pytest.mark.parametrize(("task", "options", "b0", "lr0", "epochs"), BUILTIN, ids=[t[0] for t in BUILTIN])
def test_every_member_gets_its_single_trial_numbers(
    data_root: Path, task: str, options: dict[str, Any], b0: int, lr0: float, epochs: int
) -> None:
    from schedules.tasks.runtime import load_task

    loaded = load_task(task, options, device="cpu")
    n = loaded.n_train
    cut = n + n // 2 if epochs > 1 else n // 2  # the fourth member's budget ends within an epoch
    specs = [
        TrialSpec.from_json({**s.to_json(), "budget": {**s.to_json()["budget"], "max_epochs": epochs}})
        for s in _members(task, options, b0, lr0, cut=cut)
    ]
    alone = [train(spec, device="cpu") for spec in specs]
    # no limit on a fused call's size: every group is fused (the CPU default runs big ones member by member)
    together = train_population(specs, device="cpu", engine="fused", fuse_flops=1e18)
    assert together[3].summary.stop_reason == "max_sfo"
    for member, single in zip(together, alone, strict=True):
        assert_same_as_alone(member, single, loaded.n_test)


def test_one_member_is_the_single_trainer_bit_for_bit() -> None:
    spec = _spec(
        "digits-mlp",
        {"hidden": 32},
        {
            "family": "adaptive",
            "b0": 16,
            "factor": 2.0,
            "lr_factor": 1.0,
            "eps0": 1e9,
            "check_every": 5,
            "b_max": 64,
        },
    )
    seen: list[tuple[int, EpochRecord]] = []
    (member,) = train_population([spec], lambda i, r: seen.append((i, r)), device="cpu")
    alone = train(spec, device="cpu")
    assert _numbers(member.records) == _numbers(alone.records)
    assert _summary(member) == _summary(alone)
    assert seen == [(0, r) for r in member.records]


@pytest.mark.parametrize("stream", [False, True])
def test_plain_engine_packs_members_bit_for_bit(stream: bool) -> None:
    options = {"hidden": 32, "stream": stream}
    specs = _members("digits-mlp", options, 16, 0.1)[:3]
    packed = train_population(specs, device="cpu", engine="plain")
    for member, spec in zip(packed, specs, strict=True):
        assert _numbers(member.records) == _numbers(train(spec, device="cpu").records)


def test_a_streamed_task_is_packed_unfused_or_refused_by_name() -> None:
    specs = _members("digits-mlp", {"hidden": 32, "stream": True}, 16, 0.1)[:2]
    auto = train_population(specs, device="cpu")  # auto: streamed data are packed with the plain engine
    assert _numbers(auto[1].records) == _numbers(train(specs[1], device="cpu").records)
    with pytest.raises(FuseRefused, match=r"task 'digits-mlp' streams its data \(stream: true\)"):
        train_population(specs, device="cpu", engine="fused")


def test_a_diverging_member_stops_alone() -> None:
    good = _members("digits-mlp", {"hidden": 32}, 16, 0.1)[:2]
    hot = _spec(
        "digits-mlp",
        {"hidden": 32},
        {"family": "constant", "b0": 16},
        {"family": "constant", "lr0": 1e30},
        seed=7,
    )
    together = train_population([good[0], hot, good[1]], device="cpu", engine="fused")
    assert together[1].summary.status == "diverged" and len(together[1].records) == 1
    for member, spec in zip((together[0], together[2]), good, strict=True):
        assert member.summary.status == "completed" and len(member.records) == 3
        assert_same_as_alone(member, train(spec, device="cpu"), 450)


def test_members_stop_and_report_one_by_one() -> None:
    specs = _members("digits-mlp", {"hidden": 32}, 16, 0.1)[:3]
    seen: dict[int, list[EpochRecord]] = {0: [], 1: [], 2: []}
    together = train_population(
        specs,
        lambda i, record: seen[i].append(record),
        device="cpu",
        should_stop=lambda i: i == 1 and len(seen[1]) == 2,  # member 1 is stopped after its second epoch
    )
    assert [len(r.records) for r in together] == [3, 2, 3]
    assert together[1].summary.status == "stopped"
    assert all(seen[i] == list(together[i].records) for i in seen)


@pytest.mark.parametrize("forward", ["vmap", "member"])
def test_the_generic_forwards_agree_with_the_batched_matmuls(forward: str) -> None:
    specs = _members("digits-mlp", {"hidden": 32}, 16, 0.1)[:3]
    fast = train_population(specs, device="cpu", engine="fused")
    other = train_population(specs, device="cpu", engine="fused", forward=forward)
    for a, b in zip(fast, other, strict=True):
        assert_same_as_alone(b, a, 450)


def test_members_of_different_tasks_are_refused() -> None:
    a = _spec("digits-mlp", {"hidden": 32}, {"family": "constant", "b0": 16})
    b = _spec("digits-mlp", {"hidden": 16}, {"family": "constant", "b0": 16})
    with pytest.raises(
        SpecError,
        match=r"specs\[1\].task must be member 0's task \('digits-mlp' with options \{'hidden': 32\}\)",
    ):
        train_population([a, b], device="cpu")
    with pytest.raises(SpecError, match="at least one trial spec"):
        train_population([], device="cpu")
    with pytest.raises(ValueError, match="engine must be one of auto, fused, plain, got engine='fast'"):
        train_population([a], device="cpu", engine="fast")


def test_a_retired_member_gives_its_rows_and_module_back() -> None:
    import torch

    from schedules.fused import FusedEngine
    from schedules.loop import Step
    from schedules.tasks.runtime import load_task

    task = load_task("digits-mlp", {"hidden": 8}, device="cpu")
    engine = FusedEngine(task, _members("digits-mlp", {"hidden": 8}, 16, 0.1)[:3])
    before = engine.flat[[0, 2]].clone()
    engine.retire(1)
    perm = torch.randperm(task.n_train)
    engine.step([(0, Step(perm, 0, 16, 0.0)), (2, Step(perm, 0, 16, 0.0))])  # LR 0: nothing moves
    assert engine.rows == [0, 2] and engine.flat.shape[0] == 2 and sorted(engine.models) == [0, 2]
    assert torch.equal(engine.flat, before)  # the others' rows kept exactly


def test_the_population_trainer_imports_no_ray() -> None:
    import subprocess
    import sys

    code = "import sys, schedules.population; print('ray' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


# --- the round plan: which rows share a fused call ----------------------------------------------------

FLOPS = 1e4  # forward FLOPs per example
COSTS = {"flops": FLOPS, "overhead": 1e6, "limit": 1e8}


@pytest.mark.parametrize(
    ("sizes", "pad", "expected"),
    [
        ((8, 8, 8, 8), False, [([0, 1, 2, 3], 8)]),  # one size: one call
        ((8, 16, 8, 0), False, [([0, 2], 8), ([1], 16)]),  # exact sizes only; row 3 does not step
        ((8, 16, 8, 0), True, [([0, 1, 2, 3], 16)]),  # padded: one call over every row beats two
        ((8, 16, 8, 1000), True, [([0, 1, 2], 16), ([3], 1000)]),  # padding 8 -> 1000 costs more than a call
        ((5000, 5000, 5000), False, [([0, 1], 5000), ([2], 5000)]),  # 3 x 5e7 FLOPs > limit: split 2 + 1
    ],
)
def test_plan_round(sizes: tuple[int, ...], pad: bool, expected: list[tuple[list[int], int]]) -> None:
    assert plan_round(sizes, pad=pad, alone=False, **COSTS) == expected


def test_plan_round_alone_runs_each_stepping_row_by_itself() -> None:
    assert plan_round((8, 0, 16), pad=True, alone=True, **COSTS) == [([0], 8), ([2], 16)]
