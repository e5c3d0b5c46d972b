"""Search efficiency: SFO to a fixed gradient-norm target of the constant baseline, the paper's strategies and
the best schedule a search finds, with the SFO the search itself spent, early stopping on and off.

Setting (digits-mlp, NSHB beta = 0.9, per-trial budget ``--epochs``, target ``--target`` on the full gradient
norm, trials end at the target):

- (a) the constant-batch baseline: b = 128, constant LR 0.1 (the paper's constant-batch setting);
- (b) ``schedules.paper.paper_strategies(max_epochs=...)``: (i)-(iv) with the paper's settings scaled;
- (c) a search of ``--trials`` trials over SPACE (growing batch + warm-up LR, validated and resolved by
  ``schedules.space``) with Optuna's TPE, objective ``sfo_to_target`` with the workers' penalty for trials
  that miss the target (``workers.trainable.ObjectiveTracker``), run twice per seed: with early stopping
  (Optuna's asynchronous successive halving on the gradient norm at equal SFO, rungs from
  ``workers.search.asha_rungs``, the same rule the Ray Tune driver uses) and without.

The search runs Optuna in this process, trial after trial, not through the Ray Tune driver: on 2 cores a Ray
cluster's start-up and per-trial overhead would dominate trials of ~1 s (``bench/scale_out.py`` measures
that overhead through the real driver). The best schedule of each search is re-run on a held-out training
seed, because its in-search SFO is the minimum of many noisy draws and flatters it.

    python bench/search_efficiency.py --quick      # < 2 minutes on 2 CPU cores
    python bench/search_efficiency.py              # the table in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import mean_spread, table, write_latest

TASK = "digits-mlp"
OPTIMIZER = {"name": "nshb", "momentum": 0.9}
CONSTANT_BASELINE = {
    "batch_size": {"family": "constant", "b0": 128},
    "lr": {"family": "constant", "lr0": 0.1},
}
#: The searched candidate: the paper's strategy (iv) family with its knobs free. lr0 <= 0.2 < lr_max keeps
#: every corner valid (schedules.space.validate checks it).
SPACE: dict[str, Any] = {
    "batch_size": {
        "family": "exp_growth",
        "b0": {"choice": [8, 16, 32, 64]},
        "factor": {"uniform": [1.2, 3.0]},
        "interval": {"int": [1, 4]},
    },
    "lr": {
        "family": "warmup_const",
        "lr0": {"loguniform": [0.02, 0.2]},
        "lr_max": {"loguniform": [0.25, 3.0]},
        "warmup_epochs": {"int": [2, 8]},
        "warmup_interval": 1,
    },
}
HELD_OUT_SEED = 1000


def trial_spec(schedule: Mapping[str, Any], *, seed: int, epochs: int, target: float) -> Any:
    from schedules.spec import TrialSpec

    return TrialSpec.from_json(
        {
            "task": {"name": TASK, "options": {}},
            "optimizer": OPTIMIZER,
            "schedule": dict(schedule),
            "budget": {"max_epochs": epochs, "max_sfo": None},
            "target": {"grad_norm": target, "stop_at_target": True},
            "seed": seed,
        }
    )


def run_fixed(schedule: Mapping[str, Any], *, seed: int, epochs: int, target: float) -> dict[str, Any]:
    from schedules.trainer import train

    s = train(trial_spec(schedule, seed=seed, epochs=epochs, target=target), device="cpu").summary
    return {
        "sfo_to_target": s.sfo_to_target,
        "total_sfo": s.total_sfo,
        "min_grad_norm": s.min_grad_norm,
        "wall_s": s.wall_s,
    }


def _suggest(trial: Any) -> Any:
    def pick(name: str, dist: Mapping[str, Any]) -> Any:
        kind, args = next(iter(dist.items()))
        if kind == "choice":
            return trial.suggest_categorical(name, list(args))
        if kind == "int":
            return trial.suggest_int(name, int(args[0]), int(args[1]))
        return trial.suggest_float(name, float(args[0]), float(args[1]), log=kind == "loguniform")

    return pick


def search(
    *, seed: int, trials: int, epochs: int, target: float, early_stopping: bool, n_train: int
) -> dict[str, Any]:
    """One Optuna study; returns the best trial's schedule and SFO, and the SFO every trial spent."""
    import optuna

    from schedules.space import resolve
    from schedules.trainer import train
    from workers.search import asha_rungs
    from workers.trainable import ObjectiveTracker

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cap = float(epochs * n_train)
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    rungs = asha_rungs(cap, float(n_train), trials) if early_stopping else None
    if rungs is not None:
        grace, rf = rungs
        # the intermediate step is the epoch, and every epoch is n_train SFO: rungs in SFO / n_train
        pruner = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(1, round(grace / n_train)), reduction_factor=int(rf)
        )
    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner
    )
    spent: list[int] = []
    pruned = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal pruned
        schedule = resolve(SPACE, _suggest(trial))
        tracker = ObjectiveTracker("sfo_to_target", target, cap)
        stop = {"flag": False}

        def report(record: Any) -> None:
            tracker.update({"grad_norm": record.grad_norm, "sfo": record.sfo, "test_acc": record.test_acc})
            trial.report(float(record.grad_norm), step=int(record.epoch))
            # a trial at its target ends on its own; pruning it then would only lose its result
            if record.grad_norm > target and trial.should_prune():
                stop["flag"] = True

        result = train(
            trial_spec(schedule.to_json(), seed=seed, epochs=epochs, target=target),
            report=report,
            device="cpu",
            should_stop=lambda: stop["flag"],
        )
        spent.append(int(result.summary.total_sfo))
        trial.set_user_attr("schedule", schedule.to_json())
        trial.set_user_attr("sfo_to_target", result.summary.sfo_to_target)
        if stop["flag"] and result.summary.sfo_to_target is None:
            pruned += 1
            raise optuna.TrialPruned()
        return tracker.value(result.summary.final_grad_norm)

    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    reached = [t for t in study.trials if t.user_attrs.get("sfo_to_target") is not None]
    best = min(reached, key=lambda t: t.user_attrs["sfo_to_target"], default=None)
    return {
        "early_stopping": early_stopping,
        "rungs": None if rungs is None else {"grace_sfo": rungs[0], "reduction_factor": rungs[1]},
        "trials": trials,
        "pruned": pruned,
        "reached_target": len(reached),
        "total_sfo": sum(spent),
        "best_sfo_to_target": None if best is None else best.user_attrs["sfo_to_target"],
        "best_schedule": None if best is None else best.user_attrs["schedule"],
        "wall_s": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--trials", type=int, default=None, help="trials per search")
    parser.add_argument("--epochs", type=int, default=30, help="epoch budget per trial")
    parser.add_argument("--target", type=float, default=0.03, help="full gradient norm target")
    parser.add_argument("--quick", action="store_true", help="one seed, 8 trials (< 2 minutes)")
    parser.add_argument("--name", default="search_efficiency", help="result file name (tests use another)")
    args = parser.parse_args(argv)
    from schedules.paper import paper_strategies
    from schedules.space import validate
    from schedules.tasks import get_task

    validate(SPACE)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    trials = args.trials or (8 if args.quick else 24)
    epochs, target = args.epochs, args.target
    n_train = get_task(TASK, {}, device="cpu").n_train
    fixed = {
        "constant-b128": CONSTANT_BASELINE,
        **{k: v.to_json() for k, v in paper_strategies(max_epochs=epochs).items()},
    }
    print(
        f"{TASK}, NSHB 0.9, target |grad f| <= {target}, {epochs} epochs/trial ({epochs * n_train:,} SFO), "
        f"seeds {seeds}, {trials} trials/search"
    )
    started = time.perf_counter()
    per_seed: list[dict[str, Any]] = []
    for seed in seeds:
        row: dict[str, Any] = {"seed": seed, "fixed": {}, "search": {}}
        for name, schedule in fixed.items():
            row["fixed"][name] = run_fixed(schedule, seed=seed, epochs=epochs, target=target)
        for es in (True, False):
            result = search(
                seed=seed, trials=trials, epochs=epochs, target=target, early_stopping=es, n_train=n_train
            )
            if result["best_schedule"] is not None:
                result["held_out"] = run_fixed(
                    result["best_schedule"], seed=seed + HELD_OUT_SEED, epochs=epochs, target=target
                )
            row["search"]["on" if es else "off"] = result
        per_seed.append(row)
        paper = {k: v["sfo_to_target"] for k, v in row["fixed"].items()}
        print(
            f"seed {seed}: fixed {paper}; search best on/off "
            f"{row['search']['on']['best_sfo_to_target']}/{row['search']['off']['best_sfo_to_target']}, "
            f"spent on/off {row['search']['on']['total_sfo']:,}/{row['search']['off']['total_sfo']:,} "
            f"({time.perf_counter() - started:.0f}s)",
            flush=True,
        )

    def stat(values: Sequence[float | None]) -> dict[str, Any]:
        return mean_spread(list(values))

    lines: dict[str, dict[str, Any]] = {}
    for name in fixed:
        lines[name] = {"sfo_to_target": stat([r["fixed"][name]["sfo_to_target"] for r in per_seed])}
    for side in ("on", "off"):
        runs = [r["search"][side] for r in per_seed]
        lines[f"search (ES {side}): best"] = {
            "sfo_to_target": stat([x["best_sfo_to_target"] for x in runs]),
            "held_out": stat([(x.get("held_out") or {}).get("sfo_to_target") for x in runs]),
            "search_total_sfo": stat([x["total_sfo"] for x in runs]),
            "pruned": stat([x["pruned"] for x in runs]),
            "wall_s": stat([x["wall_s"] for x in runs]),
        }
    rows = []
    for name, s in lines.items():
        sfo = s["sfo_to_target"]
        rows.append(
            [
                name,
                sfo["mean"],
                sfo["std"],
                f"{sfo['n']}/{sfo['n'] + sfo['missing']}",
                (s.get("held_out") or {}).get("mean"),
                f"{s['held_out']['n']}/{s['held_out']['n'] + s['held_out']['missing']}"
                if "held_out" in s
                else None,
                (s.get("search_total_sfo") or {}).get("mean"),
                (s.get("pruned") or {}).get("mean"),
            ]
        )
    print(
        table(
            [
                "schedule",
                "SFO to target",
                "std",
                "reached",
                "held-out seed",
                "reached",
                "search SFO",
                "pruned",
            ],
            rows,
        )
    )

    paper_means = {k: lines[k]["sfo_to_target"]["mean"] for k in fixed if k.startswith("paper-")}
    reached_paper = {k: v for k, v in paper_means.items() if v is not None}
    best_paper = min(reached_paper.items(), key=lambda kv: kv[1], default=(None, None))
    on, off = lines["search (ES on): best"], lines["search (ES off): best"]
    checks: dict[str, Any] = {
        "best_paper_strategy": best_paper[0],
        "best_paper_sfo": best_paper[1],
        "search_best_over_best_paper": (on["sfo_to_target"]["mean"] / best_paper[1])
        if best_paper[1] and on["sfo_to_target"]["mean"]
        else None,
        "held_out_over_best_paper": (on["held_out"]["mean"] / best_paper[1])
        if best_paper[1] and on["held_out"]["mean"]
        else None,
        "es_total_sfo_cut": (off["search_total_sfo"]["mean"] / on["search_total_sfo"]["mean"])
        if on["search_total_sfo"]["mean"]
        else None,
        "es_best_over_no_es_best": (on["sfo_to_target"]["mean"] / off["sfo_to_target"]["mean"])
        if on["sfo_to_target"]["mean"] and off["sfo_to_target"]["mean"]
        else None,
    }
    fmt = {k: (f"{v:.3g}" if isinstance(v, float) and math.isfinite(v) else v) for k, v in checks.items()}
    print(
        f"targets: search best / best paper = {fmt['search_best_over_best_paper']} (want <= 0.5; "
        f"held-out seed {fmt['held_out_over_best_paper']}); early stopping cuts search SFO "
        f"{fmt['es_total_sfo_cut']}x (want >= 2) at best ratio on/off {fmt['es_best_over_no_es_best']}"
    )
    path = write_latest(
        args.name,
        {
            "quick": args.quick,
            "task": TASK,
            "optimizer": OPTIMIZER,
            "target": target,
            "epochs": epochs,
            "n_train": n_train,
            "trials": trials,
            "seeds": seeds,
            "space": SPACE,
            "fixed_schedules": fixed,
            "engine": "optuna in-process (TPE + SuccessiveHalvingPruner), not the Ray Tune driver",
            "per_seed": per_seed,
            "summary": lines,
            "checks": checks,
            "wall_s": time.perf_counter() - started,
        },
    )
    print(f"wrote bench/results/{path.name} in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
