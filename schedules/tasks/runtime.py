"""The runtime task contract (torch): what a loader returns and the trainer consumes.

A loader (``TaskDefinition.loader``, called as ``loader(options, device)`` with validated options) returns a
``Task``:

- ``build_model()``: a freshly initialised ``nn.Module`` on the device. The trainer calls it under
  ``torch.random.fork_rng`` seeded with the trial seed, so the initial weights depend only on that seed.
- ``train`` / ``test``: the examples, either ``TensorData`` (two tensors already on the device, batches
  gathered by index: the fast path) or ``DatasetData`` (a map-style dataset read through a ``DataLoader``
  whose batch sampler follows the batch plan: same seeded permutation, same batches, same SFO). n, the
  number of training examples that SFO and the batch plan use, is ``len(train)``.
- ``loss``: a ``Loss``, per example (shape (B,)); the trainer minimises its batch mean and measures
  f(theta) = (1/n) sum_i loss_i. ``cross_entropy()`` (classification), ``mse()`` (regression: mean over
  output dimensions per example) and ``next_token_cross_entropy()`` (language models: mean over the tokens
  of each sequence, so one example is one sequence) are provided.
- ``accuracy``: per-example correctness in [0, 1], shape (B,), or None where accuracy means nothing (the
  records then carry ``test_acc = None``); the test loss is always reported.
- ``augment``: optional, ``augment(x, generator) -> x'`` applied on the device to every training batch with a
  generator seeded from the trial seed (its own stream, so it never moves the permutation). In ``faithful``
  gradient-norm mode the measurement pass sees augmented data too (a separate seeded stream); in ``clean``
  mode it does not (paper-notes §6.2).
- ``grad_norm_subset``: measure the full gradient norm on a fixed, seeded subset of this many training
  examples instead of all n; every record then says so (``EpochRecord.grad_norm_subset``).
- ``tokens_per_example``: for sequence tasks, tokens in one example; records report ``tokens = sfo x this``.

``load_task(name, options, device=...)`` finds the definition in the catalogue, validates the options,
imports the loader, calls it, and logs once the bytes its tensors occupy on the device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from schedules.tasks.definition import TaskUnavailable
from schedules.tasks.registry import get_definition

logger = logging.getLogger(__name__)

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the memory behind ``tensors``: each storage counted once, so views of one tensor (the text
    task's inputs and targets, a train/test split sliced from one array) are not counted twice."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return int(sum(storages.values()))


@dataclass(frozen=True, eq=False)
class TensorData:
    """Examples as two tensors on the device: ``x`` of shape (N, ...) and ``y`` of shape (N, ...)."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if int(self.x.shape[0]) != int(self.y.shape[0]):
            raise ValueError(
                f"TensorData needs as many inputs as targets, got {self.x.shape=} {self.y.shape=}"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes the two tensors hold on the device (``storage_bytes``)."""
        return storage_bytes((self.x, self.y))

    @property
    def example_numel(self) -> int:
        return int(self.x[0].numel()) if len(self) else 0


@dataclass(frozen=True, eq=False)
class DatasetData:
    """A map-style dataset: ``dataset[i] -> (x_i, y_i)`` (tensors, usually on the CPU) for i < len(dataset),
    read through a ``torch.utils.data.DataLoader`` with ``num_workers`` processes; batches are collated with
    ``collate`` (None: the DataLoader's default, which stacks) and moved to the device. A dataset with
    ``__getitems__(indices)`` gets whole batches at once (then ``collate`` receives what it returns).
    """

    dataset: Dataset[Any]
    num_workers: int = 0
    collate: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ValueError(f"DatasetData.num_workers must be >= 0, got {self.num_workers=}")

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    @property
    def nbytes(self) -> int:
        return 0  # read from the host per batch: nothing resident on the device

    @property
    def example_numel(self) -> int:
        return int(self.dataset[0][0].numel()) if len(self) else 0


Examples = TensorData | DatasetData


@dataclass(frozen=True)
class Loss:
    """A per-example loss. ``fn(output, target, reduction)`` follows ``torch.nn.functional``:
    ``"none"`` gives shape (B,) (one value per example), ``"mean"`` and ``"sum"`` reduce over the batch
    (a fused kernel is faster than reducing the per-example vector, and is what the trainer used before)."""

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]

    def per_example(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.fn(output, target, "none")

    def mean(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.fn(output, target, "mean")

    def sum(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.fn(output, target, "sum")

    @classmethod
    def from_per_example(
        cls, name: str, per_example: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> Loss:
        """A loss given only per example (shape (B,)); mean and sum reduce that vector."""

        def fn(output: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
            values = per_example(output, target)
            return values if reduction == "none" else values.sum() if reduction == "sum" else values.mean()

        return cls(name, fn)


def _cross_entropy(output: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    return F.cross_entropy(output, target, reduction=reduction)


def _mse(output: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    per_example = F.mse_loss(output, target.to(output.dtype), reduction="none").flatten(1).mean(dim=1)
    return per_example if reduction == "none" else getattr(per_example, reduction)()


def _next_token(output: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    # output (B, T, V) logits, target (B, T) token ids; one example is one sequence
    b, t = int(target.shape[0]), int(target.shape[1])
    if reduction == "mean":  # equal lengths: the mean over sequences is the mean over all tokens
        return F.cross_entropy(output.reshape(b * t, -1), target.reshape(b * t))
    per_sequence = F.cross_entropy(output.reshape(b * t, -1), target.reshape(b * t), reduction="none")
    per_sequence = per_sequence.view(b, t).mean(dim=1)
    return per_sequence if reduction == "none" else per_sequence.sum()


def cross_entropy() -> Loss:
    """Classification: output (B, C) logits, target (B,) class indices."""
    return Loss("cross_entropy", _cross_entropy)


def mse() -> Loss:
    """Regression: mean squared error per example, averaged over the output dimensions."""
    return Loss("mse", _mse)


def next_token_cross_entropy() -> Loss:
    """Language models: output (B, T, V), target (B, T); the loss of a sequence is its mean token loss."""
    return Loss("next_token_cross_entropy", _next_token)


def top1_accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 where the arg-max class is the target, per example: output (B, C), target (B,) -> (B,) bool."""
    return output.argmax(dim=1) == target


@dataclass(frozen=True, eq=False)
class Task:
    """A (model, data) pair ready to train; see the module docstring for each part. ``measure_chunk`` is how
    many examples one forward/backward of a measurement pass takes (large chunks: one big matmul beats many
    small ones). ``num_classes`` is informational."""

    name: str
    build_model: Callable[[], nn.Module]
    train: Examples
    test: Examples
    device: torch.device
    loss: Loss = field(default_factory=cross_entropy)
    accuracy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = top1_accuracy
    measure_chunk: int = 1024
    augment: Augment | None = None
    grad_norm_subset: int | None = None
    tokens_per_example: int | None = None
    num_classes: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.train) < 1:
            raise ValueError(f"task {self.name!r} has an empty training set")
        if self.measure_chunk < 1:
            raise ValueError(f"Task.measure_chunk must be >= 1, got {self.measure_chunk=}")
        if self.grad_norm_subset is not None and self.grad_norm_subset < 1:
            raise ValueError(f"Task.grad_norm_subset must be >= 1 or None, got {self.grad_norm_subset=}")

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def n_test(self) -> int:
        return len(self.test)

    @property
    def streamed(self) -> bool:
        return isinstance(self.train, DatasetData)

    @property
    def device_bytes(self) -> int:
        """Bytes of the task's tensors resident on the device (0 for streamed data; shared memory once)."""
        resident = [d for d in (self.train, self.test) if isinstance(d, TensorData)]
        return storage_bytes(t for d in resident for t in (d.x, d.y))


class HostTensors(TensorDataset):
    """Tensors in host memory, read a batch at a time: ``__getitems__`` gathers the rows of a whole batch in
    one indexing operation (per-example ``__getitem__`` calls and the default collate cost Python time per
    example, which dominates small models)."""

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t[idx] for t in self.tensors)


def batch_as_is(batch: Any) -> Any:
    """The collate of a dataset whose ``__getitems__`` returns the batch already stacked."""
    return batch


def examples(x: torch.Tensor, y: torch.Tensor, device: torch.device, options: Mapping[str, Any]) -> Examples:
    """Host tensors as a task's examples: moved to the device (``TensorData``), or, when the options ask for
    the streamed path (``stream: true``), left on the host (``HostTensors``) and read by a DataLoader with
    ``num_workers`` processes (the options of ``schedules.tasks.definition.STREAM_OPTION``)."""
    if options.get("stream", False):
        return DatasetData(
            HostTensors(x, y), num_workers=int(options.get("num_workers", 0)), collate=batch_as_is
        )
    return TensorData(x.to(device), y.to(device))


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` picks CUDA when present, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_task(
    name: str, options: Mapping[str, Any] | None = None, *, device: str | torch.device | None = None
) -> Task:
    """Load task ``name`` onto ``device`` (CUDA when present if None).

    Raises ``SpecError`` for an unknown name (listing the installed tasks) or invalid options (naming
    ``task.options.<name>``), ``TaskUnavailable`` when the task's plugin cannot be imported here, and
    whatever the loader raises for data it cannot read (``ValueError`` with the reason for the built-ins).
    """
    definition = get_definition(name)
    opts = definition.validate(options)
    dev = resolve_device(device)
    task = definition.resolve_loader()(opts, dev)
    if not isinstance(task, Task):
        raise TaskUnavailable(
            name, f"its loader {definition.loader!r} returned a {type(task).__name__}, not a Task"
        )
    promised = definition.n_train(opts)
    if promised is not None and promised != task.n_train:
        # The service planned with the promised size; the trainer counts what was loaded.
        logger.warning(
            "task %s: the definition gives n_train=%d for these options but the data has %d examples; "
            "SFO counts the loaded examples",
            name,
            promised,
            task.n_train,
        )
    logger.info(
        "task %s on %s: %d training and %d test examples (%s), %d bytes of tensors on the device",
        name,
        dev,
        task.n_train,
        task.n_test,
        "streamed" if task.streamed else "on the device",
        task.device_bytes,
    )
    return task
