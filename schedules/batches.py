"""How the trainer fetches examples: by index from on-device tensors, or streamed through a ``DataLoader``.

Two readers with the same two methods, so the training loop and the measurement passes do not care which
one a task uses (``reader(examples, device=..., seed=...)`` picks):

- ``take(order, pos, size)``: the training batch of examples ``order[pos : pos + size]`` on the device, where
  ``order`` is the epoch's permutation. The batch plan decides ``size``; it may change between two calls
  (the ``adaptive`` family moves the batch size mid-epoch);
- ``chunks(size, order=None)``: consecutive batches of ``size`` examples in order (``order``: a subset of
  indices, e.g. the fixed gradient-norm subset), for measurement passes.

``InMemoryReader`` gathers rows of two tensors (airbench's "batches by index"): no host work per step.
``StreamedReader`` reads a map-style dataset through one ``DataLoader`` per trial whose batch sampler
(``PlanBatchSampler``) yields exactly the index lists ``order[pos : pos + b]`` the in-memory path would
gather, so the same seed gives the same batches and the same SFO on both paths. Workers prefetch ahead of
the loop; when the loop asks for something other than what the sampler would yield next (a new batch size,
a new epoch, a measurement pass in between), the reader restarts the iteration at that position, and the
prefetched batches are dropped unread by the optimizer. With ``num_workers > 0`` the workers persist for
the trial, and the DataLoader's own RNG is seeded from the trial seed so it never draws from torch's global
generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from schedules.tasks.runtime import DatasetData, Examples, TensorData

Batch = tuple[torch.Tensor, torch.Tensor]


class InMemoryReader:
    """Examples held as tensors on the device; batches are index gathers."""

    def __init__(self, data: TensorData) -> None:
        self.x, self.y = data.x, data.y
        self.n = len(data)

    def take(self, order: torch.Tensor, pos: int, size: int) -> Batch:
        idx = order[pos : pos + size]
        return self.x[idx], self.y[idx]

    def chunks(self, size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
        if order is None:
            for start in range(0, self.n, size):
                yield self.x[start : start + size], self.y[start : start + size]
            return
        for start in range(0, int(order.shape[0]), size):
            idx = order[start : start + size]
            yield self.x[idx], self.y[idx]

    def close(self) -> None:
        return None


class PlanBatchSampler(Sampler[list[int]]):
    """Index lists ``order[p : p + b]`` for p = start, start + b, ... < len(order): the batch plan from
    position ``start`` at batch size ``b``, the last batch partial. Set before each iteration."""

    def __init__(self) -> None:
        self.order: list[int] = []
        self.start = 0
        self.batch_size = 1

    def set(self, order: list[int], start: int, batch_size: int) -> None:
        self.order, self.start, self.batch_size = order, start, batch_size

    def __iter__(self) -> Iterator[list[int]]:
        b = self.batch_size
        for p in range(self.start, len(self.order), b):
            yield self.order[p : p + b]

    def __len__(self) -> int:
        return max(0, -(-(len(self.order) - self.start) // self.batch_size))


class StreamedReader:
    """A map-style dataset read through one DataLoader that follows the batch plan (module docstring)."""

    def __init__(self, data: DatasetData, *, device: torch.device, seed: int) -> None:
        self.n = len(data)
        self.device = device
        self._sampler = PlanBatchSampler()
        self._pin = device.type == "cuda"
        kwargs: dict[str, Any] = {}
        if data.collate is not None:
            kwargs["collate_fn"] = data.collate
        self._loader = DataLoader(
            data.dataset,
            batch_sampler=self._sampler,
            num_workers=data.num_workers,
            pin_memory=self._pin,
            persistent_workers=data.num_workers > 0,
            generator=torch.Generator().manual_seed(seed),
            **kwargs,
        )
        self._iter: Iterator[Any] | None = None
        self._order_key: torch.Tensor | None = None  # the order tensor the sampler was last set from
        self._order: list[int] = []
        self._next: tuple[int, int] | None = None  # (pos, size) the iteration yields next

    def _start(self, order: list[int], pos: int, size: int) -> None:
        self._sampler.set(order, pos, size)
        self._iter = iter(self._loader)

    def _to_device(self, batch: Any) -> Batch:
        x, y = batch
        return x.to(self.device, non_blocking=self._pin), y.to(self.device, non_blocking=self._pin)

    def take(self, order: torch.Tensor, pos: int, size: int) -> Batch:
        if order is not self._order_key:
            self._order_key, self._order = order, order.tolist()
            self._next = None
        if self._next != (pos, size) or self._iter is None:
            self._start(self._order, pos, size)
            b = size
        else:
            b = self._sampler.batch_size
        assert self._iter is not None
        batch = next(self._iter)
        after = pos + size
        self._next = (after, min(b, self.n - after)) if after < self.n else None
        return self._to_device(batch)

    def chunks(self, size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
        # The measurement pass shares the training DataLoader (and its workers); the training iteration is
        # restarted at its position afterwards.
        self._next = None
        indices = list(range(self.n)) if order is None else order.tolist()
        self._start(indices, 0, size)
        assert self._iter is not None
        iterator, self._iter = self._iter, None
        for batch in iterator:
            yield self._to_device(batch)

    def close(self) -> None:
        # Persistent workers end with the loader's iterator; drop the references so they shut down now.
        self._iter = None
        self._loader = None  # type: ignore[assignment]


Reader = InMemoryReader | StreamedReader


def reader(examples: Examples, *, device: torch.device, seed: int) -> Reader:
    """The reader for a task's examples (``TensorData`` or ``DatasetData``)."""
    if isinstance(examples, TensorData):
        return InMemoryReader(examples)
    return StreamedReader(examples, device=device, seed=seed)
