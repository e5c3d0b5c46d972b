"""The paper's strategies on digits-mlp, scaled from 300 to 60 epochs (paper-notes §3.2, §6.3).

Paper setting kept: NSHB, beta = 0.9, lr0 = 0.1, batch 8 doubling every tenth of the run (10 stages; on
digits' 1347 training examples the last two stages are clipped to the full set), constant baseline b = 128.
The four strategies are ``schedules.paper.paper_strategies(max_epochs=60)``. Every run uses the same epochs,
hence the same SFO (60 x 1347).

    python bench/reproduction.py --seeds 0 1 2     # the table in docs/reproduction.md

``tests/schedules/test_reproduction.py`` runs the same grid with one seed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schedules.paper import paper_strategies
from schedules.spec import Schedule, TrialSpec
from schedules.trainer import TrialResult, train

EPOCHS = 60
TARGETS = (0.05, 0.02, 0.01)
GROW = {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": EPOCHS // 10}
CONSTANT_LR = {"family": "constant", "lr0": 0.1}


def strategies(epochs: int = EPOCHS, *, with_b8: bool = False) -> dict[str, Schedule]:
    """Claim 1's pair (constant LR, constant vs growing batch) and the paper's four strategies
    (``schedules.paper.paper_strategies``: (i) b=128 cosine, (ii) growing cosine, (iii) growing with LR
    growth 0.1 -> 0.5, (iv) growing with warm-up 0.1 -> 0.5 over ten one-epoch plateaus)."""
    grow = {**GROW, "interval": max(1, epochs // 10)}
    out = {
        "const-b128/const-lr": Schedule.from_json(
            {"batch_size": {"family": "constant", "b0": 128}, "lr": CONSTANT_LR}
        ),
        "grow/const-lr": Schedule.from_json({"batch_size": grow, "lr": CONSTANT_LR}),
    }
    if with_b8:  # the same first batch as the growing runs, never grown (slow: 169 steps per epoch)
        out["const-b8/const-lr"] = Schedule.from_json(
            {"batch_size": {"family": "constant", "b0": 8}, "lr": CONSTANT_LR}
        )
    out.update(paper_strategies(max_epochs=epochs))
    return out


def spec_for(schedule: Schedule, seed: int, epochs: int = EPOCHS) -> TrialSpec:
    return TrialSpec.from_json(
        {
            "task": {"name": "digits-mlp", "options": {}},
            "optimizer": {"name": "nshb", "momentum": 0.9},
            "schedule": schedule.to_json(),
            "budget": {"max_epochs": epochs, "max_sfo": None},
            "seed": seed,
        }
    )


def sfo_to(result: TrialResult, target: float) -> int | None:
    return next((r.sfo for r in result.records if r.grad_norm <= target), None)


def late_ratio(result: TrialResult) -> float:
    """Mean grad norm of the last 20% of epochs / of the 20% before: ~1 a plateau, < 1 still falling."""
    g = [r.grad_norm for r in result.records]
    k = max(1, len(g) // 5)
    return statistics.fmean(g[-k:]) / statistics.fmean(g[-2 * k : -k])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--with-b8", action="store_true", help="add a constant b=8 run (slow)")
    args = parser.parse_args(argv)
    print(
        f"{'strategy':<26}{'seed':>5}{'final |g|':>11}{'min |g|':>10}{'late ratio':>11}"
        + "".join(f"{'SFO to ' + str(t):>14}" for t in TARGETS)
        + f"{'best acc':>10}{'s':>6}"
    )
    for name, schedule in strategies(with_b8=args.with_b8).items():
        for seed in args.seeds:
            started = time.perf_counter()
            result = train(spec_for(schedule, seed), device="cpu")
            s = result.summary
            hits = "".join(f"{sfo_to(result, t) or '-':>14}" for t in TARGETS)
            print(
                f"{name:<26}{seed:>5}{s.final_grad_norm:>11.4f}{s.min_grad_norm:>10.4f}"
                f"{late_ratio(result):>11.2f}{hits}{s.best_test_acc:>10.3f}"
                f"{time.perf_counter() - started:>6.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
