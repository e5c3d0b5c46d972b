"""summarize(): target crossing, extremes, totals and the fitted decay exponent."""

from __future__ import annotations

import math

import pytest

from schedules.metrics import EpochRecord, TrialSummary, decay_exponent, summarize


def rec(epoch: int, grad_norm: float, *, acc: float | None = 0.5, b: int = 10) -> EpochRecord:
    return EpochRecord(
        epoch=epoch,
        step=epoch * 100 // b,
        sfo=epoch * 100,
        lr=0.1,
        batch_size=b,
        train_loss=1.0 / epoch,
        full_loss=1.0 / epoch,
        grad_norm=grad_norm,
        test_loss=1.0,
        test_acc=acc,
        measure_sfo=epoch * 100,
        wall_s=0.5 * epoch,
    )


def test_power_law_decay_exponent_is_recovered() -> None:
    # grad_norm = 3 sfo^-0.5 exactly, so the fitted slope is -0.5
    records = [rec(e, 3.0 * (e * 100) ** -0.5) for e in range(1, 9)]
    s = summarize(records, target_grad_norm=0.2)
    assert s.decay_exponent == pytest.approx(-0.5, abs=1e-12)


def test_target_crossing_and_totals() -> None:
    norms = [1.0, 0.5, 0.09, 0.2, 0.05]
    records = [
        rec(e, g, acc=a) for e, (g, a) in enumerate(zip(norms, [0.1, 0.6, 0.4, 0.7, 0.3], strict=True), 1)
    ]
    s = summarize(records, target_grad_norm=0.1, initial_grad_norm=2.0)
    assert (s.epochs_to_target, s.sfo_to_target, s.steps_to_target) == (3, 300, 30)  # first epoch with <= 0.1
    assert (s.final_grad_norm, s.min_grad_norm, s.best_test_acc) == (0.05, 0.05, 0.7)
    assert (s.total_sfo, s.total_steps, s.measure_sfo, s.wall_s) == (500, 50, 500, 2.5)
    assert s.initial_grad_norm == 2.0 and s.status == "completed" and s.stop_reason == "max_epochs"


def test_target_never_reached_and_no_target() -> None:
    records = [rec(e, 1.0 / e) for e in range(1, 4)]
    assert summarize(records, target_grad_norm=0.01).sfo_to_target is None
    assert summarize(records, target_grad_norm=None).epochs_to_target is None
    # exactly at the target counts as reached
    assert summarize(records, target_grad_norm=0.5).epochs_to_target == 2


def test_diverged_run_is_json_safe() -> None:
    records = [rec(1, 1.0), rec(2, float("nan"), acc=None)]
    s = summarize(records, target_grad_norm=0.1, status="diverged", stop_reason="diverged")
    assert s.final_grad_norm is None and s.min_grad_norm == 1.0 and s.best_test_acc == 0.5
    assert s.decay_exponent is None  # one finite point only
    assert records[1].to_json()["grad_norm"] is None
    assert EpochRecord.from_json(records[0].to_json()) == records[0]
    assert TrialSummary.from_json(s.to_json()) == s


def test_empty_and_bad_inputs() -> None:
    s = summarize([], target_grad_norm=0.1, status="stopped", stop_reason="stopped")
    assert (s.total_sfo, s.final_grad_norm, s.decay_exponent) == (0, None, None)
    with pytest.raises(ValueError, match="status must be one of"):
        summarize([], target_grad_norm=None, status="ok")


def test_decay_exponent_skips_zero_sfo() -> None:
    # the sfo=0 point would be log(0); the remaining two give slope log(1/4)/log(4) = -1
    assert decay_exponent([0, 10, 40], [5.0, 1.0, 0.25]) == pytest.approx(-1.0)
    assert math.isnan(float("nan")) and decay_exponent([10], [1.0]) is None


def test_records_and_summaries_stored_before_the_subset_and_token_fields_still_read() -> None:
    old_record = {k: v for k, v in rec(1, 0.5).to_json().items() if k not in ("grad_norm_subset", "tokens")}
    assert EpochRecord.from_json(old_record) == rec(1, 0.5)  # null: an exact norm, no tokens
    summary = summarize([rec(1, 0.5)], target_grad_norm=None).to_json()
    old_summary = {k: v for k, v in summary.items() if k not in ("grad_norm_subset", "total_tokens")}
    restored = TrialSummary.from_json(old_summary)
    assert (restored.grad_norm_subset, restored.total_tokens) == (None, None)


def test_summary_carries_the_subset_mark_and_the_tokens_of_the_last_record() -> None:
    import dataclasses

    records = [dataclasses.replace(rec(e, 0.5), grad_norm_subset=300, tokens=e * 800) for e in (1, 2)]
    summary = summarize(records, target_grad_norm=None)
    assert (summary.grad_norm_subset, summary.total_tokens) == (300, 1600)
