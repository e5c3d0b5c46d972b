"""gpu_mode: the CPU answer, and the synthetic CIFAR-100 folder read through the real task loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.gpu_mode import write_synthetic_cifar100


def test_without_cuda_it_says_so_and_exits_0(capsys: pytest.CaptureFixture[str], results_dir: Path) -> None:
    import torch

    import bench.gpu_mode as gm

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the CPU answer does not apply")
    assert gm.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "needs a CUDA GPU" in out and "cifar-100-python" in out
    assert not results_dir.exists()  # nothing ran, so no result replaces the last GPU run


def test_synthetic_cifar100_loads_through_the_task(tmp_path: Path) -> None:
    from schedules.tasks.runtime import load_task

    root = write_synthetic_cifar100(tmp_path, n_train=64, n_test=16)
    task = load_task("cifar100-resnet18", {"data_root": str(root), "width": 4}, device="cpu")
    assert (task.n_train, task.n_test) == (64, 16)
    assert tuple(task.train.x.shape[1:]) == (3, 32, 32)
    assert int(task.train.y.max()) < 100
