"""SHB / NSHB as in the paper (paper-notes §2.2): update rules, torch SGD, SHB == NSHB rescaled."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from schedules.optim import SGDM, make_optimizer, set_lr


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _batches(steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(5, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (5,), generator=g))
        for _ in range(steps)
    ]


def _trajectory(model: nn.Module, opt: Any, lrs: list[float]) -> list[torch.Tensor]:
    points = []
    for lr, (xb, yb) in zip(lrs, _batches(len(lrs)), strict=True):
        set_lr(opt, lr)
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
        points.append(torch.cat([p.detach().flatten() for p in model.parameters()]).clone())
    return points


CONSTANT = [0.1] * 12
VARYING = [0.05 * 1.3 ** (k // 3) for k in range(12)]  # stage-wise growing LR, as in schedule (iii)


@pytest.mark.parametrize("lrs", [CONSTANT, VARYING], ids=["constant-lr", "growing-lr"])
def test_shb_equals_nshb_with_rescaled_lr(lrs: list[float]) -> None:
    beta = 0.9
    m1, m2 = _model(), _model()
    shb = _trajectory(m1, make_optimizer("shb", m1.parameters(), momentum=beta), lrs)
    nshb = _trajectory(
        m2, make_optimizer("nshb", m2.parameters(), momentum=beta), [lr / (1 - beta) for lr in lrs]
    )
    for a, b in zip(shb, nshb, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # and the trajectory actually moved, so the comparison is not between two frozen models
    assert (shb[-1] - shb[0]).abs().max() > 1e-3


@pytest.mark.parametrize("lrs", [CONSTANT, VARYING], ids=["constant-lr", "growing-lr"])
def test_shb_equals_torch_sgd_momentum(lrs: list[float]) -> None:
    m1 = _model()
    m2 = copy.deepcopy(m1)
    ours = _trajectory(m1, make_optimizer("shb", m1.parameters(), momentum=0.87), lrs)
    ref = _trajectory(m2, torch.optim.SGD(m2.parameters(), lr=lrs[0], momentum=0.87, dampening=0.0), lrs)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "beta", "first", "second"),
    [
        # SHB: m0 = g, m1 = beta*g + g -> steps lr*g then lr*1.9*g
        ("shb", 0.9, 1.0, 1.9),
        # NSHB: m0 = 0.1 g, m1 = 0.9*0.1 g + 0.1 g = 0.19 g
        ("nshb", 0.9, 0.1, 0.19),
        # sgd ignores the momentum argument: always lr*g
        ("sgd", 0.9, 1.0, 1.0),
    ],
)
def test_update_rule_with_constant_gradient(name: str, beta: float, first: float, second: float) -> None:
    # f(w) = g . w has the constant gradient g, so each displacement is -lr * (coefficient) * g.
    w = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    g = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    opt = make_optimizer(name, [w], momentum=beta, lr=0.5)
    moves = []
    for _ in range(2):
        before = w.detach().clone()
        opt.zero_grad()
        (g * w).sum().backward()
        opt.step()
        moves.append(w.detach() - before)
    torch.testing.assert_close(moves[0], -0.5 * first * g)
    torch.testing.assert_close(moves[1], -0.5 * second * g)


def test_unknown_optimizer_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"optimizer.name must be one of shb, nshb, sgd, got name='adam'"):
        make_optimizer("adam", [nn.Parameter(torch.zeros(1))], momentum=0.9)


def test_momentum_must_be_below_one() -> None:
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\), got momentum=1.0"):
        SGDM([nn.Parameter(torch.zeros(1))], momentum=1.0)


def test_state_dict_round_trip_resumes_the_same_trajectory() -> None:
    m1 = _model()
    opt1 = make_optimizer("nshb", m1.parameters(), momentum=0.9)
    _trajectory(m1, opt1, CONSTANT[:3])
    m2 = copy.deepcopy(m1)
    opt2 = make_optimizer("nshb", m2.parameters(), momentum=0.5)
    opt2.load_state_dict(opt1.state_dict())  # momentum buffers and beta come along
    assert opt2.param_groups[0]["momentum"] == 0.9
    a, b = _trajectory(m1, opt1, CONSTANT[:4]), _trajectory(m2, opt2, CONSTANT[:4])
    torch.testing.assert_close(a[-1], b[-1], rtol=0, atol=0)
