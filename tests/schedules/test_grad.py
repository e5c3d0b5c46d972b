"""Measurement passes: exact full-gradient mean, eval mode, and the optimizer's gradients left alone."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from schedules.grad import evaluate, full_gradient


def _setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).double()
    x = torch.randn(23, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (23,))
    # move BatchNorm's running stats off their defaults so eval mode differs from train mode
    model.train()
    with torch.no_grad():
        model(x * 2 + 1)
    return model, x, y


def _reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    # per-example gradients one at a time, in eval mode, averaged: the definition of grad f
    model.eval()
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    loss = 0.0
    for i in range(x.shape[0]):
        li = nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        for acc, g in zip(total, torch.autograd.grad(li, params), strict=True):
            acc += g / x.shape[0]
        loss += float(li.detach()) / x.shape[0]
    model.train()
    return loss, float(torch.sqrt(torch.stack([(g**2).sum() for g in total]).sum()))


@pytest.mark.parametrize("chunk", [1, 5, 23, 1000])  # chunking must not change the exact mean
def test_clean_full_gradient_is_the_exact_mean(chunk: int) -> None:
    model, x, y = _setup()
    ref_loss, ref_norm = _reference(model, x, y)
    fg = full_gradient(model, x, y, chunk=chunk)
    assert float(fg.loss) == pytest.approx(ref_loss, rel=1e-10)
    assert float(fg.grad_norm) == pytest.approx(ref_norm, rel=1e-10)
    assert fg.examples == 23


def test_measurement_leaves_grads_buffers_and_mode_alone() -> None:
    model, x, y = _setup()
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    stats = [b.clone() for b in model.buffers()]
    full_gradient(model, x, y, chunk=8)
    evaluate(model, x, y, chunk=8)
    assert model.training
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in model.parameters())  # type: ignore[arg-type]
    assert all(torch.equal(a, b) for a, b in zip(stats, model.buffers(), strict=True))


def test_faithful_mode_uses_train_mode_batches() -> None:
    model, x, y = _setup()
    clean = full_gradient(model, x, y, chunk=64)
    faithful = full_gradient(model, x, y, chunk=64, mode="faithful", batch_size=8)
    # train-mode BatchNorm on batches of 8 is a different function from eval mode: the norms differ
    assert float(faithful.grad_norm) != pytest.approx(float(clean.grad_norm), rel=1e-3)
    with pytest.raises(ValueError, match="grad_norm_mode must be one of clean, faithful, got 'fast'"):
        full_gradient(model, x, y, chunk=8, mode="fast")


def test_evaluate_counts_correct_predictions() -> None:
    model, x, _ = _setup()
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(dim=1)
    model.train()
    y = pred.clone()
    y[:5] = (y[:5] + 1) % 3  # exactly five wrong
    _, acc = evaluate(model, x, y, chunk=4)
    assert float(acc) == pytest.approx(18 / 23)


def _per_example_reference(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Any
) -> tuple[float, float]:
    # the mean over examples of each example's own gradient, one example at a time
    model.eval()
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    value = 0.0
    n = x.shape[0]
    for i in range(n):
        li = loss.per_example(model(x[i : i + 1]), y[i : i + 1])
        assert li.shape == (1,)
        for acc, g in zip(total, torch.autograd.grad(li.sum(), params), strict=True):
            acc += g / n
        value += float(li.detach()) / n
    model.train()
    return value, float(torch.sqrt(torch.stack([(g**2).sum() for g in total]).sum()))


class _LM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(5, 4).double()
        self.head = nn.Linear(4, 5).double()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(tokens))


def _loss_cases() -> list[tuple[str, Any, nn.Module, torch.Tensor, torch.Tensor]]:
    from schedules.tasks.runtime import Loss, mse, next_token_cross_entropy

    torch.manual_seed(1)
    regression = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x_r, y_r = torch.randn(11, 3, dtype=torch.float64), torch.randn(11, 2, dtype=torch.float64)
    lm = _LM()
    tokens = torch.randint(0, 5, (9, 7))
    per_example_only = Loss.from_per_example("abs", lambda out, t: (out - t).abs().flatten(1).mean(1))
    return [
        ("mse", mse(), regression, x_r, y_r),
        ("next_token", next_token_cross_entropy(), lm, tokens[:, :-1], tokens[:, 1:]),
        ("from_per_example", per_example_only, regression, x_r, y_r),
    ]


@pytest.mark.parametrize("case", range(3), ids=["mse", "next_token", "from_per_example"])
@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_full_gradient_is_the_exact_mean_for_every_loss(case: int, chunk: int) -> None:
    _, loss, model, x, y = _loss_cases()[case]
    ref_loss, ref_norm = _per_example_reference(model, x, y, loss)
    fg = full_gradient(model, x, y, chunk=chunk, loss=loss)
    assert float(fg.loss) == pytest.approx(ref_loss, rel=1e-10)
    assert float(fg.grad_norm) == pytest.approx(ref_norm, rel=1e-10)
    # the fused batch reductions agree with the per-example vector
    with torch.no_grad():
        out = model(x)
    assert float(loss.mean(out, y)) == pytest.approx(float(loss.per_example(out, y).mean()), rel=1e-12)
    assert float(loss.sum(out, y)) == pytest.approx(float(loss.per_example(out, y).sum()), rel=1e-12)


def test_evaluate_without_an_accuracy_reports_loss_only() -> None:
    from schedules.grad import evaluate_over, tensor_chunks
    from schedules.tasks.runtime import mse

    _, loss, model, x, y = _loss_cases()[0]
    value, acc = evaluate_over(model, tensor_chunks(x, y), n=11, chunk=4, loss=mse(), accuracy=None)
    assert acc is None
    with torch.no_grad():
        assert float(value) == pytest.approx(float(loss.per_example(model(x), y).mean()), rel=1e-12)
