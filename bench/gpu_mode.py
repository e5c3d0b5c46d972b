"""GPU mode: the paper's ResNet-18 CIFAR-100 preset, shortened, on a CUDA GPU: images/s, SFO/s, GPU memory,
and several small trials packed on one GPU with fractional GPUs (Ray tasks with ``num_gpus=1/k``).

Data: the ``cifar100-resnet18`` task reads the CIFAR-100 python-pickle folder ``cifar-100-python`` under
``--data-root`` or else the ``SCHEDSEARCH_DATA_ROOT`` environment variable. With ``--synthetic`` (or when no
data root is set) the script writes random images in the same pickle layout to a temporary folder and reads
those through the same task code: throughput does not depend on the pixels, convergence numbers then mean
nothing and are not reported.

1. one trial of the preset ``paper/nshb/iv/warmup_const-0.5`` (growing batch 8 -> x2, warm-up LR to 0.5),
   cut to ``--epochs`` epochs with one batch stage per epoch, so the short run still visits several batch
   sizes (8 is slow on a GPU: ``--b0`` raises the first batch);
2. packing: k = 1, 2, 4 copies of a narrow ResNet-18 trial (``width`` 16) at once on the one GPU, each a Ray
   task with ``num_gpus=1/k``; aggregate SFO/s against k = 1;
3. the population trainer (``bench/population.py``'s GPU section): K = 1, 2, 4, 8 ResNet-18 members fused in
   one process against the same K as fractional-GPU Ray trials, images/s and GPU memory per member.

Without CUDA it prints that it needs a GPU and exits 0 (no result file is written, so the last GPU result
stays).

    python bench/gpu_mode.py --quick               # < 2 minutes on one GPU
    python bench/gpu_mode.py --data-root DIR       # real CIFAR-100
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import table, write_latest

PRESET = "paper/nshb/iv/warmup_const-0.5"


def write_synthetic_cifar100(root: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """Random uint8 images and labels in the ``cifar-100-python`` pickle layout; returns ``root``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        body = {
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"fine_labels": rng.integers(0, 100, size=n).tolist(),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(body, f, protocol=4)
    return root


def preset_spec(*, epochs: int, b0: int, options: dict[str, Any]) -> Any:
    from schedules.paper import PRESETS
    from schedules.spec import TrialSpec

    body = PRESETS[PRESET].to_json()
    body["task"] = {"name": "cifar100-resnet18", "options": options}
    body["budget"] = {"max_epochs": epochs, "max_sfo": None}
    batch = dict(body["schedule"]["batch_size"], b0=b0, interval=1)
    lr = dict(body["schedule"]["lr"], warmup_epochs=max(2, epochs), warmup_interval=1)
    body["schedule"] = {"batch_size": batch, "lr": lr}
    body["grad_norm_mode"] = "clean"
    return TrialSpec.from_json(body)


def run_one(spec: Any) -> dict[str, Any]:
    import torch

    from schedules.trainer import train

    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = train(spec, device="cuda")
    wall = time.perf_counter() - started
    s = result.summary
    train_s = max(wall - result.measure_s, 1e-9)
    return {
        "epochs": len(result.records),
        "batch_sizes": [r.batch_size for r in result.records],
        "sfo": s.total_sfo,
        "measure_sfo": s.measure_sfo,
        "wall_s": wall,
        "measure_s": result.measure_s,
        "train_images_per_s": s.total_sfo / train_s,
        "sfo_per_s": s.total_sfo / wall,
        "all_images_per_s": (s.total_sfo + s.measure_sfo) / wall,
        "peak_gpu_mem_mib": torch.cuda.max_memory_allocated() / 2**20,
        "device_name": torch.cuda.get_device_name(0),
    }


def packing(spec_json: dict[str, Any], ks: list[int]) -> list[dict[str, Any]]:
    import ray

    from workers import raycluster

    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", raycluster.new_token())
    ray.init(
        num_gpus=1,
        num_cpus=max(ks) + 1,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    out: list[dict[str, Any]] = []
    try:

        @ray.remote
        def trial(body: dict[str, Any]) -> dict[str, float]:
            from schedules.spec import TrialSpec
            from schedules.trainer import train

            t = time.perf_counter()
            r = train(TrialSpec.from_json(body), device="cuda")
            return {"sfo": float(r.summary.total_sfo), "wall_s": time.perf_counter() - t}

        for k in ks:
            started = time.perf_counter()
            results = ray.get(
                [trial.options(num_gpus=1.0 / k, num_cpus=1).remote(spec_json) for _ in range(k)]
            )
            wall = time.perf_counter() - started
            sfo = sum(r["sfo"] for r in results)
            out.append(
                {
                    "k": k,
                    "num_gpus_each": 1.0 / k,
                    "wall_s": wall,
                    "sfo": sfo,
                    "sfo_per_s": sfo / wall,
                    "trial_wall_s": [r["wall_s"] for r in results],
                }
            )
            print(f"  packing k={k}: {sfo / wall:,.0f} SFO/s aggregate in {wall:.1f}s", flush=True)
    finally:
        ray.shutdown()
    base = out[0]["sfo_per_s"] if out else None
    for row in out:
        row["vs_k1"] = row["sfo_per_s"] / base if base else None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="folder holding cifar-100-python")
    parser.add_argument("--synthetic", action="store_true", help="random images in the CIFAR-100 layout")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--b0", type=int, default=None, help="first batch size (paper: 8)")
    parser.add_argument("--subset", type=int, default=None, help="training images used")
    parser.add_argument("--quick", action="store_true", help="a 10k-image subset, 3 epochs (< 2 minutes)")
    parser.add_argument("--name", default="gpu_mode")
    args = parser.parse_args(argv)
    import torch

    root = args.data_root or os.environ.get("SCHEDSEARCH_DATA_ROOT")
    where = (
        f"{root}/cifar-100-python"
        if root and not args.synthetic
        else "synthetic random images in the cifar-100-python layout (a temporary folder)"
    )
    if not torch.cuda.is_available():
        print("gpu_mode needs a CUDA GPU: torch.cuda.is_available() is False on this machine; nothing run.")
        print(
            f"It would read CIFAR-100 from {where} "
            "(--data-root DIR or SCHEDSEARCH_DATA_ROOT, folder cifar-100-python; "
            "--synthetic for random data)."
        )
        return 0
    synthetic = args.synthetic or not root
    epochs = args.epochs or (3 if args.quick else 6)
    subset = args.subset or (10_000 if args.quick else None)
    b0 = args.b0 or (64 if args.quick else 8)
    with tempfile.TemporaryDirectory(prefix="ss-cifar-") as tmp:
        if synthetic:
            root = str(write_synthetic_cifar100(Path(tmp), n_train=subset or 50_000, n_test=2_000))
        options: dict[str, Any] = {"data_root": root}
        if subset:
            options["subset"] = subset
        print(f"data: {where}; preset {PRESET}, {epochs} epochs, b0={b0}, subset={subset}")
        spec = preset_spec(epochs=epochs, b0=b0, options=options)
        single = run_one(spec)
        print(
            table(
                ["device", "epochs", "batches", "train img/s", "SFO/s", "measure share", "peak MiB"],
                [
                    [
                        single["device_name"],
                        single["epochs"],
                        f"{single['batch_sizes'][0]}..{single['batch_sizes'][-1]}",
                        single["train_images_per_s"],
                        single["sfo_per_s"],
                        single["measure_s"] / single["wall_s"],
                        single["peak_gpu_mem_mib"],
                    ]
                ],
            )
        )
        small = preset_spec(
            epochs=2, b0=128, options={**options, "width": 16, "subset": min(subset or 50_000, 10_000)}
        )
        packed = packing(small.to_json(), [1, 2, 4])
        print(
            table(
                ["trials/GPU", "num_gpus each", "aggregate SFO/s", "vs 1 per GPU", "wall s"],
                [[p["k"], p["num_gpus_each"], p["sfo_per_s"], p["vs_k1"], p["wall_s"]] for p in packed],
            )
        )
    from bench.population import gpu_section

    print("population trainer: fused members against fractional-GPU Ray trials", flush=True)
    population = gpu_section(quick=args.quick)
    path = write_latest(
        args.name,
        {
            "quick": args.quick,
            "preset": PRESET,
            "data": where,
            "synthetic": synthetic,
            "epochs": epochs,
            "b0": b0,
            "subset": subset,
            "single": single,
            "packing": packed,
            "population": population,
        },
    )
    print(f"wrote bench/results/{path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
