"""The population trainer against the same trials run one after another (``schedules.population``).

Trainer level (CPU, one thread, digits-mlp with its default model): for K = 1, 4, 16 members, the aggregate
SFO per second of ``train_population(members)`` (fused) against ``train(member)`` for each member in turn
(sequential), side by side in one process (the order alternates each repeat; medians of the repeats), in two
cases:

- **shared**: the members share one batch plan (``--plan``, default the paper's growing batch from 8, doubled
  every 2 epochs) and differ in LR schedule, momentum, optimizer variant and seed;
- **mixed**: the members have different growing-batch plans (b0 in 8, 16, 32, 64, doubling every 1 or 2
  epochs) and different LRs.

Both sides train the same specs, and the script checks that every member's SFO and step count agree. The
lines ``pack16_speedup_shared`` and ``pack16_speedup_mixed`` give the K = 16 ratio fused / sequential
(targets: 5x and 3x). Time includes each side's whole call (task loading, model building, measurement
passes). SFO/s is per CPU second of the process (the machine may be shared; with one thread and no other
load it equals wall-clock time, which is printed beside); "seq. meas." is the share of the sequential runs'
time spent in measurement passes, which are compute-bound on a CPU and cost as much fused.

GPU section (only where CUDA is present; otherwise it says so): K = 1, 2, 4, 8 members of
``cifar100-resnet18`` on CIFAR-shaped synthetic data, fused in one process against the same K as separate Ray
trials with ``num_gpus = 1/K`` each: training images per second and peak GPU memory per member.
``bench/gpu_mode.py`` runs this section too, so one script runs every GPU check.

    python bench/population.py --quick     # under a minute on one CPU thread
    python bench/population.py             # 3 repeats, 8 epochs
    python bench/population.py --design    # the measurement that chose the fused forward
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import median
from bench._report import table, write_latest

KS = (1, 4, 16)
GPU_KS = (1, 2, 4, 8)
LR_FAMILIES: tuple[dict[str, Any], ...] = (
    {"family": "constant", "lr0": 0.1},
    {"family": "cosine", "lr0": 0.2},
    {"family": "step_decay", "lr0": 0.3, "decay": 0.5, "interval": 2},
    {"family": "warmup_const", "lr0": 0.05, "lr_max": 0.3, "warmup_epochs": 2, "warmup_interval": 1},
    {"family": "linear", "lr0": 0.2},
    {"family": "diminishing", "lr0": 0.3},
)
OPTIMIZERS: tuple[dict[str, Any], ...] = (
    {"name": "nshb", "momentum": 0.9},
    {"name": "shb", "momentum": 0.5},
    {"name": "sgd", "momentum": 0.0},
    {"name": "nshb", "momentum": 0.8},
)


def member(
    i: int, batch: dict[str, Any], lr: dict[str, Any], *, epochs: int, task: str, options: dict[str, Any]
) -> Any:
    from schedules.spec import TrialSpec

    return TrialSpec.from_json(
        {
            "task": {"name": task, "options": options},
            "optimizer": OPTIMIZERS[i % len(OPTIMIZERS)],
            "schedule": {"batch_size": batch, "lr": lr},
            "budget": {"max_epochs": epochs, "max_sfo": None},
            "target": {"grad_norm": None, "stop_at_target": False},
            "seed": i,
        }
    )


def shared_members(k: int, *, plan: dict[str, Any], epochs: int) -> list[Any]:
    """One batch plan; LR family, optimizer and seed vary."""
    return [
        member(i, plan, LR_FAMILIES[i % len(LR_FAMILIES)], epochs=epochs, task="digits-mlp", options={})
        for i in range(k)
    ]


def mixed_members(k: int, *, epochs: int) -> list[Any]:
    """Growing-batch plans that differ: b0 8, 16, 32, 64 and a doubling every 1 or 2 epochs."""
    out = []
    for i in range(k):
        batch = {"family": "exp_growth", "b0": 8 * 2 ** (i % 4), "factor": 2.0, "interval": 1 + (i // 4) % 2}
        lr = {"family": "constant", "lr0": (0.05, 0.1, 0.2)[i % 3]}
        out.append(member(i, batch, lr, epochs=epochs, task="digits-mlp", options={}))
    return out


ENGINE_OPTIONS: dict[str, Any] = {}  # --fuse-flops sets FusedEngine's split limit for the fused side


def fused(specs: list[Any]) -> dict[str, Any]:
    from schedules.population import train_population

    wall, cpu = time.perf_counter(), time.process_time()
    results = train_population(specs, device="cpu", **(ENGINE_OPTIONS if len(specs) > 1 else {}))
    return _totals(results, time.perf_counter() - wall, time.process_time() - cpu)


def sequential(specs: list[Any]) -> dict[str, Any]:
    from schedules.trainer import train

    wall, cpu = time.perf_counter(), time.process_time()
    results = [train(spec, device="cpu") for spec in specs]
    return _totals(results, time.perf_counter() - wall, time.process_time() - cpu)


def _totals(results: list[Any], wall: float, cpu: float) -> dict[str, Any]:
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "measure_s": sum(r.measure_s for r in results),
        "sfo": sum(r.summary.total_sfo for r in results),
        "steps": [r.summary.total_steps for r in results],
        "sfos": [r.summary.total_sfo for r in results],
        "final_grad_norms": [r.summary.final_grad_norm for r in results],
    }


def compare(make: Callable[[int], list[Any]], ks: tuple[int, ...], repeats: int) -> list[dict[str, Any]]:
    rows = []
    for k in ks:
        specs = make(k)
        runs: dict[str, list[dict[str, Any]]] = {"fused": [], "sequential": []}
        sides: list[tuple[str, Callable[[list[Any]], dict[str, Any]]]] = [
            ("fused", fused),
            ("sequential", sequential),
        ]
        for r in range(repeats):
            for name, fn in sides[r % 2 :] + sides[: r % 2]:
                runs[name].append(fn(specs))
        first_f, first_s = runs["fused"][0], runs["sequential"][0]
        if first_f["sfos"] != first_s["sfos"] or first_f["steps"] != first_s["steps"]:
            raise AssertionError(f"K={k}: the fused and sequential runs disagree on SFO or steps")
        speed = {name: median([x["sfo"] / x["cpu_s"] for x in results]) for name, results in runs.items()}
        wall = {name: median([x["sfo"] / x["wall_s"] for x in results]) for name, results in runs.items()}
        rows.append(
            {
                "k": k,
                "sfo": first_f["sfo"],
                "fused_sfo_per_s": speed["fused"],
                "sequential_sfo_per_s": speed["sequential"],
                "speedup": speed["fused"] / speed["sequential"],
                "fused_sfo_per_wall_s": wall["fused"],
                "sequential_sfo_per_wall_s": wall["sequential"],
                "speedup_wall": wall["fused"] / wall["sequential"],
                "fused_wall_s": [x["wall_s"] for x in runs["fused"]],
                "sequential_wall_s": [x["wall_s"] for x in runs["sequential"]],
                "fused_cpu_s": [x["cpu_s"] for x in runs["fused"]],
                "sequential_cpu_s": [x["cpu_s"] for x in runs["sequential"]],
                # measurement passes cost the same fused or not on a CPU (compute-bound): they bound the gain
                "sequential_measure_share": median(
                    [x["measure_s"] / x["wall_s"] for x in runs["sequential"]]
                ),
            }
        )
        print(
            f"  K={k:<3} fused {speed['fused']:>10,.0f} SFO/s  sequential {speed['sequential']:>10,.0f} "
            f"SFO/s  {speed['fused'] / speed['sequential']:.2f}x  "
            f"(wall clock: {wall['fused'] / wall['sequential']:.2f}x)",
            flush=True,
        )
    return rows


def verdict(name: str, rows: list[dict[str, Any]], target: float) -> str:
    last = rows[-1]
    met = "met" if last["speedup"] >= target else "MISSED"
    return f"{name} {last['speedup']:.2f}x (K={last['k']}; target >= {target:g}x: {met})"


# --------------------------------------------------------------------------------------------- design


def design_table(
    k: int = 16, batches: tuple[int, ...] = (8, 64, 512), repeats: int = 5
) -> list[dict[str, Any]]:
    """What chose the fused engine's forward: one SGD step of ``k`` digits MLPs (64-128-10) on one CPU thread,
    written four ways: ``k`` separate modules one after another (the baseline), ``vmap(grad(...))`` over
    stacked parameters, ``vmap`` of the forward with an ordinary backward, and explicit batched matmuls
    (``baddbmm``). Best of ``repeats`` timings of each; speed relative to the baseline."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.func import functional_call, grad, stack_module_state, vmap

    n = 1347
    x_all, y_all = torch.rand(n, 64), torch.randint(0, 10, (n,))
    models = [nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)) for _ in range(k)]
    stacked, _ = stack_module_state(models)  # type: ignore[arg-type]
    base = copy_to_meta(models[0])

    def leaves() -> dict[str, torch.Tensor]:
        return {name: t.detach().clone().requires_grad_() for name, t in stacked.items()}

    def sgd(params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        with torch.no_grad():
            torch._foreach_add_(params, grads, alpha=-0.01)

    def ways(b: int) -> dict[str, Callable[[], None]]:
        idx = torch.stack([torch.randperm(n)[:b] for _ in range(k)])
        x, y = x_all[idx], y_all[idx]

        def separate() -> None:
            for j, m in enumerate(models):
                params = list(m.parameters())
                loss = F.cross_entropy(m(x[j]), y[j])
                sgd(params, list(torch.autograd.grad(loss, params)))

        p1 = leaves()
        per_member = vmap(grad(lambda p, xb, yb: F.cross_entropy(functional_call(base, p, (xb,)), yb)))

        def vmap_grad() -> None:
            g = per_member(p1, x, y)
            sgd(list(p1.values()), [g[name] for name in p1])

        p2 = leaves()
        forward = vmap(lambda p, xb: functional_call(base, p, (xb,)))

        def vmap_forward() -> None:
            out = forward(p2, x)
            loss = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(k, b).mean(1).sum()
            sgd(list(p2.values()), list(torch.autograd.grad(loss, list(p2.values()))))

        p3 = leaves()

        def matmuls() -> None:
            w1, b1, w2, b2 = (p3[name] for name in ("0.weight", "0.bias", "2.weight", "2.bias"))
            h = torch.relu(torch.baddbmm(b1.unsqueeze(1), x, w1.transpose(1, 2)))
            out = torch.baddbmm(b2.unsqueeze(1), h, w2.transpose(1, 2))
            loss = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(k, b).mean(1).sum()
            sgd([w1, b1, w2, b2], list(torch.autograd.grad(loss, [w1, b1, w2, b2])))

        return {
            "separate": separate,
            "vmap(grad)": vmap_grad,
            "vmap forward": vmap_forward,
            "baddbmm": matmuls,
        }

    rows = []
    for b in batches:
        fns = ways(b)
        steps = max(10, 1600 // b)
        best = dict.fromkeys(fns, math.inf)
        for _ in range(repeats):
            for name, fn in fns.items():
                fn()
                started = time.process_time()
                for _ in range(steps):
                    fn()
                best[name] = min(best[name], (time.process_time() - started) / steps)
        rows.append({"b": b, "ms": {name: 1e3 * t for name, t in best.items()}})
        rows[-1]["vs_separate"] = {name: best["separate"] / t for name, t in best.items()}
    return rows


def copy_to_meta(model: Any) -> Any:
    import copy

    return copy.deepcopy(model).to("meta")


# --------------------------------------------------------------------------------------------- GPU section


def gpu_specs(k: int, *, data_root: str, epochs: int, b0: int, width: int, subset: int) -> list[Any]:
    plan = {"family": "exp_growth", "b0": b0, "factor": 2.0, "interval": 1}
    options = {"data_root": data_root, "width": width, "subset": subset, "test_subset": 1000}
    return [
        member(
            i,
            plan,
            LR_FAMILIES[i % len(LR_FAMILIES)],
            epochs=epochs,
            task="cifar100-resnet18",
            options=options,
        )
        for i in range(k)
    ]


def gpu_fused(specs: list[Any], device: str = "cuda") -> dict[str, Any]:
    """One population on the device: training images/s (SFO over wall time minus measurement time) and peak
    memory per member."""
    import torch

    from schedules.population import train_population

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    results = train_population(specs, device=device, engine="fused" if len(specs) > 1 else "auto")
    wall = time.perf_counter() - started
    sfo = sum(r.summary.total_sfo for r in results)
    measure = max(r.measure_s for r in results)  # fused passes overlap: the members share the wall clock
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0
    return {
        "k": len(specs),
        "wall_s": wall,
        "sfo": sfo,
        "train_images_per_s": sfo / max(wall - measure, 1e-9),
        "sfo_per_s": sfo / wall,
        "peak_mib_per_member": peak / len(specs),
    }


def gpu_ray(specs: list[Any]) -> dict[str, Any]:
    """The same members as separate Ray tasks, ``num_gpus = 1/K`` each, all at once."""
    import ray

    @ray.remote
    def trial(body: dict[str, Any]) -> dict[str, float]:
        import torch

        from schedules.spec import TrialSpec
        from schedules.trainer import train

        torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        r = train(TrialSpec.from_json(body), device="cuda")
        return {
            "sfo": float(r.summary.total_sfo),
            "wall_s": time.perf_counter() - t,
            "measure_s": r.measure_s,
            "peak_mib": torch.cuda.max_memory_allocated() / 2**20,
        }

    k = len(specs)
    started = time.perf_counter()
    out = ray.get([trial.options(num_gpus=1.0 / k, num_cpus=1).remote(s.to_json()) for s in specs])
    wall = time.perf_counter() - started
    sfo = sum(r["sfo"] for r in out)
    measure = max(r["measure_s"] for r in out)
    return {
        "k": k,
        "wall_s": wall,
        "sfo": sfo,
        "train_images_per_s": sfo / max(wall - measure, 1e-9),
        "sfo_per_s": sfo / wall,
        "peak_mib_per_member": sum(r["peak_mib"] for r in out) / k,
    }


def gpu_section(*, quick: bool, ks: tuple[int, ...] = GPU_KS) -> dict[str, Any] | None:
    """Fused members against fractional-GPU Ray trials; None (and a line saying so) without CUDA."""
    import torch

    if not torch.cuda.is_available():
        print("GPU section: torch.cuda.is_available() is False on this machine; skipped.")
        return None
    import logging

    import ray

    from bench.gpu_mode import write_synthetic_cifar100
    from workers import raycluster

    epochs, subset = (2, 4_000) if quick else (3, 10_000)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ss-pop-") as tmp:
        root = str(write_synthetic_cifar100(Path(tmp), n_train=subset, n_test=1_000))
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        os.environ.setdefault("RAY_AUTH_TOKEN", raycluster.new_token())
        ray.init(
            num_gpus=1,
            num_cpus=max(ks) + 1,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        try:
            for k in ks:
                specs = gpu_specs(k, data_root=root, epochs=epochs, b0=32, width=64, subset=subset)
                f = gpu_fused(specs)
                r = gpu_ray(specs)
                rows.append({"k": k, "fused": f, "ray": r, "ratio": f["sfo_per_s"] / r["sfo_per_s"]})
                print(
                    f"  K={k}: fused {f['train_images_per_s']:,.0f} img/s, "
                    f"{f['peak_mib_per_member']:,.0f} MiB/member; Ray 1/{k} GPU "
                    f"{r['train_images_per_s']:,.0f} img/s, {r['peak_mib_per_member']:,.0f} MiB/member; "
                    f"SFO/s fused/Ray {rows[-1]['ratio']:.2f}x",
                    flush=True,
                )
        finally:
            ray.shutdown()
    print(
        table(
            ["K", "fused img/s", "fused MiB/member", "Ray img/s", "Ray MiB/member", "SFO/s fused/Ray"],
            [
                [
                    row["k"],
                    row["fused"]["train_images_per_s"],
                    row["fused"]["peak_mib_per_member"],
                    row["ray"]["train_images_per_s"],
                    row["ray"]["peak_mib_per_member"],
                    row["ratio"],
                ]
                for row in rows
            ],
        )
    )
    return {"device": torch.cuda.get_device_name(0), "epochs": epochs, "subset": subset, "rows": rows}


# --------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 epochs instead of 8 (well under 2 minutes)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--ks", type=int, nargs="+", default=None, help=f"members (default {KS})")
    parser.add_argument(
        "--plan",
        default="exp_growth",
        choices=["exp_growth", "constant8", "constant32"],
        help="the shared case's batch plan: exp_growth (8, doubled every 2 epochs) or a constant batch",
    )
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU section even where CUDA exists")
    parser.add_argument(
        "--fuse-flops",
        type=float,
        default=None,
        help="FusedEngine's split limit in forward FLOPs per call (default: schedules.fused.FUSE_FLOPS)",
    )
    parser.add_argument(
        "--design",
        action="store_true",
        help="only the design measurement: one step of 16 MLPs written four ways (separate, vmap(grad), "
        "vmap forward, batched matmuls)",
    )
    parser.add_argument("--name", default="population")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if args.design:
        design = design_table()
        names = list(design[0]["ms"])
        print("one SGD step of 16 digits MLPs (64-128-10) on one CPU thread: ms, and speed vs separate")
        print(
            table(
                ["b", *names],
                [
                    [row["b"], *(f"{row['ms'][n]:.2f} ({row['vs_separate'][n]:.2f}x)" for n in names)]
                    for row in design
                ],
            )
        )
        path = write_latest(f"{args.name}-design", {"design": design})
        print(f"wrote bench/results/{path.name}")
        return 0
    if args.fuse_flops is not None:
        ENGINE_OPTIONS["fuse_flops"] = args.fuse_flops
    epochs = args.epochs or (4 if args.quick else 8)
    repeats = args.repeats or 3
    ks = tuple(args.ks or KS)
    plans = {
        "exp_growth": {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 2},
        "constant8": {"family": "constant", "b0": 8},
        "constant32": {"family": "constant", "b0": 32},
    }
    plan = plans[args.plan]
    print(
        f"digits-mlp on one CPU thread, {epochs} epochs per member, {repeats} repeat(s), "
        f"torch {torch.__version__}",
        flush=True,
    )
    # warm-up: the first autograd pass, vmap and flop counter imports cost ~1 s once per process
    fused(shared_members(2, plan=plan, epochs=1))
    sequential(shared_members(1, plan=plan, epochs=1))

    print(f"(a) shared batch plan {plan}, LR schedules differ:", flush=True)
    shared = compare(lambda k: shared_members(k, plan=plan, epochs=epochs), ks, repeats)
    print("(b) mixed growing-batch plans (b0 8/16/32/64, doubling every 1 or 2 epochs):", flush=True)
    mixed = compare(lambda k: mixed_members(k, epochs=epochs), ks, repeats)
    print(
        table(
            ["case", "K", "fused SFO/s", "sequential SFO/s", "fused/sequential", "wall clock", "seq. meas."],
            [
                [
                    case,
                    row["k"],
                    row["fused_sfo_per_s"],
                    row["sequential_sfo_per_s"],
                    row["speedup"],
                    row["speedup_wall"],
                    f"{100 * row['sequential_measure_share']:.0f}%",
                ]
                for case, rows in (("shared", shared), ("mixed", mixed))
                for row in rows
            ],
        )
    )
    print(verdict(f"pack{ks[-1]}_speedup_shared", shared, 5.0))
    print(verdict(f"pack{ks[-1]}_speedup_mixed", mixed, 3.0))
    gpu = None if args.no_gpu else gpu_section(quick=args.quick)
    path = write_latest(
        args.name,
        {
            "quick": args.quick,
            "epochs": epochs,
            "repeats": repeats,
            "plan": plan,
            "fuse_flops": args.fuse_flops,
            "shared": shared,
            "mixed": mixed,
            "gpu": gpu,
        },
    )
    print(f"wrote bench/results/{path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
