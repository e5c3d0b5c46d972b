"""The paper's ordering on the embedded task (digits-mlp, 60 epochs, seed 0): see docs/reproduction.md.

Settings are the paper's scaled from 300 to 60 epochs (``bench/reproduction.py``), chosen before looking at
the outcome and not tuned afterwards. What is asserted is what held over seeds 0-2; the part of claim 1 that
did not hold here (the constant batch's plateau) is documented, not asserted.
"""

from __future__ import annotations

import math

import pytest

from bench.reproduction import EPOCHS, sfo_to, spec_for, strategies
from schedules.trainer import TrialResult, train

N_TRAIN = 1347
TARGET = 0.02  # gradient-norm target for the SFO-to-target comparison, fixed in advance


@pytest.fixture(scope="module")
def runs() -> dict[str, TrialResult]:
    return {name: train(spec_for(schedule, seed=0), device="cpu") for name, schedule in strategies().items()}


@pytest.mark.slow
def test_every_strategy_spends_the_same_sfo(runs: dict[str, TrialResult]) -> None:
    assert {r.summary.total_sfo for r in runs.values()} == {EPOCHS * N_TRAIN}
    # ... with very different step counts: the growing batch takes far fewer steps
    assert runs["grow/const-lr"].summary.total_steps < runs["const-b128/const-lr"].summary.total_steps


@pytest.mark.slow
def test_growing_batch_ends_lower_at_equal_sfo(runs: dict[str, TrialResult]) -> None:
    const, grow = runs["const-b128/const-lr"].summary, runs["grow/const-lr"].summary
    assert grow.final_grad_norm is not None and const.final_grad_norm is not None
    # measured over seeds 0-2: 0.0155-0.0156 against 0.043-0.061 (about 3x); asserted with margin: 2x
    assert grow.final_grad_norm < 0.5 * const.final_grad_norm
    assert grow.min_grad_norm is not None and const.min_grad_norm is not None
    assert grow.min_grad_norm < 0.5 * const.min_grad_norm


@pytest.mark.slow
def test_warmup_with_growing_batch_reaches_the_target_in_the_fewest_sfo(runs: dict[str, TrialResult]) -> None:
    paper = {name: sfo_to(runs[name], TARGET) for name in ("paper-i", "paper-ii", "paper-iii", "paper-iv")}
    warmup = paper.pop("paper-iv")
    assert warmup is not None, "warm-up never reached the target"
    for name, sfo in paper.items():
        assert warmup < (sfo if sfo is not None else math.inf), f"{name} reached {TARGET} at {sfo} SFO"
