"""Small third-party-style tasks for tests: a regression (MSE, no accuracy), a tiny next-token language
model, digits with an augmentation, a task whose size is unknown before loading, and broken ones.

``install(monkeypatch, *definitions)`` puts definitions into this process's catalogue beside the installed
ones, as an installed plugin would be (the loaders are imported by name, through the same path).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import schedules.tasks as tasks_package
from schedules.tasks import registry
from schedules.tasks.definition import Option, TaskDefinition

REGRESSION = TaskDefinition(
    name="toy-regression",
    description="Linear targets with noise, an MLP, mean squared error",
    loader="tests.support.toy_tasks:load_regression",
    options=(
        Option("n", "int", 96, "Training examples.", minimum=8, maximum=10_000),
        Option("stream", "bool", False, "Streamed path."),
    ),
    n_train=lambda options: int(options["n"]),
)

LANGUAGE = TaskDefinition(
    name="toy-language",
    description="Next-token prediction on a repeating byte pattern, a one-layer model",
    loader="tests.support.toy_tasks:load_language",
    options=(Option("context", "int", 8, "Tokens per sequence.", minimum=2, maximum=64),),
    n_train=lambda options: 64,
)

AUGMENTED = TaskDefinition(
    name="toy-augmented",
    description="digits-mlp with an augmentation given by the 'augment' option",
    loader="tests.support.toy_tasks:load_augmented",
    options=(
        Option("augment", "str", "noise", "noise | draw-only | none", choices=("noise", "draw-only", "none")),
    ),
    n_train=lambda options: 1347,
)

UNKNOWN_SIZE = TaskDefinition(
    name="toy-unknown-size",
    description="A task whose training-set size is known only once it loads",
    loader="tests.support.toy_tasks:load_regression_default",
)

NOT_A_TASK = TaskDefinition(
    name="toy-not-a-task",
    description="Its loader returns something that is not a Task",
    loader="tests.support.toy_tasks:not_a_task",
)

MISSING_MODULE = TaskDefinition(
    name="toy-missing-module",
    description="Its loader's module does not exist",
    loader="toy_tasks_that_do_not_exist.loader:load",
    package="toy-plugin 0.0.1",
)


def install(monkeypatch: pytest.MonkeyPatch, *definitions: TaskDefinition) -> registry.Catalogue:
    """Add ``definitions`` to the catalogue for one test."""
    base = registry.catalogue()
    extra = {d.name: d for d in definitions}
    catalogue = registry.Catalogue(tasks={**base.tasks, **extra}, broken=dict(base.broken))
    for module in (registry, tasks_package):  # callers read it from either module at call time
        monkeypatch.setattr(module, "catalogue", lambda: catalogue)
    return catalogue


# ---------------------------------------------------------------------------------------------- loaders


def load_regression(options: Mapping[str, Any], device: Any) -> Any:
    import torch

    from schedules.tasks.runtime import Task, examples, mse

    n = int(options.get("n", 96))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n + 32, 5, generator=g)
    w = torch.randn(5, 2, generator=g)
    y = x @ w + 0.1 * torch.randn(n + 32, 2, generator=g)
    return Task(
        name="toy-regression",
        build_model=lambda: torch.nn.Sequential(
            torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)
        ).to(device),
        train=examples(x[:n], y[:n], device, options),
        test=examples(x[n:], y[n:], device, options),
        device=device,
        loss=mse(),
        accuracy=None,
        measure_chunk=40,
    )


def load_regression_default(options: Mapping[str, Any], device: Any) -> Any:
    return load_regression({}, device)


class _TinyLM:
    """Embedding then a linear head: logits (B, T, V) for tokens (B, T)."""

    @staticmethod
    def build(vocab: int, device: Any) -> Any:
        import torch

        class LM(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.emb = torch.nn.Embedding(vocab, 16)
                self.head = torch.nn.Linear(16, vocab)

            def forward(self, tokens: torch.Tensor) -> torch.Tensor:
                return self.head(self.emb(tokens))

        return LM().to(device)


def load_language(options: Mapping[str, Any], device: Any) -> Any:
    import torch

    from schedules.tasks.runtime import Task, TensorData, next_token_cross_entropy

    context, vocab = int(options["context"]), 7
    stream = torch.arange(64 * (context + 1) + 40 * (context + 1)) % vocab
    seqs = stream.view(-1, context + 1)

    def token_accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (output.argmax(dim=-1) == target).double().mean(dim=1)

    return Task(
        name="toy-language",
        build_model=lambda: _TinyLM.build(vocab, device),
        train=TensorData(seqs[:64, :-1].to(device), seqs[:64, 1:].to(device)),
        test=TensorData(seqs[64:, :-1].to(device), seqs[64:, 1:].to(device)),
        device=device,
        loss=next_token_cross_entropy(),
        accuracy=token_accuracy,
        measure_chunk=32,
        tokens_per_example=context,
    )


def load_augmented(options: Mapping[str, Any], device: Any) -> Any:
    import dataclasses

    import torch

    from schedules.tasks.runtime import load_task

    base = load_task("digits-mlp", {"hidden": 16}, device=device)
    kind = options["augment"]

    def noise(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return x + 0.5 * torch.randn(x.shape, generator=gen, device=x.device)

    def draw_only(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        torch.randn(x.shape, generator=gen, device=x.device)  # uses the stream, leaves x alone
        return x

    augment = {"noise": noise, "draw-only": draw_only, "none": None}[kind]
    return dataclasses.replace(base, name="toy-augmented", augment=augment)


def not_a_task(options: Mapping[str, Any], device: Any) -> Any:
    return {"not": "a task"}
