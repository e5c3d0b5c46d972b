"""The paper importer, the run grid presets and the scaled strategies."""

from __future__ import annotations

import math
from typing import Any

import pytest

from schedules.paper import PRESETS, from_paper_config, paper_configs, paper_strategies
from schedules.spec import Horizon, SpecError, batch_plan, lr_plan, parse_batch, total_steps
from schedules.theory import check

CIFAR = Horizon(epochs=300, n_train=50_000)

# An official-style config (keys of the paper's json_nshb/ files)
WARMUP_CFG = {
    "optimizer": "nshb",
    "bs_method": "exp_growth",
    "lr_method": "warmup_const",
    "init_bs": 8,
    "init_lr": 0.1,
    "init_beta": 0.87,
    "lr_max": 1.0,
    "lr_min": 0.0,
    "epochs": 300,
    "incr_interval": 30,
    "warmup_epochs": 30,
    "warmup_interval": 3,
    "bs_growth_rate": 2.0,
    "lr_growth_rate": None,
    "power": 2.0,
    "bs_max": None,
    "model": "resnet18",
}


def test_importer_maps_every_key() -> None:
    spec = from_paper_config(WARMUP_CFG)
    assert spec.to_json() == {
        "task": {"name": "cifar100-resnet18", "options": {}},
        "optimizer": {"name": "nshb", "momentum": 0.87},
        "schedule": {
            "batch_size": {
                "family": "exp_growth",
                "b0": 8,
                "factor": 2.0,
                "interval": 30,
                "b_max": None,
                "rounding": "official",  # an imported run rounds as the official code does
            },
            "lr": {
                "family": "warmup_const",
                "lr0": 0.1,
                "lr_max": 1.0,
                "warmup_epochs": 30,
                "warmup_interval": 3,
            },
        },
        "budget": {"max_epochs": 300, "max_sfo": None},
        "target": {"grad_norm": None, "stop_at_target": False},
        "seed": 0,
        "grad_norm_mode": "faithful",
    }


@pytest.mark.parametrize(
    ("patch", "lr"),
    [
        ({"lr_method": "poly", "power": 3.0}, {"family": "poly", "lr0": 0.1, "power": 3.0}),  # power kept
        (
            {"lr_method": "cosine", "lr_min": 0.001},
            {"family": "cosine", "lr0": 0.1, "lr_min": 0.001},
        ),  # lr_min
        # exp_growth with both lr_max and a growth rate: the affine form keeps both
        (
            {"lr_method": "exp_growth", "lr_growth_rate": 1.2},
            {"family": "exp_growth", "lr0": 0.1, "interval": 30, "lr_max": 1.0, "factor": 1.2},
        ),
        (
            {"lr_method": "warmup_cosine", "lr_min": 0.01},
            {
                "family": "warmup_cosine",
                "lr0": 0.1,
                "lr_max": 1.0,
                "warmup_epochs": 30,
                "warmup_interval": 3,
                "lr_min": 0.01,
            },
        ),
    ],
)
def test_importer_lr_methods(patch: dict[str, Any], lr: dict[str, Any]) -> None:
    assert from_paper_config({**WARMUP_CFG, **patch}).schedule.lr.to_json() == lr


def test_importer_optimizer_forms_and_errors() -> None:
    cfg = {k: v for k, v in WARMUP_CFG.items() if k != "optimizer"}
    assert from_paper_config({**cfg, "nshb": False}).optimizer.name == "shb"  # the boolean form
    assert from_paper_config({**WARMUP_CFG, "optimizer": "sgd"}).optimizer.momentum == 0.0
    with pytest.raises(SpecError) as info:
        from_paper_config({**WARMUP_CFG, "optimizer": "adam"})
    assert info.value.field == "optimizer"
    with pytest.raises(SpecError, match="lr_method must be one of"):
        from_paper_config({**WARMUP_CFG, "lr_method": "onecycle"})
    with pytest.raises(SpecError) as info:
        from_paper_config({**WARMUP_CFG, "incr_intervall": 30})  # a typo is not silently dropped
    assert info.value.field == "incr_intervall"
    assert (
        from_paper_config({**WARMUP_CFG, "incr_intervall": 30}, ignore_unknown=True).budget.max_epochs == 300
    )
    with pytest.raises(SpecError) as info:
        from_paper_config({**WARMUP_CFG, "init_bs": None})
    assert info.value.field == "init_bs"


# The official code's formulas (yuichikondo09/sgdm_lr_bs_schedule, utils/get_lr_scheduler.py and
# get_bs_scheduler.py), written out independently so the importer is checked against them, not against itself.
def _official_warmup_lr(cfg: dict[str, Any], epoch: int) -> float:
    lr0, rate = cfg["init_lr"], cfg["lr_growth_rate"]
    big_w, w = cfg["warmup_epochs"], cfg["warmup_interval"]
    k = epoch // w if epoch < big_w else (big_w - w) // w
    return float(lr0 * rate**k)


def _official_batch(cfg: dict[str, Any], epoch: int) -> int:
    return math.ceil(cfg["init_bs"] * cfg["bs_growth_rate"] ** (epoch // cfg["incr_interval"]))


GROWTH_RATE_CFG = {
    "optimizer": "nshb",
    "init_beta": 0.9,
    "bs_method": "exp_growth",
    "init_bs": 8,
    "bs_growth_rate": 2.0,
    "incr_interval": 30,
    "lr_method": "warmup_const",
    "init_lr": 0.1,
    "lr_max": 1.0,
    "lr_growth_rate": 1.2,
    "warmup_epochs": 30,
    "warmup_interval": 3,
    "epochs": 300,
}


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0, 0.1),  # warm-up starts at init_lr
        (3, 0.12),  # one plateau: x1.2 (lr_max=1.0 does not set the factor)
        (6, 0.144),  # two plateaus
        (27, 0.515978),  # the last plateau: 0.1 * 1.2^9, not lr_max=1.0
        (30, 0.515978),  # after the warm-up the LR stays at the last plateau
        (299, 0.515978),
    ],
)
def test_warmup_growth_rate_wins_over_lr_max(epoch: int, expected: float) -> None:
    spec = from_paper_config(GROWTH_RATE_CFG)
    lr = lr_plan(spec.schedule, CIFAR)[epoch]
    assert lr == pytest.approx(expected, rel=1e-6)
    assert lr == pytest.approx(_official_warmup_lr(GROWTH_RATE_CFG, epoch), rel=1e-12)


@pytest.mark.parametrize("method", ["warmup_const", "warmup_cosine"])
def test_warmup_growth_rate_matches_the_official_formula_every_epoch(method: str) -> None:
    cfg = {**GROWTH_RATE_CFG, "lr_method": method, "lr_min": 0.0}
    lrs = lr_plan(from_paper_config(cfg).schedule, CIFAR)
    for e in range(30):
        assert lrs[e] == pytest.approx(_official_warmup_lr(cfg, e), rel=1e-12), e
    if method == "warmup_cosine":  # then cosine from the grown peak (not from lr_max) to lr_min
        peak = _official_warmup_lr(cfg, 30)
        assert lrs[165] == pytest.approx(peak * (1 + math.cos(math.pi * 135 / 270)) / 2, rel=1e-12)


def test_warmup_growth_rate_with_a_partial_last_plateau_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        from_paper_config({**GROWTH_RATE_CFG, "warmup_epochs": 10, "warmup_interval": 3})
    assert info.value.field == "warmup_epochs"
    assert "multiple of warmup_interval=3" in str(info.value)


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0, 100),  # b0
        (30, 111),  # ceil(100 * 1.1) = ceil(110.00000000000001): the official float rounding
        (60, 122),  # ceil(100 * 1.21...) = 122, not 121
        (90, 134),
    ],
)
def test_imported_batch_sizes_round_as_the_official_code(epoch: int, expected: int) -> None:
    cfg = {**GROWTH_RATE_CFG, "init_bs": 100, "bs_growth_rate": 1.1}
    plan = batch_plan(from_paper_config(cfg).schedule, CIFAR)
    assert plan[epoch] == expected == _official_batch(cfg, epoch)
    assert plan == [_official_batch(cfg, e) for e in range(300)]


def test_native_exp_growth_keeps_the_clean_rounding() -> None:
    # The native family (what a job spec writes) ignores float noise: 100 * 1.1 is 110.
    native = parse_batch({"family": "exp_growth", "b0": 100, "factor": 1.1, "interval": 30})
    assert [native.at(e, CIFAR) for e in (0, 30, 60)] == [100, 110, 121]
    assert "rounding" not in native.to_json()  # the default is left out of the JSON form


@pytest.mark.parametrize(
    ("keys", "task"),
    [
        ({}, "cifar100-resnet18"),  # the official code trains CIFAR-100
        ({"dataset": "cifar10"}, "cifar10-resnet18"),
        ({"dataset": "CIFAR-100", "model": "resnet18"}, "cifar100-resnet18"),
    ],
)
def test_importer_maps_dataset_and_model(keys: dict[str, Any], task: str) -> None:
    assert from_paper_config({**GROWTH_RATE_CFG, **keys}).task.name == task


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ({"model": "resnet34"}, "model"),  # was silently trained as ResNet-18
        ({"model": "WideResNet28_10"}, "model"),
        ({"dataset": "imagenet"}, "dataset"),
    ],
)
def test_importer_refuses_models_and_datasets_it_has_no_task_for(keys: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        from_paper_config({**GROWTH_RATE_CFG, **keys})
    assert info.value.field == field
    assert "has no task here" in str(info.value)
    # an explicit task replaces the config's model/dataset choice
    assert from_paper_config({**GROWTH_RATE_CFG, **keys}, task="digits-mlp").task.name == "digits-mlp"


def test_grid_is_complete() -> None:
    names = set(PRESETS)
    # (i), (ii): five LR methods each; (iii), (iv): three lr_max each; SHB has two starting LRs
    assert len([n for n in names if n.startswith("paper/nshb/")]) == 5 + 5 + 3 + 6
    assert len([n for n in names if n.startswith("paper/shb/")]) == 5 + 5 + 6 + 12
    assert len([n for n in names if n.startswith("paper/tiny-imagenet/")]) == 5 + 2 + 1 + 3
    assert set(paper_configs()) == names
    assert all(p.task.name == "cifar100-resnet18" for n, p in PRESETS.items() if "tiny" not in n)
    assert all(p.budget.max_epochs == 300 for p in PRESETS.values())


@pytest.mark.parametrize(
    ("name", "momentum", "lr0", "lr_max"),
    [
        ("paper/nshb/iv/warmup_const-1.0", 0.87, 0.1, 1.0),  # 10x growth uses beta = 0.87
        ("paper/nshb/iii/exp_growth-0.5", 0.9, 0.1, 0.5),  # 5x keeps 0.9
        ("paper/shb/iii/exp_growth-0.1", 0.87, 0.01, 0.1),  # SHB from 0.01, 10x
        ("paper/shb/iv/warmup_cosine-0.2", 0.9, 0.1, 0.2),  # SHB from 0.1, 2x
        ("paper/tiny-imagenet/nshb/iv/warmup_const-0.5", 0.87, 0.1, 0.5),  # Tiny-ImageNet keeps 0.87
    ],
)
def test_growth_presets(name: str, momentum: float, lr0: float, lr_max: float) -> None:
    p = PRESETS[name]
    assert p.optimizer.momentum == momentum
    lrs = lr_plan(p.schedule, CIFAR)
    assert (lrs[0], max(lrs)) == (pytest.approx(lr0), pytest.approx(lr_max))


def test_presets_reproduce_paper_stage_values() -> None:
    plan = batch_plan(PRESETS["paper/nshb/ii/cosine"].schedule, CIFAR)
    assert plan[::30] == [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    assert total_steps(PRESETS["paper/nshb/i/cosine"].schedule, CIFAR) == 117_300
    tiny = PRESETS["paper/tiny-imagenet/nshb/iii/exp_growth-1.0"].schedule
    assert batch_plan(tiny, Horizon(epochs=300, n_train=100_000))[::30] == [
        8,
        10,
        14,
        22,
        38,
        70,
        134,
        261,
        516,
        1024,
    ]
    # the one Tiny-ImageNet config without bs_max
    assert (
        PRESETS["paper/tiny-imagenet/nshb/iv/warmup_cosine-1.0"].schedule.batch_size.to_json()["b_max"]
        is None
    )


def test_cifar_presets_pass_the_theory_check_except_constant_batch() -> None:
    for name, p in PRESETS.items():
        if "tiny" in name:
            continue
        report = check(p.schedule, optimizer=p.optimizer.name, momentum=p.optimizer.momentum, horizon=CIFAR)
        assert report.violations == (), name
        assert report.converges_guaranteed is (report.strategy != "i"), name


@pytest.mark.parametrize(
    ("max_epochs", "interval", "warmup", "w"),
    [
        (300, 30, 30, 3),  # the paper's own budget
        (30, 3, 10, 1),  # ten stages, ten warm-up plateaus of one epoch
        (5, 1, 5, 1),  # shorter than ten stages: one epoch per stage, warm-up capped at the budget
    ],
)
def test_paper_strategies_scaling(max_epochs: int, interval: int, warmup: int, w: int) -> None:
    s = paper_strategies(max_epochs=max_epochs)
    assert list(s) == ["paper-i", "paper-ii", "paper-iii", "paper-iv"]
    assert s["paper-ii"].batch_size.to_json()["interval"] == interval
    iv = s["paper-iv"].lr.to_json()
    assert (iv["warmup_epochs"], iv["warmup_interval"], iv["lr_max"]) == (warmup, w, 0.5)
    strategies = [
        check(x, optimizer="nshb", momentum=0.9, max_epochs=max_epochs).strategy for x in s.values()
    ]
    assert strategies == ["i", "ii", "iii", "warmup"]


def test_paper_strategies_guaranteed_at_30_epochs_and_shb_lr() -> None:
    for sched in paper_strategies(max_epochs=30).values():
        report = check(sched, optimizer="nshb", momentum=0.9, max_epochs=30)
        assert report.violations == ()
    shb = paper_strategies(max_epochs=30, optimizer="shb")
    assert shb["paper-iv"].lr.to_json()["lr0"] == 0.01  # SHB(0.01, 0.9) == NSHB(0.1, 0.9)
    with pytest.raises(SpecError):
        paper_strategies(max_epochs=30, optimizer="adam")
