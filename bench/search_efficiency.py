"""Search efficiency: SFO to a fixed gradient-norm target of the constant baseline, the paper's strategies and
the best schedule a search finds, with the SFO the search itself spent, early stopping on and off.

Setting (digits-mlp, NSHB beta = 0.9, per-trial budget ``--epochs``, target ``--target`` on the full gradient
norm, trials end at the target):

- (a) the constant-batch baseline: b = 128, constant LR 0.1 (the paper's constant-batch setting);
- (b) ``schedules.paper.paper_strategies(max_epochs=...)``: (i)-(iv) with the paper's settings scaled;
- (c) a search of ``--trials`` trials over SPACE (growing batch + warm-up LR, validated and resolved by
  ``schedules.space``) with Optuna's TPE, objective ``sfo_to_target`` with the workers' penalty for trials
  that miss the target (``workers.trainable.ObjectiveTracker``), run twice per seed: with early stopping
  (``--rule``, by default the schedule-aware rule of ``workers.stopping``) and without. ``--compare`` also
  runs every other rule in ``RULES`` against the same searches without early stopping (the table of
  alternatives in docs/benchmarks.md §2), and each stopped trial is re-run to the end to count the *pruned
  winners* (``audit``; ``--no-audit`` skips it).

Printed targets (issue 11): ``es_best_ratio`` (per seed, best SFO to target with early stopping over
without; want <= 1.1 on every seed), ``es_sfo_saving`` (the searches' total SFO without over with; want
>= 2) and ``es_held_out_over_best_paper`` (the best found with early stopping, re-run on a held-out seed,
over the best paper strategy; want <= 0.5).

The search runs Optuna in this process, trial after trial, not through the Ray Tune driver: on 2 cores a Ray
cluster's start-up and per-trial overhead would dominate trials of ~1 s (``bench/scale_out.py`` measures
that overhead through the real driver). The best schedule of each search is re-run on a held-out training
seed, because its in-search SFO is the minimum of many noisy draws and flatters it.

    python bench/search_efficiency.py --quick            # < 2 minutes on 2 CPU cores
    python bench/search_efficiency.py --compare          # the tables in docs/benchmarks.md §2
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import IMG_DIR, mean_spread, table, write_latest

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


#: Early-stopping rules the bench can run on the "ES on" side, by name. ``schedule-aware`` is the search's
#: rule (``workers.stopping`` with its defaults); the others are the alternatives that choice was measured
#: against (docs/benchmarks.md §2). ``asha`` is the previous setting: Optuna's SuccessiveHalvingPruner on the
#: last gradient norm at the rungs of ``workers.search.asha_rungs``. The rest are ``StoppingConfig``
#: overrides of ``workers.stopping.schedule_aware_config``.
RULES: dict[str, dict[str, Any] | None] = {
    "schedule-aware": {},
    "asha": None,
    "asha-min-norm": {"statistic": "min_grad_norm", "placement": "sfo", "cap": False, "reduction_factor": 3},
    "warmup-rungs": {"statistic": "min_grad_norm", "placement": "after_warmup", "cap": False},
    "rungs-only": {"cap": False},
    "cap-only": {"rungs": ()},
    "sfo-placement": {"placement": "sfo"},
    "after-warmup": {"placement": "after_warmup"},
    "min-grad-norm": {"statistic": "min_grad_norm"},
    "min-loss": {"statistic": "min_loss"},
    "rf3": {"reduction_factor": 3},
}


def search(
    *, seed: int, trials: int, epochs: int, target: float, rule: str | None, n_train: int
) -> dict[str, Any]:
    """One Optuna study with early-stopping rule ``rule`` (a ``RULES`` name, None for none); returns the best
    trial's schedule and SFO, and the SFO every trial spent.

    A trial the rule stops is raised as ``optuna.TrialPruned`` (Optuna records it PRUNED, never COMPLETE
    with a penalty); its intermediate values are the workers' objective per epoch, as ``OptunaSearch``
    records them under the Ray driver."""
    import optuna

    from schedules.space import resolve
    from schedules.spec import Horizon
    from schedules.trainer import train
    from workers.search import asha_rungs
    from workers.stopping import ScheduleAwareStopping, ScheduleFacts, schedule_aware_config
    from workers.trainable import ObjectiveTracker

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cap = float(epochs * n_train)
    horizon = Horizon(epochs=epochs, n_train=n_train)
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    stopping: ScheduleAwareStopping | None = None
    settings: dict[str, Any] | None = None
    if rule == "asha":
        rungs = asha_rungs(cap, float(n_train), trials)
        if rungs is not None:
            grace, rf = rungs
            # the intermediate step is the epoch, and every epoch is n_train SFO: rungs in SFO / n_train
            pruner = optuna.pruners.SuccessiveHalvingPruner(
                min_resource=max(1, round(grace / n_train)), reduction_factor=int(rf)
            )
            settings = {"grace_sfo": grace, "reduction_factor": rf}
    elif rule is not None:
        config = schedule_aware_config(
            budget_sfo=cap, sfo_per_epoch=float(n_train), target=target, **(RULES[rule] or {})
        )
        stopping = ScheduleAwareStopping(config)
        settings = config.to_json()
    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner
    )
    spent: list[int] = []
    reasons: dict[str, int] = {}
    log: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        schedule = resolve(SPACE, _suggest(trial))
        facts = ScheduleFacts.from_schedule(schedule, horizon)
        tracker = ObjectiveTracker("sfo_to_target", target, cap)
        stop: dict[str, Any] = {"flag": False, "why": ""}

        def report(record: Any) -> None:
            data = record.to_json()
            value = tracker.update(data)
            if stopping is not None:
                trial.report(value, step=int(record.epoch))
                decision = stopping.on_result(str(trial.number), facts, data)
                stop["flag"], stop["why"] = decision.stop, decision.reason
                return
            trial.report(float(record.grad_norm), step=int(record.epoch))
            # a trial at its target ends on its own; pruning it then would only lose its result
            if record.grad_norm > target and trial.should_prune():
                stop["flag"], stop["why"] = True, "asha: successive halving"

        result = train(
            trial_spec(schedule.to_json(), seed=seed, epochs=epochs, target=target),
            report=report,
            device="cpu",
            should_stop=lambda: stop["flag"],
        )
        spent.append(int(result.summary.total_sfo))
        kind = stop["why"].split(":", 1)[0]
        # a diverged trial is a result (the trainer ends it itself): completed with the worst objective
        pruned = stop["flag"] and result.summary.sfo_to_target is None and kind != "diverged"
        log.append(
            {
                "number": trial.number,
                "schedule": schedule.to_json(),
                "sfo": int(result.summary.total_sfo),
                "sfo_to_target": result.summary.sfo_to_target,
                "stopped": stop["why"] if pruned else None,
            }
        )
        trial.set_user_attr("schedule", schedule.to_json())
        trial.set_user_attr("sfo_to_target", result.summary.sfo_to_target)
        trial.set_user_attr("test_acc", result.records[-1].test_acc if result.records else None)
        if pruned:
            reasons[kind] = reasons.get(kind, 0) + 1
            raise optuna.TrialPruned(stop["why"])
        return tracker.value(result.summary.final_grad_norm)

    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    reached = [t for t in study.trials if t.user_attrs.get("sfo_to_target") is not None]
    best = min(reached, key=lambda t: t.user_attrs["sfo_to_target"], default=None)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    return {
        "rule": rule,
        "settings": settings,
        "trials": trials,
        "pruned": len(pruned),
        "pruned_by": reasons,
        "reached_target": len(reached),
        "total_sfo": sum(spent),
        "best_sfo_to_target": None if best is None else best.user_attrs["sfo_to_target"],
        "best_schedule": None if best is None else best.user_attrs["schedule"],
        "best_test_acc": None if best is None else best.user_attrs["test_acc"],
        "wall_s": time.perf_counter() - started,
        "trial_log": log,
    }


def audit(
    result: dict[str, Any], *, seed: int, epochs: int, target: float, known: dict[str, int | None]
) -> dict[str, Any]:
    """Whether early stopping spared the winners, apart from the sampler: every trial the rule stopped is
    re-run to the end (training is deterministic under the seed, so this is the run it cut short); a
    *pruned winner* is one that would have reached the target with less SFO than the best the search
    found. ``known``: SFO to target of schedules already run to the end under ``seed`` (the search without
    early stopping runs many of the same ones: TPE's first trials are random draws from the same seed),
    keyed by their JSON; filled in as it goes."""
    best = result["best_sfo_to_target"]
    full = []
    for entry in result["trial_log"]:
        if entry["stopped"] is not None:
            key = json.dumps(entry["schedule"], sort_keys=True)
            if key not in known:
                known[key] = run_fixed(entry["schedule"], seed=seed, epochs=epochs, target=target)[
                    "sfo_to_target"
                ]
            entry["sfo_to_target_unstopped"] = known[key]
            full.append(known[key])
    reached = [x for x in full if x is not None]
    return {
        "stopped": len(full),
        "stopped_would_reach": len(reached),
        "pruned_winners": sum(1 for x in reached if best is None or x < best),
        "best_stopped": min(reached, default=None),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def es_checks(per_seed: Sequence[dict[str, Any]], rule: str) -> dict[str, Any]:
    """The issue's two early-stopping figures for ``rule`` (the "on" side, or an alternative): per seed the
    best SFO to target found with it over the best found without it (inf when it found none), their max,
    and the search's total SFO without it over with it, summed over the seeds."""

    def side(row: dict[str, Any]) -> dict[str, Any]:
        return row["search"]["on"] if row["search"]["on"]["rule"] == rule else row["alternatives"][rule]

    ratios: dict[str, float | None] = {}
    for row in per_seed:
        on, off = side(row)["best_sfo_to_target"], row["search"]["off"]["best_sfo_to_target"]
        if off is None:
            ratios[str(row["seed"])] = None  # nothing to compare with: the search without ES found none
        else:
            ratios[str(row["seed"])] = math.inf if on is None else on / off
    known = [r for r in ratios.values() if r is not None]
    off_total = sum(row["search"]["off"]["total_sfo"] for row in per_seed)
    on_total = sum(side(row)["total_sfo"] for row in per_seed)
    audits = [side(row).get("audit") for row in per_seed]
    return {
        "rule": rule,
        "pruned_winners": sum(a["pruned_winners"] for a in audits if a) if all(audits) else None,
        "best_ratio": ratios,
        "best_ratio_max": max(known) if known else None,
        "sfo_saving": _ratio(off_total, on_total),
        "pruned_mean": statistics.fmean(side(row)["pruned"] for row in per_seed),
        "pruned_by": {
            k: sum(side(row)["pruned_by"].get(k, 0) for row in per_seed)
            for k in sorted({k for row in per_seed for k in side(row)["pruned_by"]})
        },
    }


def summarize(
    per_seed: Sequence[dict[str, Any]], fixed: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Mean and spread over seeds of every line, and the target figures.

    The best paper strategy is the one with the lowest mean among those that reached the target on every
    seed: a mean over the seeds that happened to reach it would flatter a strategy that mostly fails."""
    lines: dict[str, dict[str, Any]] = {}
    for name in fixed:
        lines[name] = {"sfo_to_target": mean_spread([r["fixed"][name]["sfo_to_target"] for r in per_seed])}
    for side in ("on", "off"):
        runs = [r["search"][side] for r in per_seed]
        lines[f"search (ES {side}): best"] = {
            "sfo_to_target": mean_spread([x["best_sfo_to_target"] for x in runs]),
            "held_out": mean_spread([(x.get("held_out") or {}).get("sfo_to_target") for x in runs]),
            "search_total_sfo": mean_spread([x["total_sfo"] for x in runs]),
            "pruned": mean_spread([x["pruned"] for x in runs]),
            "wall_s": mean_spread([x["wall_s"] for x in runs]),
        }
    always = {
        k: lines[k]["sfo_to_target"]["mean"]
        for k in fixed
        if k.startswith("paper-") and lines[k]["sfo_to_target"]["missing"] == 0
    }
    best_paper = min(always.items(), key=lambda kv: kv[1], default=(None, None))
    checks: dict[str, Any] = {"best_paper_strategy": best_paper[0], "best_paper_sfo": best_paper[1]}
    for side in ("on", "off"):
        line = lines[f"search (ES {side}): best"]
        checks[f"es_{side}_best_over_best_paper"] = _ratio(line["sfo_to_target"]["mean"], best_paper[1])
        checks[f"es_{side}_held_out_over_best_paper"] = _ratio(line["held_out"]["mean"], best_paper[1])
        checks[f"es_{side}_reached"] = f"{line['sfo_to_target']['n']}/{len(per_seed)}"
    on = es_checks(per_seed, per_seed[0]["search"]["on"]["rule"])
    checks["es_on"] = on
    checks["es_rule"] = on["rule"]
    checks["es_best_ratio"] = on["best_ratio"]
    checks["es_best_ratio_max"] = on["best_ratio_max"]
    checks["es_sfo_saving"] = on["sfo_saving"]
    checks["alternatives"] = [es_checks(per_seed, name) for name in per_seed[0].get("alternatives", {})]
    return lines, checks


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return "none found" if value == math.inf else f"{value:.3g}"


def _verdict(ok: bool | None) -> str:
    return "no figure" if ok is None else ("met" if ok else "MISSED")


def report(lines: dict[str, Any], checks: dict[str, Any]) -> None:
    rows = []
    for name, s in lines.items():
        sfo = s["sfo_to_target"]
        held = s.get("held_out")
        rows.append(
            [
                name,
                sfo["mean"],
                sfo["std"],
                f"{sfo['n']}/{sfo['n'] + sfo['missing']}",
                held["mean"] if held else None,
                f"{held['n']}/{held['n'] + held['missing']}" if held else None,
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
    if checks["alternatives"] or checks["es_on"]["pruned_winners"] is not None:
        alt = [
            [
                a["rule"],
                " ".join(_fmt(r) for r in a["best_ratio"].values()),
                _fmt(a["best_ratio_max"]),
                a["sfo_saving"],
                a["pruned_mean"],
                ", ".join(f"{k} {v}" for k, v in a["pruned_by"].items()),
                a["pruned_winners"],
            ]
            for a in [checks["es_on"], *checks["alternatives"]]
        ]
        print("\nearly-stopping rules, each against the same searches without early stopping:")
        headers = ["rule", "best on/off per seed", "max", "SFO off/on", "pruned/search", "pruned by"]
        print(table([*headers, "pruned winners"], alt))
    ratios, worst, saving = checks["es_best_ratio"], checks["es_best_ratio_max"], checks["es_sfo_saving"]
    held = checks["es_on_held_out_over_best_paper"]
    print(
        f"best paper strategy (reached on every seed): {checks['best_paper_strategy']} "
        f"({checks['best_paper_sfo'] or 0:,.0f} SFO); early-stopping rule: {checks['es_rule']}"
    )
    print(
        "es_best_ratio "
        + " ".join(f"seed{k}={_fmt(v)}" for k, v in ratios.items())
        + f" max={_fmt(worst)} (want <= 1.1 on every seed: "
        + f"{_verdict(None if worst is None else worst <= 1.1)})"
    )
    print(f"es_sfo_saving {_fmt(saving)} (want >= 2: {_verdict(None if saving is None else saving >= 2)})")
    if checks["es_on"]["pruned_winners"] is not None:
        print(
            f"es_pruned_winners {checks['es_on']['pruned_winners']} (stopped trials that, re-run to the end, "
            "would have beaten the best their search found)"
        )
    print(
        f"es_held_out_over_best_paper {_fmt(held)} (best found with ES on, re-run on held-out seeds, "
        f"over the best paper strategy; want <= 0.5: {_verdict(None if held is None else held <= 0.5)}; "
        f"ES off: {_fmt(checks['es_off_held_out_over_best_paper'])})"
    )


def plot(lines: dict[str, Any], checks: dict[str, Any], path: Path) -> None:
    """Bars: mean SFO to target (std as error bars, reached/seeds on top) and the search's own SFO."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # fixed order (a result file read back has its keys sorted)
    searches = ["search (ES on): best", "search (ES off): best"]
    names = [n for n in lines if n not in searches] + searches
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
    means = [lines[n]["sfo_to_target"]["mean"] or 0.0 for n in names]
    stds = [lines[n]["sfo_to_target"]["std"] or 0.0 for n in names]
    ax1.bar(range(len(names)), means, yerr=stds, color="tab:blue", alpha=0.8, capsize=3)
    for i, n in enumerate(names):
        s = lines[n]["sfo_to_target"]
        label = f"{s['n']}/{s['n'] + s['missing']}"
        ax1.text(i, (means[i] or 0) + stds[i], label, ha="center", va="bottom", fontsize=8)
    if checks.get("best_paper_sfo"):
        ax1.axhline(
            checks["best_paper_sfo"] / 2, color="tab:red", ls="--", lw=1, label="target: half the best paper"
        )
        ax1.legend(fontsize=8)
    ax1.set_xticks(
        range(len(names)), [n.replace(": best", "") for n in names], rotation=25, ha="right", fontsize=8
    )
    ax1.set_ylabel("SFO to target (mean over seeds that reached it)")
    ax2.bar(range(len(searches)), [lines[n]["search_total_sfo"]["mean"] for n in searches], color="tab:gray")
    ax2.set_xticks(range(len(searches)), ["ES on", "ES off"])
    ax2.set_ylabel("SFO spent by the whole search")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--trials", type=int, default=None, help="trials per search")
    parser.add_argument("--epochs", type=int, default=30, help="epoch budget per trial")
    parser.add_argument("--target", type=float, default=0.03, help="full gradient norm target")
    parser.add_argument("--quick", action="store_true", help="one seed, 8 trials (< 2 minutes)")
    parser.add_argument(
        "--rule", choices=sorted(RULES), default="schedule-aware", help="the early-stopping rule of ES on"
    )
    parser.add_argument(
        "--compare", action="store_true", help="also run every other rule in RULES (the alternatives table)"
    )
    parser.add_argument(
        "--no-audit", action="store_true", help="do not re-run stopped trials to count pruned winners"
    )
    parser.add_argument("--name", default="search_efficiency", help="result file name (tests use another)")
    args = parser.parse_args(argv)
    from schedules.paper import paper_strategies
    from schedules.space import validate
    from schedules.tasks import get_definition

    validate(SPACE)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    trials = args.trials or (8 if args.quick else 24)
    epochs, target = args.epochs, args.target
    alternatives = [r for r in RULES if r != args.rule] if args.compare else []
    n_train = get_definition(TASK).training_size({})
    fixed = {
        "constant-b128": CONSTANT_BASELINE,
        **{k: v.to_json() for k, v in paper_strategies(max_epochs=epochs).items()},
    }
    print(
        f"{TASK}, NSHB 0.9, target |grad f| <= {target}, {epochs} epochs/trial ({epochs * n_train:,} SFO), "
        f"seeds {seeds}, {trials} trials/search, early stopping: {args.rule}"
        + (f" (and {', '.join(alternatives)})" if alternatives else "")
    )
    started = time.perf_counter()
    per_seed: list[dict[str, Any]] = []
    for seed in seeds:
        row: dict[str, Any] = {"seed": seed, "fixed": {}, "search": {}, "alternatives": {}}
        for name, schedule in fixed.items():
            row["fixed"][name] = run_fixed(schedule, seed=seed, epochs=epochs, target=target)
        common = {"seed": seed, "trials": trials, "epochs": epochs, "target": target, "n_train": n_train}
        for side, rule in (("on", args.rule), ("off", None)):
            result = search(rule=rule, **common)
            if result["best_schedule"] is not None:
                result["held_out"] = run_fixed(
                    result["best_schedule"], seed=seed + HELD_OUT_SEED, epochs=epochs, target=target
                )
            row["search"][side] = result
        for rule in alternatives:
            row["alternatives"][rule] = search(rule=rule, **common)
        if not args.no_audit:
            known = {
                json.dumps(e["schedule"], sort_keys=True): e["sfo_to_target"]
                for e in row["search"]["off"]["trial_log"]
            }
            for result in [row["search"]["on"], *row["alternatives"].values()]:
                result["audit"] = audit(result, seed=seed, epochs=epochs, target=target, known=known)
        per_seed.append(row)
        paper = {k: v["sfo_to_target"] for k, v in row["fixed"].items()}
        print(
            f"seed {seed}: fixed {paper}; search best on/off "
            f"{row['search']['on']['best_sfo_to_target']}/{row['search']['off']['best_sfo_to_target']}, "
            f"spent on/off {row['search']['on']['total_sfo']:,}/{row['search']['off']['total_sfo']:,} "
            f"({time.perf_counter() - started:.0f}s)",
            flush=True,
        )

    lines, checks = summarize(per_seed, list(fixed))
    report(lines, checks)
    image = IMG_DIR / f"{args.name}.png"
    plot(lines, checks, image)
    print(f"plot: docs/img/{image.name}")
    path = write_latest(
        args.name,
        {
            "quick": args.quick,
            "command": "python bench/search_efficiency.py "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            "task": TASK,
            "optimizer": OPTIMIZER,
            "target": target,
            "epochs": epochs,
            "n_train": n_train,
            "trials": trials,
            "seeds": seeds,
            "space": SPACE,
            "fixed_schedules": fixed,
            "engine": "optuna in-process (TPE; early stopping by the rule named in each search), "
            "not the Ray Tune driver",
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
