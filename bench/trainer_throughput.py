"""Training throughput: ``schedules.trainer.train`` on its in-memory and its streamed path, against a plain
PyTorch ``DataLoader`` loop.

The baseline is the loop as usually written (and as the paper's code is): a ``TensorDataset`` and a fresh
``DataLoader(shuffle=True)`` each epoch for the epoch's batch size, ``loss.item()`` every step, the optimizer
stepping parameter by parameter, then a full-gradient pass through another ``DataLoader`` with the current
batch size, accumulating ``.grad`` scaled by b/n, and a test pass with batch 100. Ours, in memory ("ours"),
gathers batches by index from on-device tensors, syncs once per epoch and measures f and grad f in one large
chunk. Ours, streamed ("streamed"), is the same trainer on the same task with ``stream: true``: the data stay
in a ``TensorDataset`` on the host and are read through one ``DataLoader`` whose batch sampler follows the
batch plan (``num_workers`` from ``--num-workers``), as a task whose data do not fit on the device is read.

All three run the same task, schedule, optimizer and seed, alternating in one process (the order rotates each
repeat), and the table reports the median SFO per second of each, the ratios ours/loader, streamed/ours and
streamed/loader, and the share of wall time spent in measurement passes. Results go to
``bench/results/trainer_throughput-<task>.json`` (the latest run).

    python bench/trainer_throughput.py --quick          # about 3 minutes on 2 CPU cores
    python bench/trainer_throughput.py --task digits-cnn
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import code_version, machine, median, write_result
from schedules.spec import Horizon, TrialSpec, batch_plan, total_steps
from schedules.tasks.runtime import load_task
from schedules.trainer import train


class PaperSGDM(torch.optim.Optimizer):
    """SHB / NSHB written the way the paper's ``optim/sgdm.py`` is: a Python loop over parameters."""

    def __init__(self, params: Any, lr: float, momentum: float, nshb: bool) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "nshb": nshb})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(group["momentum"]).add_(
                    p.grad, alpha=(1 - group["momentum"]) if group["nshb"] else 1.0
                )
                p.add_(buf, alpha=-group["lr"])


def dataloader_loop(spec: TrialSpec) -> dict[str, float]:
    """The usual hand-written loop; returns training SFO, wall seconds and seconds in measurement passes."""
    task = load_task(spec.task.name, spec.task.options, device="cpu")
    started = time.perf_counter()
    torch.manual_seed(spec.seed)
    model = task.build_model()
    opt = PaperSGDM(
        model.parameters(),
        lr=0.0,
        momentum=0.0 if spec.optimizer.name == "sgd" else spec.optimizer.momentum,
        nshb=spec.optimizer.name == "nshb",
    )
    horizon = Horizon(epochs=spec.budget.max_epochs, n_train=task.n_train)
    plan = batch_plan(spec.schedule, horizon)
    big_t = total_steps(spec.schedule, horizon)
    train_set = TensorDataset(task.train.x, task.train.y)
    test_set = TensorDataset(task.test.x, task.test.y)
    gen = torch.Generator().manual_seed(spec.seed)
    n = task.n_train
    sfo = step = 0
    measure_s = 0.0
    grad_norm = float("nan")
    for epoch, b in enumerate(plan):
        model.train()
        running = 0.0
        for xb, yb in DataLoader(train_set, batch_size=b, shuffle=True, generator=gen):
            lr = spec.schedule.lr.at(epoch=epoch, step=step, total_steps=big_t, horizon=horizon)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            running += loss.item()
            sfo += len(yb)
            step += 1
        t = time.perf_counter()
        # full gradient as in the paper's get_full_grad_list: same batch size, shuffled, b/n weights
        opt.zero_grad()
        for xb, yb in DataLoader(train_set, batch_size=b, shuffle=True, generator=gen):
            (F.cross_entropy(model(xb), yb) * (b / n)).backward()
        grad_norm = math.sqrt(
            sum(float(p.grad.norm() ** 2) for p in model.parameters() if p.grad is not None)
        )
        opt.zero_grad()
        model.eval()
        correct = 0
        test_loss = 0.0
        with torch.no_grad():
            for xb, yb in DataLoader(test_set, batch_size=100):
                out = model(xb)
                test_loss += F.cross_entropy(out, yb).item()
                correct += int((out.argmax(1) == yb).sum().item())
        measure_s += time.perf_counter() - t
    return {
        "sfo": sfo,
        "wall_s": time.perf_counter() - started,
        "measure_s": measure_s,
        "grad_norm": grad_norm,
    }


def ours(spec: TrialSpec) -> dict[str, float]:
    result = train(spec, device="cpu")
    s = result.summary
    return {
        "sfo": s.total_sfo,
        "wall_s": s.wall_s,
        "measure_s": result.measure_s,
        "grad_norm": s.final_grad_norm if s.final_grad_norm is not None else math.nan,
        "task_bytes": result.task_bytes,
    }


def streamed_spec(spec: TrialSpec, num_workers: int) -> TrialSpec:
    """The same trial with the task's data read through the streamed path."""
    task = {
        "name": spec.task.name,
        "options": {**spec.task.options, "stream": True, "num_workers": num_workers},
    }
    return TrialSpec.from_json({**spec.to_json(), "task": task})


def make_spec(task: str, batch: dict[str, Any], epochs: int, optimizer: str) -> TrialSpec:
    return TrialSpec.from_json(
        {
            "task": {"name": task, "options": {}},
            "optimizer": {"name": optimizer, "momentum": 0.9},
            "schedule": {"batch_size": batch, "lr": {"family": "constant", "lr0": 0.1}},
            "budget": {"max_epochs": epochs, "max_sfo": None},
            "target": {"grad_norm": None, "stop_at_target": False},
            "seed": 0,
        }
    )


def cases(args: argparse.Namespace) -> list[tuple[str, dict[str, Any], int]]:
    sizes = args.batches or ([8, 32, 128, 512, 4096] if args.quick else [2**k for k in range(3, 13)])
    rows: list[tuple[str, dict[str, Any], int]] = [
        (f"constant b={b}", {"family": "constant", "b0": b}, args.epochs) for b in sizes
    ]
    # the paper's growing batch, 8 -> 4096 (x2 per stage), one stage per `interval` epochs
    interval = 1 if args.quick else 2
    if not args.batches:
        rows.append(
            (
                "exp_growth 8->4096",
                {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": interval},
                10 * interval,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--task", default="digits-mlp", choices=["digits-mlp", "digits-cnn", "synthetic-logreg"]
    )
    parser.add_argument("--optimizer", default="nshb", choices=["shb", "nshb", "sgd"])
    parser.add_argument("--epochs", type=int, default=None, help="epochs per constant-batch case")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each side per case")
    parser.add_argument("--quick", action="store_true", help="fewer cases and repeats (about 3 minutes)")
    parser.add_argument(
        "--batches", type=int, nargs="+", help="constant batch sizes to run (default: a sweep, plus growth)"
    )
    parser.add_argument(
        "--num-workers", type=int, default=0, help="DataLoader workers of the streamed path (default 0)"
    )
    parser.add_argument(
        "--baseline-threads",
        type=int,
        default=1,
        help="torch threads for the baseline (0: torch's default). Default 1, the count our trainer uses on "
        "small CPU tasks, so the ratio measures the loop and not the thread setting",
    )
    args = parser.parse_args(argv)
    if args.baseline_threads > 0:
        torch.set_num_threads(args.baseline_threads)
    args.epochs = args.epochs or (3 if args.quick else 5)
    repeats = args.repeats or (2 if args.quick else 3)

    rows = []
    print(
        f"task={args.task} optimizer={args.optimizer} repeats={repeats} torch={torch.__version__} "
        f"baseline threads={torch.get_num_threads()} streamed num_workers={args.num_workers}",
        flush=True,
    )
    header = (
        f"{'case':<22}{'ours SFO/s':>12}{'streamed SFO/s':>16}{'loader SFO/s':>14}{'ours/loader':>13}"
        f"{'streamed/ours':>15}{'streamed/loader':>17}"
        f"{'ours meas%':>12}{'str. meas%':>12}{'loader meas%':>14}"
    )
    print(header)
    print("-" * len(header))
    # warm-up: the first autograd pass and thread-pool start-up cost ~1 s once per process
    warm = make_spec(args.task, {"family": "constant", "b0": 64}, 1, args.optimizer)
    task_bytes = ours(warm)["task_bytes"]
    ours(streamed_spec(warm, args.num_workers))
    dataloader_loop(warm)
    sides: list[tuple[str, Any]] = [
        ("ours", ours),
        ("streamed", lambda spec: ours(streamed_spec(spec, args.num_workers))),
        ("loader", dataloader_loop),
    ]
    for label, batch, epochs in cases(args):
        spec = make_spec(args.task, batch, epochs, args.optimizer)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in sides}
        for r in range(repeats):
            for name, fn in sides[r % 3 :] + sides[: r % 3]:
                runs[name].append(fn(spec))
        summary: dict[str, Any] = {"case": label, "batch": batch, "epochs": epochs}
        for name, results in runs.items():
            summary[name] = {
                "sfo_per_s": median([x["sfo"] / x["wall_s"] for x in results]),
                "measure_share": median([x["measure_s"] / x["wall_s"] for x in results]),
                "wall_s": [x["wall_s"] for x in results],
                "sfo": results[0]["sfo"],
                "final_grad_norm": results[0]["grad_norm"],
            }
        speed = {name: summary[name]["sfo_per_s"] for name in runs}
        summary["ratio"] = speed["ours"] / speed["loader"]
        summary["streamed_vs_ours"] = speed["streamed"] / speed["ours"]
        summary["streamed_vs_loader"] = speed["streamed"] / speed["loader"]
        rows.append(summary)
        print(
            f"{label:<22}{speed['ours']:>12,.0f}{speed['streamed']:>16,.0f}{speed['loader']:>14,.0f}"
            f"{summary['ratio']:>12.2f}x{summary['streamed_vs_ours']:>14.2f}x"
            f"{summary['streamed_vs_loader']:>16.2f}x"
            f"{100 * summary['ours']['measure_share']:>11.1f}%"
            f"{100 * summary['streamed']['measure_share']:>11.1f}%"
            f"{100 * summary['loader']['measure_share']:>13.1f}%",
            flush=True,
        )
    for key, what in (
        ("ratio", "ours/loader"),
        ("streamed_vs_ours", "streamed/ours"),
        ("streamed_vs_loader", "streamed/loader"),
    ):
        values = [row[key] for row in rows]
        print(f"{what}: min {min(values):.2f}x, median {median(values):.2f}x, max {max(values):.2f}x")
    print(f"task tensors on the device (in memory): {task_bytes:,} bytes; streamed: 0")
    path = write_result(
        f"trainer_throughput-{args.task}",
        {
            "task": args.task,
            "optimizer": args.optimizer,
            "quick": args.quick,
            "repeats": repeats,
            "baseline_threads": torch.get_num_threads(),
            "num_workers": args.num_workers,
            "task_bytes": task_bytes,
            "rows": rows,
            "machine": machine(),
            "code_version": code_version(),
        },
    )
    print(f"wrote {path.name} under bench/results/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
