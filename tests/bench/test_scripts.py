"""Each benchmark script, run in its smallest mode: it finishes, prints its table and writes a result file
whose numbers are consistent with each other. Timing is never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _load(folder: Path, name: str) -> dict:
    return json.loads((folder / f"{name}.json").read_text())


def test_critical_batch_smallest(
    results_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import bench.critical_batch as cb

    monkeypatch.setattr(cb, "IMG_DIR", tmp_path / "img")
    argv = [
        "--batches",
        "16",
        "64",
        "256",
        "--targets",
        "0.3",
        "--epochs",
        "4",
        "--seeds",
        "0",
        "--name",
        "cb",
    ]
    assert cb.main(argv) == 0
    body = _load(results_dir, "cb")
    rows = body["summary"]["0.3"]["rows"]
    assert [r["batch"] for r in rows] == [16, 64, 256]
    for r in rows:
        if r["sfo"] is not None:  # SFO is at most steps x the batch (an epoch's last batch may be short)
            assert r["sfo"] <= r["steps"] * r["batch"] and r["steps"] >= 1
    assert (tmp_path / "img" / "cb.png").stat().st_size > 0
    assert "empirical b*" in capsys.readouterr().out


def test_search_efficiency_smallest(
    results_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import bench.search_efficiency as se

    monkeypatch.setattr(se, "IMG_DIR", tmp_path / "img")

    argv = ["--seeds", "0", "--trials", "3", "--epochs", "3", "--target", "0.25", "--compare", "--name", "se"]
    assert se.main(argv) == 0
    body = _load(results_dir, "se")
    run = body["per_seed"][0]
    assert set(run["fixed"]) == {"constant-b128", "paper-i", "paper-ii", "paper-iii", "paper-iv"}
    assert run["search"]["on"]["rule"] == "schedule-aware" and run["search"]["off"]["rule"] is None
    assert set(run["alternatives"]) == set(se.RULES) - {"schedule-aware"}
    for search in [run["search"]["on"], run["search"]["off"], *run["alternatives"].values()]:
        # a search spends at least one trial's SFO and at most trials x the per-trial budget
        assert 0 < search["total_sfo"] <= 3 * 3 * body["n_train"]
        assert search["total_sfo"] == sum(e["sfo"] for e in search["trial_log"])
        best = search["best_sfo_to_target"]
        assert best is None or best <= search["total_sfo"]
        # every stopped trial is counted as pruned (never completed with a penalty), by its reason
        stopped = [e for e in search["trial_log"] if e["stopped"]]
        assert search["pruned"] == len(stopped) == sum(search["pruned_by"].values())
        if search is not run["search"]["off"]:
            assert search["audit"]["stopped"] == len(stopped)
    assert run["search"]["off"]["pruned"] == 0  # no pruner without early stopping
    out = capsys.readouterr().out
    for line in ("es_best_ratio seed0=", "es_sfo_saving ", "es_held_out_over_best_paper "):
        assert line in out
    assert body["checks"]["es_rule"] == "schedule-aware"
    assert sorted(a["rule"] for a in body["checks"]["alternatives"]) == sorted(run["alternatives"])


def test_service_load_smallest_sqlite(
    results_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.service_load as sl

    monkeypatch.setattr(sl, "IMG_DIR", tmp_path / "img")

    argv = [
        "--backends",
        "sqlite",
        "--concurrency",
        "2",
        "--requests",
        "6",
        "--cell-seconds",
        "5",
        "--name",
        "sl",
    ]
    assert sl.main(argv) == 0
    body = _load(results_dir, "sl")
    assert {c["op"] for c in body["cells"]} == set(sl.OPERATIONS)
    for cell in body["cells"]:
        assert cell["requests"] >= 1 and cell["errors"] == 0, cell
        assert cell["p50_ms"] <= cell["p99_ms"]


@pytest.mark.ray
def test_scale_out_smallest(tmp_path: Path) -> None:
    # A fresh process: Ray reads its auth mode once per process, at import, and other tests import it first.
    argv = ["--trials", "2", "--epochs", "1", "--name", "so", "--results-dir", str(tmp_path)]
    script = Path(__file__).resolve().parents[2] / "bench" / "scale_out.py"
    done = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    body = _load(tmp_path, "so")
    assert [r["nodes"] for r in body["runs"]] == [1, 2]
    for run in body["runs"]:
        assert run["status"] == "succeeded" and run["trials"] == 2, run
        assert run["alive_nodes"] == run["nodes"]


def test_trainer_throughput_smallest(
    results_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import bench._common
    import bench.trainer_throughput as tt

    monkeypatch.setattr(bench._common, "RESULTS_DIR", results_dir)  # this script writes through _common

    argv = ["--quick", "--batches", "64", "--repeats", "1", "--epochs", "1"]
    assert tt.main(argv) == 0
    body = _load(results_dir, "trainer_throughput-digits-mlp")
    (row,) = body["rows"]
    # the three sides train the same trial: the same SFO, and the printed ratios are theirs
    assert row["ours"]["sfo"] == row["streamed"]["sfo"] == row["loader"]["sfo"] == 1347
    speed = {side: row[side]["sfo_per_s"] for side in ("ours", "streamed", "loader")}
    assert row["streamed_vs_ours"] == pytest.approx(speed["streamed"] / speed["ours"])
    assert row["streamed_vs_loader"] == pytest.approx(speed["streamed"] / speed["loader"])
    assert body["task_bytes"] == (1347 + 450) * (64 * 4 + 8)  # float32 pixels and int64 labels
    out = capsys.readouterr().out
    assert "streamed/ours" in out and "streamed/loader" in out


def test_validation_cost_smallest(results_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import bench.validation_cost as vc

    assert vc.main(["--epochs", "300", "--limit", "20000", "--repeats", "1", "--name", "vc"]) == 0
    results = _load(results_dir, "vc")["results"]
    assert {name: r["outcome"] for name, r in results.items()} == {
        "small": "accepted",
        "fixed-at-limit": "accepted",
        "searched-at-limit": "accepted",
        "corners-at-limit": "accepted",
        "refused-over-limit": "refused: max_check_schedule_epochs",
    }
    assert all(r["cpu_s"] >= 0 and len(r["runs"]) == 1 for r in results.values())
    assert "vs small" in capsys.readouterr().out


def test_population_smallest(results_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import bench.population as bp

    argv = ["--ks", "1", "2", "--epochs", "1", "--repeats", "1", "--no-gpu", "--name", "pop"]
    assert bp.main(argv) == 0
    body = _load(results_dir, "pop")
    for case in ("shared", "mixed"):
        rows = body[case]
        assert [r["k"] for r in rows] == [1, 2]
        for r in rows:  # the printed ratio is the two sides' SFO per CPU second
            assert r["speedup"] == pytest.approx(r["fused_sfo_per_s"] / r["sequential_sfo_per_s"])
        assert rows[1]["sfo"] == 2 * 1347  # two members, one epoch each
    out = capsys.readouterr().out
    assert "pack2_speedup_shared" in out and "pack2_speedup_mixed" in out
    assert body["gpu"] is None


def test_population_design_measurement_smallest() -> None:
    import bench.population as bp

    (row,) = bp.design_table(k=2, batches=(8,), repeats=1)
    assert set(row["ms"]) == {"separate", "vmap(grad)", "vmap forward", "baddbmm"}
    assert row["vs_separate"]["separate"] == 1.0
    assert all(ms > 0 for ms in row["ms"].values())


def test_population_gpu_side_runs_on_the_cpu(tmp_path: Path) -> None:
    """The GPU section's fused side, on the CPU with a tiny ResNet (the Ray side needs a GPU)."""
    import bench.population as bp
    from bench.gpu_mode import write_synthetic_cifar100

    root = write_synthetic_cifar100(tmp_path, n_train=32, n_test=16)
    specs = bp.gpu_specs(2, data_root=str(root), epochs=1, b0=16, width=2, subset=32)
    row = bp.gpu_fused(specs, device="cpu")
    assert (row["k"], row["sfo"]) == (2, 64)
    assert row["train_images_per_s"] >= row["sfo_per_s"] > 0
