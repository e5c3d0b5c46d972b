"""Critical batch size: constant-LR runs over a grid of batch sizes (paper-notes §4.2, §6.3 prediction 8).

For every batch size b (powers of 2) one constant-LR run per seed; for each target eps the steps K(b) and the
SFO N(b) = sum of batch sizes until the full gradient norm (checked at epoch ends) first falls to eps. The
empirical critical batch size is the SFO minimiser. The constants of the bound
K(b) = C1 b / (eps^2 b - C2) are fitted by least squares on the linear form 1/K = eps^2/C1 - (C2/C1)(1/b),
giving the theoretical b* = 2 C2 / eps^2; the theory predicts that b* grows as eps tightens (~ 1/eps^2).
Writes ``bench/results/critical_batch.json`` and ``docs/img/critical_batch.png``.

    python bench/critical_batch.py --quick     # < 2 minutes on 2 CPU cores
    python bench/critical_batch.py             # the table in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import IMG_DIR, table, write_latest


def first_hit(records: Sequence[Any], eps: float) -> tuple[int, int] | None:
    """(steps, SFO) at the first epoch end whose full gradient norm is <= eps, or None."""
    for r in records:
        if r.grad_norm <= eps:
            return int(r.step), int(r.sfo)
    return None


def fit_constants(points: Sequence[tuple[int, float]], eps: float) -> dict[str, float] | None:
    """C1, C2 and b* = 2 C2/eps^2 from (b, K) pairs, fitting 1/K = eps^2/C1 - (C2/C1)/b.

    None when fewer than three points or the fit has the wrong signs (the bound's shape does not hold):

    >>> fit = fit_constants([(b, 100 * b / (0.01 * b - 0.04)) for b in (8, 16, 32, 64)], 0.1)
    >>> round(fit["C1"]), round(fit["C2"], 3), round(fit["b_star"])
    (100, 0.04, 8)
    """
    if len(points) < 3:
        return None
    xs = [1.0 / b for b, _ in points]
    ys = [1.0 / k for _, k in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    if intercept <= 0 or slope >= 0:
        return None
    c1 = eps**2 / intercept
    c2 = -slope * c1
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return {
        "C1": c1,
        "C2": c2,
        "b_star": 2.0 * c2 / eps**2,
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0,
    }


def run_grid(
    *,
    task: str,
    optimizer: str,
    lr: float,
    batches: Sequence[int],
    targets: Sequence[float],
    epochs: int,
    seeds: Sequence[int],
) -> list[dict[str, Any]]:
    from schedules.spec import TrialSpec
    from schedules.trainer import train

    runs = []
    tightest = min(targets)
    for b in batches:
        for seed in seeds:
            spec = TrialSpec.from_json(
                {
                    "task": {"name": task, "options": {}},
                    "optimizer": {"name": optimizer, "momentum": 0.0 if optimizer == "sgd" else 0.9},
                    "schedule": {
                        "batch_size": {"family": "constant", "b0": b},
                        "lr": {"family": "constant", "lr0": lr},
                    },
                    "budget": {"max_epochs": epochs, "max_sfo": None},
                    # the run ends at the tightest target: every looser one is reached before it
                    "target": {"grad_norm": tightest, "stop_at_target": True},
                    "seed": seed,
                }
            )
            started = time.perf_counter()
            result = train(spec, device="cpu")
            hits = {str(eps): first_hit(result.records, eps) for eps in targets}
            runs.append(
                {
                    "batch": b,
                    "seed": seed,
                    "wall_s": time.perf_counter() - started,
                    "min_grad_norm": result.summary.min_grad_norm,
                    "total_sfo": result.summary.total_sfo,
                    "hits": {k: None if v is None else {"steps": v[0], "sfo": v[1]} for k, v in hits.items()},
                }
            )
            print(
                f"  b={b:<5} seed={seed} min|g|={result.summary.min_grad_norm:.4f} "
                f"{time.perf_counter() - started:.1f}s",
                flush=True,
            )
    return runs


def summarize(
    runs: Sequence[dict[str, Any]], targets: Sequence[float], batches: Sequence[int]
) -> dict[str, Any]:
    """Per target: mean steps and SFO per batch size (over seeds that reached it), argmin, fit."""
    out: dict[str, Any] = {}
    for eps in targets:
        rows: list[dict[str, Any]] = []
        for b in batches:
            hits = [r["hits"][str(eps)] for r in runs if r["batch"] == b]
            reached = [h for h in hits if h is not None]
            rows.append(
                {
                    "batch": b,
                    "reached": f"{len(reached)}/{len(hits)}",
                    # a mean over seeds only when every seed reached it: otherwise the mean flatters b
                    "steps": statistics.fmean(h["steps"] for h in reached)
                    if len(reached) == len(hits)
                    else None,
                    "sfo": statistics.fmean(h["sfo"] for h in reached) if len(reached) == len(hits) else None,
                }
            )
        complete = [r for r in rows if r["sfo"] is not None]
        best = min(complete, key=lambda r: r["sfo"]) if complete else None
        fit = fit_constants([(r["batch"], r["steps"]) for r in complete], eps)
        out[str(eps)] = {"rows": rows, "empirical_b_star": best["batch"] if best else None, "fit": fit}
    return out


def plot(summary: dict[str, Any], targets: Sequence[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_k, ax_n) = plt.subplots(1, 2, figsize=(10, 4))
    for eps in targets:
        s = summary[str(eps)]
        pts = [(r["batch"], r["steps"], r["sfo"]) for r in s["rows"] if r["sfo"] is not None]
        if not pts:
            continue
        bs, ks, ns = zip(*pts, strict=True)
        line = ax_k.plot(bs, ks, "o-", label=f"eps={eps}")[0]
        ax_n.plot(bs, ns, "o-", color=line.get_color(), label=f"eps={eps}")
        fit = s["fit"]
        if fit:
            grid = [2 ** (k / 8) for k in range(int(8 * math.log2(min(bs))), int(8 * math.log2(max(bs))) + 1)]
            grid = [b for b in grid if eps**2 * b > fit["C2"] * 1.01]
            ax_k.plot(
                grid,
                [fit["C1"] * b / (eps**2 * b - fit["C2"]) for b in grid],
                "--",
                color=line.get_color(),
                alpha=0.6,
            )
            ax_n.plot(
                grid,
                [fit["C1"] * b * b / (eps**2 * b - fit["C2"]) for b in grid],
                "--",
                color=line.get_color(),
                alpha=0.6,
            )
        if s["empirical_b_star"]:
            ax_n.axvline(s["empirical_b_star"], color=line.get_color(), ls=":", alpha=0.7)
    for ax, label in ((ax_k, "steps to target K(b)"), (ax_n, "SFO to target N(b)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size b")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title + "  (dashed: fitted bound; dotted: empirical b*)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="digits-mlp")
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "shb", "nshb"])
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batches", type=int, nargs="+", default=None)
    parser.add_argument("--targets", type=float, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=None, help="epoch budget per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--quick", action="store_true", help="small grid, one seed (< 2 minutes)")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--name", default="critical_batch", help="result file name (tests use another)")
    args = parser.parse_args(argv)
    lr = args.lr if args.lr is not None else DEFAULT_LR
    batches = args.batches or ([4, 8, 16, 32, 64, 128] if args.quick else [2, 4, 8, 16, 32, 64, 128, 256])
    targets = sorted(args.targets or ([0.1, 0.05] if args.quick else [0.2, 0.1, 0.05, 0.03]), reverse=True)
    epochs = args.epochs or (30 if args.quick else 60)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    print(f"task={args.task} optimizer={args.optimizer} lr={lr} epochs<={epochs} seeds={seeds}")
    started = time.perf_counter()
    runs = run_grid(
        task=args.task,
        optimizer=args.optimizer,
        lr=lr,
        batches=batches,
        targets=targets,
        epochs=epochs,
        seeds=seeds,
    )
    summary = summarize(runs, targets, batches)
    for eps in targets:
        s = summary[str(eps)]
        print(f"\ntarget |grad f| <= {eps}")
        print(
            table(
                ["b", "reached", "steps K", "SFO N"],
                [[r["batch"], r["reached"], r["steps"], r["sfo"]] for r in s["rows"]],
            )
        )
        fit = s["fit"]
        fit_text = (
            f"C1={fit['C1']:.4g} C2={fit['C2']:.4g} theoretical b*={fit['b_star']:.1f} "
            f"(R^2 of 1/K on 1/b: {fit['r2']:.2f})"
            if fit
            else "fit: not enough points / wrong shape"
        )
        print(f"empirical b* (SFO argmin) = {s['empirical_b_star']}; {fit_text}")
    print(
        "\n"
        + table(
            ["eps", "empirical b*", "fitted b*", "C1", "C2"],
            [
                [
                    eps,
                    summary[str(eps)]["empirical_b_star"],
                    *((summary[str(eps)]["fit"] or {}).get(k) for k in ("b_star", "C1", "C2")),
                ]
                for eps in targets
            ],
        )
    )
    image = None
    if not args.no_plot:
        image = IMG_DIR / f"{args.name}.png"
        plot(summary, targets, image, f"{args.task}, {args.optimizer}, constant lr={lr}")
        print(f"plot: docs/img/{image.name}")
    path = write_latest(
        args.name,
        {
            "quick": args.quick,
            "task": args.task,
            "optimizer": args.optimizer,
            "lr": lr,
            "batches": batches,
            "targets": targets,
            "epochs": epochs,
            "seeds": seeds,
            "runs": runs,
            "summary": summary,
            "plot": f"docs/img/{image.name}" if image else None,
            "wall_s": time.perf_counter() - started,
        },
    )
    print(f"wrote bench/results/{path.name} in {time.perf_counter() - started:.0f}s")
    return 0


DEFAULT_LR = 0.5  # SGD on digits-mlp: large enough for a visible noise floor at small b (see docs)

if __name__ == "__main__":
    raise SystemExit(main())
