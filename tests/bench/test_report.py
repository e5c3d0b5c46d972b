"""The pure helpers of the benchmarks: statistics, tables and the critical-batch fit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench._report import mean_spread, percentile, table, write_latest
from bench.critical_batch import first_hit, fit_constants


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0, 5.0], 50, 3.0),  # odd count: the middle value
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),  # even count: interpolated
        ([5.0, 1.0, 3.0], 100, 5.0),  # unsorted input, top
        ([0.0, 10.0], 99, 9.9),  # p99 of two values, interpolated
    ],
)
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 50))


def test_mean_spread_counts_missing_values() -> None:
    s = mean_spread([2.0, None, 4.0])
    assert (s["mean"], s["n"], s["missing"], s["min"], s["max"]) == (3.0, 2, 1, 2.0, 4.0)
    assert s["std"] == pytest.approx(math.sqrt(2.0))
    assert mean_spread([None])["mean"] is None


def test_table_aligns_and_formats() -> None:
    text = table(["name", "value"], [["a", 1234567], ["bb", 0.5], ["c", None]])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1  # every line equally wide
    assert "1,234,567" in lines[2] and "0.5" in lines[3] and lines[4].rstrip().endswith("-")


def test_write_latest_replaces_the_previous_run(tmp_path: Path) -> None:
    write_latest("x", {"run": 1}, results_dir=tmp_path)
    path = write_latest("x", {"run": 2}, results_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    body = json.loads(path.read_text())
    assert body["run"] == 2 and body["machine"]["cpu_count"] >= 1 and "torch" in body["machine"]


@pytest.mark.parametrize(
    ("c1", "c2", "eps", "b_star"),
    [
        (100.0, 0.04, 0.1, 8.0),  # b* = 2 C2 / eps^2
        (50.0, 0.01, 0.05, 8.0),  # tighter eps, smaller C2: same b*
        (10.0, 0.02, 0.05, 16.0),  # doubling C2 doubles b*
    ],
)
def test_fit_recovers_the_bound_constants(c1: float, c2: float, eps: float, b_star: float) -> None:
    points = [(b, c1 * b / (eps**2 * b - c2)) for b in (16, 32, 64, 128, 256)]
    fit = fit_constants(points, eps)
    assert fit is not None
    assert fit["C1"] == pytest.approx(c1, rel=1e-6)
    assert fit["C2"] == pytest.approx(c2, rel=1e-6)
    assert fit["b_star"] == pytest.approx(b_star, rel=1e-6)
    assert fit["r2"] == pytest.approx(1.0)


def test_fit_rejects_steps_that_grow_with_the_batch() -> None:
    # K increasing in b has no critical batch size of the bound's shape
    assert fit_constants([(8, 10.0), (16, 20.0), (32, 40.0)], 0.1) is None
    assert fit_constants([(8, 10.0), (16, 5.0)], 0.1) is None  # two points are too few


def test_first_hit_is_the_first_epoch_at_or_below_target() -> None:
    class R:
        def __init__(self, step: int, sfo: int, grad_norm: float) -> None:
            self.step, self.sfo, self.grad_norm = step, sfo, grad_norm

    records = [R(10, 80, 0.5), R(20, 160, 0.1), R(30, 240, 0.05)]
    assert first_hit(records, 0.1) == (20, 160)
    assert first_hit(records, 0.01) is None
