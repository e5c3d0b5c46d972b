"""Schedule-aware early stopping (``workers.stopping``) and its Tune adapter, as pure logic: rung placement
from a schedule's plan, the statistic, capping, divergence, and pruned (not completed) trials. No Ray
cluster: the adapter is driven with stand-in trial objects, Optuna with an in-memory study."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import optuna
import pytest

from schedules.spec import Horizon
from workers.search import ScheduleAwareScheduler, TolerantOptunaSearch, make_schedule_aware_scheduler
from workers.stopping import (
    CONTINUE,
    PLACEMENTS,
    ScheduleAwareStopping,
    ScheduleFacts,
    StoppingConfig,
    rungs_for,
    schedule_aware_config,
)

H = Horizon(epochs=10, n_train=1000)
GROW_X2_EVERY_3 = {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 3}
GROW_X2_EVERY_2 = {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 2}
CONST_BATCH = {"family": "constant", "b0": 32}
CONST_LR = {"family": "constant", "lr0": 0.1}
WARMUP = {"family": "warmup_const", "lr0": 0.1, "lr_max": 1.0, "warmup_epochs": 4, "warmup_interval": 1}


def _facts(batch: dict[str, Any], lr: dict[str, Any], horizon: Horizon = H) -> ScheduleFacts:
    return ScheduleFacts.from_schedule({"batch_size": batch, "lr": lr}, horizon)


# --- rung placement from the schedule's plan -------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "lr", "settle", "stages", "judged_from"),
    [
        # warm-up 0.1 -> 1.0, lr_max from epoch index 3: judged after 4 epochs; batch x2 at epochs 3, 6, 9
        (GROW_X2_EVERY_3, WARMUP, 4, (3, 6, 9), {"after_warmup": 4, "after_stage": 4, "sfo": 0}),
        # warm-up peaking at index 2 (W=3, w=1) while the next batch stage starts at 3: after_stage waits
        # one epoch into that stage (4), after_warmup only for the peak (3)
        (
            GROW_X2_EVERY_3,
            {**WARMUP, "warmup_epochs": 3},
            3,
            (3, 6, 9),
            {"after_warmup": 3, "after_stage": 4, "sfo": 0},
        ),
        # no LR rise: judged from the start under every placement; no stages for a constant batch
        (CONST_BATCH, CONST_LR, 0, (), {"after_warmup": 0, "after_stage": 0, "sfo": 0}),
        # an LR that grows to its cap in the last stage (iii): reaches lr_max at index 8, judged from 9
        (
            GROW_X2_EVERY_2,
            {"family": "exp_growth", "lr0": 0.1, "lr_max": 0.4, "interval": 2},
            9,
            (2, 4, 6, 8),
            {"after_warmup": 9, "after_stage": 9, "sfo": 0},
        ),
        # a batch clipped to n_train stops growing: stages only where the plan changes (300, 600, 1000)
        (
            {"family": "exp_growth", "b0": 300, "factor": 2.0, "interval": 1},
            CONST_LR,
            0,
            (1, 2),
            {"after_warmup": 0, "after_stage": 0, "sfo": 0},
        ),
        # adaptive: the trainer moves the stages, none known in advance
        ({"family": "adaptive", "b0": 8}, CONST_LR, 0, (), {"after_warmup": 0, "after_stage": 0, "sfo": 0}),
    ],
)
def test_facts_place_rungs_after_the_warmup_and_at_stage_boundaries(
    batch: dict[str, Any],
    lr: dict[str, Any],
    settle: int,
    stages: tuple[int, ...],
    judged_from: dict[str, int],
) -> None:
    facts = _facts(batch, lr)
    assert facts.settle_epoch == settle
    assert facts.stage_starts == stages
    assert {p: facts.judged_from(p) for p in PLACEMENTS} == judged_from


@pytest.mark.parametrize(
    ("batch", "lr", "epoch", "expected"),
    [
        (GROW_X2_EVERY_3, CONST_LR, 1, math.sqrt(8 / 64)),  # batch 8 now, 64 in the last epoch
        (GROW_X2_EVERY_3, CONST_LR, 10, 1.0),  # the last epoch projects onto itself
        (GROW_X2_EVERY_3, WARMUP, 4, math.sqrt(16 / 64)),  # LR at its peak: only the batch still grows
        (CONST_BATCH, CONST_LR, 3, 1.0),  # nothing changes: the norm is its own projection
        ({"family": "adaptive", "b0": 8}, CONST_LR, 3, 1.0),  # plan unknown: no projection
        (GROW_X2_EVERY_3, CONST_LR, 0, 1.0),  # before the first epoch: nothing to project
    ],
)
def test_projection_follows_the_noise_scale_lr_over_batch(
    batch: dict[str, Any], lr: dict[str, Any], epoch: int, expected: float
) -> None:
    assert _facts(batch, lr).projection(epoch) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("budget", "per_epoch", "rf", "expected"),
    [
        (40_410, 1_347, 3, (40_410 / 27, 40_410 / 9, 40_410 / 3)),  # ASHA's rungs, none under one epoch
        (8_000, 1_000, 2, (1_000, 2_000, 4_000)),
        (1_000, 1_000, 2, ()),  # one epoch of budget: no rung
    ],
)
def test_rungs_for(budget: float, per_epoch: float, rf: float, expected: tuple[float, ...]) -> None:
    assert rungs_for(budget, per_epoch, rf) == pytest.approx(expected)


# --- the statistic -----------------------------------------------------------------------------------


def _rec(epoch: int, norm: float | None, loss: float | None = 1.0, per_epoch: int = 1000) -> dict[str, Any]:
    return {"epoch": epoch, "sfo": epoch * per_epoch, "grad_norm": norm, "full_loss": loss}


@pytest.mark.parametrize(
    ("statistic", "norms", "losses", "expected"),
    [
        ("grad_norm", [0.5, 0.2, 0.4], [1, 1, 1], [0.5, 0.2, 0.4]),  # the last norm
        ("min_grad_norm", [0.5, 0.2, 0.4], [1, 1, 1], [0.5, 0.2, 0.2]),  # its running minimum
        ("min_loss", [0.5, 0.2, 0.4], [2.0, 1.5, 1.8], [2.0, 1.5, 1.5]),  # running minimum of f(theta)
        # batch 8, 8, 8, 16 of 64 at the end: norms scaled by sqrt(8/64) and sqrt(16/64), then the minimum
        (
            "projected_grad_norm",
            [0.8, 0.8, 0.8, 0.4],
            [1, 1, 1, 1],
            [0.8 * math.sqrt(1 / 8)] * 3 + [0.4 * math.sqrt(1 / 4)],
        ),
        ("min_grad_norm", [0.5, None, 0.1], [1, 1, 1], [0.5, math.inf, math.inf]),  # diverged stays worst
        ("min_loss", [0.5, 0.2], [1.0, None], [1.0, math.inf]),  # a missing f is divergence for min_loss
        ("grad_norm", [0.5, math.nan], [1, 1], [0.5, math.inf]),  # NaN is the worst, never compared as NaN
    ],
)
def test_statistic(
    statistic: str, norms: list[float | None], losses: list[float | None], expected: list[float]
) -> None:
    rule = ScheduleAwareStopping(StoppingConfig(budget_sfo=10_000, statistic=statistic))
    facts = _facts(GROW_X2_EVERY_3, CONST_LR)
    seen = []
    for epoch, (norm, loss) in enumerate(zip(norms, losses, strict=True), start=1):
        rule.on_result("t", facts, _rec(epoch, norm, loss))
        seen.append(rule.trials["t"].stat[-1])
    assert seen == pytest.approx(expected)


# --- decisions ---------------------------------------------------------------------------------------

FLAT = ScheduleFacts(sfo_per_epoch=1000)  # no warm-up, no stages: judged from the first record


def _run(
    rule: ScheduleAwareStopping, trial: str, norms: list[float | None], facts: ScheduleFacts = FLAT
) -> Any:
    """Feed epochs until the rule stops the trial; returns (epochs seen, the last decision)."""
    decision = None
    for epoch, norm in enumerate(norms, start=1):
        decision = rule.on_result(trial, facts, _rec(epoch, norm))
        if decision.stop:
            return epoch, decision
    return len(norms), decision


@pytest.mark.parametrize(
    ("incumbent", "challenger", "stopped_at", "kind"),
    [
        # the target is checked at epoch ends: after 2,000 SFO the earliest reach is 3,000, the incumbent's
        ([0.5, 0.2, 0.05], [0.5, 0.5, 0.5, 0.5], 2, "capped"),
        ([0.5, 0.2, 0.05], [0.5, 0.5, 0.04], 2, "capped"),  # it would only tie the incumbent at 3,000
        ([0.5, 0.2, 0.05], [0.5, 0.04], 2, ""),  # beats the incumbent at 2,000: kept
        ([0.5, 0.2, 0.2, 0.2], [0.5, 0.5, 0.5, 0.5], 4, ""),  # no trial reached the target: nothing to cap at
    ],
)
def test_capping_at_the_incumbent_sfo(
    incumbent: list[float], challenger: list[float], stopped_at: int, kind: str
) -> None:
    rule = ScheduleAwareStopping(StoppingConfig(budget_sfo=10_000, target=0.1, cap=True))
    _run(rule, "incumbent", incumbent)
    epochs, decision = _run(rule, "challenger", challenger)
    assert (epochs, decision.kind) == (stopped_at, kind)


def test_a_trial_at_its_target_or_in_its_last_epoch_is_never_stopped() -> None:
    config = StoppingConfig(budget_sfo=4_000, rungs=(1_000,), statistic="grad_norm", target=0.1, cap=True)
    rule = ScheduleAwareStopping(config)
    _run(rule, "fast", [0.05])  # the incumbent: 1,000 SFO
    # at its target at the incumbent's SFO, then trained on (stop_at_target off): its result is final,
    # so neither the cap nor a rung stops it
    assert _run(rule, "reached", [0.1, 0.9, 0.9, 0.9]) == (4, CONTINUE)
    # 4,000 SFO is the whole budget: in its last epoch, past the cap, it is not stopped
    assert rule.on_result("last-epoch", FLAT, _rec(4, 0.5)) == CONTINUE
    assert rule.on_result("not-last", FLAT, _rec(3, 0.5)).kind == "capped"


def test_no_capping_without_the_sfo_objective() -> None:
    with pytest.raises(ValueError, match="cap needs target"):
        StoppingConfig(budget_sfo=1_000, cap=True)
    # a target without capping (objective final_grad_norm or test_acc): the target only spares the trial
    config = schedule_aware_config(budget_sfo=10_000, sfo_per_epoch=1_000, target=0.1, cap=False, rungs=())
    rule = ScheduleAwareStopping(config)
    _run(rule, "fast", [0.05])
    assert _run(rule, "slow", [0.5, 0.5, 0.5])[1].kind == ""


@pytest.mark.parametrize(
    ("placement", "expected"),
    [
        # judged one epoch into the first batch stage after its LR peak (epoch 4): the best norm by then
        ("after_stage", (5, "")),
        # judged once its LR has peaked (epoch 3), still at the high norm of its peak LR on batch 8: stopped
        ("after_warmup", (3, "rung")),
        # plain ASHA placement: judged at the first rung, in its warm-up, and stopped
        ("sfo", (2, "rung")),
    ],
)
def test_rungs_spare_a_warmup_until_its_batch_has_grown_past_the_peak(
    placement: str, expected: tuple[int, str]
) -> None:
    config = StoppingConfig(
        budget_sfo=10_000,
        rungs=(2_000, 3_000, 4_000),
        reduction_factor=2,
        statistic="min_grad_norm",
        placement=placement,
    )
    rule = ScheduleAwareStopping(config)
    for i, curve in enumerate([[0.4] * 5, [0.35] * 5]):
        _run(rule, f"peer{i}", curve)
    warm = _facts(GROW_X2_EVERY_3, {**WARMUP, "warmup_epochs": 3})  # LR peak at epoch index 2, batch x2 at 3
    epochs, decision = _run(rule, "warm", [0.9, 0.9, 0.9, 0.3, 0.2], warm)
    assert (epochs, decision.kind) == expected


@pytest.mark.parametrize(
    ("mine", "peers", "rf", "stopped"),
    [
        (0.2, [0.1, 0.3, 0.4], 2, False),  # second of 4, best half kept
        (0.3, [0.1, 0.2, 0.4], 2, True),  # third of 4
        (0.3, [0.1, 0.2, 0.4], 1.5, False),  # third of 4, best 2/3 (ceil(4/1.5) = 3) kept
        (0.5, [], 2, False),  # no peer at the rung: nothing to compare with
        (0.2, [math.inf, math.inf], 2, False),  # diverged peers count as the worst
        (0.2, [None, 0.1], 2, False),  # a diverged peer counts as the worst: second of 3, ceil(3/2) = 2 kept
        (0.3, [None, 0.1, 0.2], 2, True),  # third of 4 with the diverged one last
    ],
)
def test_rung_keeps_the_best_fraction(
    mine: float, peers: list[float | None], rf: float, stopped: bool
) -> None:
    rule = ScheduleAwareStopping(
        StoppingConfig(budget_sfo=10_000, rungs=(1_000,), reduction_factor=rf, statistic="grad_norm")
    )
    for i, norm in enumerate(peers):
        rule.on_result(f"p{i}", FLAT, _rec(1, None if norm is None or norm == math.inf else norm))
    assert bool(rule.on_result("me", FLAT, _rec(1, mine)).stop) is stopped


@pytest.mark.parametrize("bad", [None, math.nan, math.inf, "abc"])
def test_a_diverged_trial_is_stopped_and_counts_as_the_worst(bad: Any) -> None:
    rule = ScheduleAwareStopping(StoppingConfig(budget_sfo=10_000, rungs=(1_000,), target=0.1, cap=True))
    decision = rule.on_result("bad", FLAT, _rec(1, bad))
    assert decision.kind == "diverged"
    assert rule.trials["bad"].stat == [math.inf]
    # the next trial, compared with it at the rung, is the better of the two and goes on
    assert not rule.on_result("good", FLAT, _rec(1, 5.0)).stop


def test_a_record_without_sfo_is_refused() -> None:
    rule = ScheduleAwareStopping(StoppingConfig(budget_sfo=10_000))
    with pytest.raises(ValueError, match="needs a finite sfo"):
        rule.on_result("t", FLAT, {"grad_norm": 0.1})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rungs": (3_000, 2_000)}, "rungs must be ascending"),
        ({"rungs": (10_000,)}, "rungs must be ascending"),
        ({"reduction_factor": 1.0}, "reduction_factor must be > 1"),
        ({"statistic": "loss"}, "statistic must be one of"),
        ({"placement": "late"}, "placement must be one of"),
        ({"target": -1.0}, "target must be a positive number"),
        ({"min_peers": 0}, "min_peers must be >= 1"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StoppingConfig(budget_sfo=10_000, **kwargs)


# --- pruned, never completed with a penalty ------------------------------------------------------------


def test_an_optuna_objective_driven_by_the_rule_leaves_stopped_trials_pruned() -> None:
    """The bench's contract (``bench/search_efficiency.py``): a stopped trial raises TrialPruned, so Optuna
    records it PRUNED (with its last intermediate value, Optuna's convention), never COMPLETE with a
    penalty; the others complete with their objective."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rule = ScheduleAwareStopping(StoppingConfig(budget_sfo=10_000, target=0.1, cap=True))
    curves = {0: [0.5, 0.05], 1: [0.5, 0.5, 0.5, 0.05], 2: [0.04]}

    def objective(trial: optuna.Trial) -> float:
        for epoch, norm in enumerate(curves[trial.number], start=1):
            trial.report(norm, step=epoch)
            if rule.on_result(str(trial.number), FLAT, _rec(epoch, norm)).stop:
                raise optuna.TrialPruned()
        return 1000.0 * len(curves[trial.number])

    study = optuna.create_study()
    study.optimize(objective, n_trials=3)
    states = [(t.state, t.value) for t in study.trials]
    assert states == [
        (optuna.trial.TrialState.COMPLETE, 2000.0),
        (optuna.trial.TrialState.PRUNED, 0.5),  # capped after one epoch: its last intermediate value
        (optuna.trial.TrialState.COMPLETE, 1000.0),
    ]


@dataclass
class _TuneTrial:
    """What a Tune scheduler reads of a trial."""

    trial_id: str
    config: dict[str, Any] = field(default_factory=dict)


SCHEDULE = {"batch_size": CONST_BATCH, "lr": CONST_LR}


def _result(epoch: int, norm: float, *, final: bool = False) -> dict[str, Any]:
    return {"epoch": epoch, "sfo": 1000 * epoch, "grad_norm": norm, "full_loss": 1.0, "final": final}


def test_tune_adapter_stops_searched_trials_spares_baselines_and_records_the_pruned() -> None:
    scheduler = make_schedule_aware_scheduler(
        max_t=10_000, per_epoch=1_000, max_epochs=10, n_search=4, target=0.1, objective="sfo_to_target"
    )
    assert isinstance(scheduler, ScheduleAwareScheduler)
    fast = _TuneTrial("fast", {"_kind": "search", "schedule": SCHEDULE})
    slow = _TuneTrial("slow", {"_kind": "search", "schedule": SCHEDULE})
    base = _TuneTrial("base", {"_kind": "baseline", "schedule": SCHEDULE})
    for epoch, norm in [(1, 0.5), (2, 0.05)]:
        assert scheduler.on_trial_result(None, fast, _result(epoch, norm)) == "CONTINUE"
    assert scheduler.on_trial_result(None, slow, _result(1, 0.5, final=True)) == "CONTINUE"  # no new epoch
    assert scheduler.on_trial_result(None, slow, _result(1, 0.5)) == "STOP"  # can reach at 2,000 at best
    for epoch in range(1, 5):  # a baseline is the yardstick: never stopped
        assert scheduler.on_trial_result(None, base, _result(epoch, 0.5)) == "CONTINUE"
    # divergence ends the trial, but as a result (the worst objective), not as a pruned trial
    bad = _TuneTrial("bad", {"_kind": "search", "schedule": SCHEDULE})
    assert scheduler.on_trial_result(None, bad, {**_result(1, 0.5), "grad_norm": None}) == "STOP"
    assert scheduler.pruned == {"slow"}


@pytest.mark.parametrize(
    ("kwargs", "scheduler"),
    [
        ({"n_search": 1}, "FIFOScheduler"),  # nothing to compare
        ({"max_t": 1_000}, "FIFOScheduler"),  # one epoch of budget
        ({"objective": "test_acc"}, "ScheduleAwareScheduler"),  # rungs, no capping
    ],
)
def test_make_schedule_aware_scheduler(kwargs: dict[str, Any], scheduler: str) -> None:
    args: dict[str, Any] = {
        "max_t": 10_000,
        "per_epoch": 1_000,
        "max_epochs": 10,
        "n_search": 4,
        "target": 0.1,
        "objective": "sfo_to_target",
        **kwargs,
    }
    built = make_schedule_aware_scheduler(**args)
    assert type(built).__name__ == scheduler
    if isinstance(built, ScheduleAwareScheduler):
        assert built.rule.config.cap is (args["objective"] == "sfo_to_target")


def test_tolerant_optuna_search_tells_a_stopped_trial_as_pruned() -> None:
    """Tune completes a stopped trial with its last result; the searcher must tell Optuna PRUNED, not
    COMPLETE with that result's penalty value. A trial that completes on its own stays COMPLETE."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruned: set[str] = set()
    searcher = TolerantOptunaSearch(
        space={"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
        metric="objective",
        mode="min",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruned=pruned,
    )
    for trial_id in ("a", "b"):
        assert searcher.suggest(trial_id) is not None
        searcher.on_trial_result(trial_id, {"objective": 5e4, "training_iteration": 1})
    pruned.add("b")
    searcher.on_trial_complete("a", result={"objective": 3e3, "training_iteration": 2})
    searcher.on_trial_complete("b", result={"objective": 9e4, "training_iteration": 2})
    states = {t.number: (t.state, t.value) for t in searcher._ot_study.trials}
    assert states == {
        0: (optuna.trial.TrialState.COMPLETE, 3e3),
        1: (optuna.trial.TrialState.PRUNED, 5e4),  # not the 9e4 of its closing result
    }


def test_the_rule_imports_neither_ray_nor_torch() -> None:
    """``workers.stopping`` is pure: the driver, a test or a notebook can use it without a cluster."""
    code = "import sys, workers.stopping; print(sorted({'ray', 'torch', 'optuna'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
