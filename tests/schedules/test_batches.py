"""Batch fetching: the plan's batch sampler, and the streamed reader giving exactly the in-memory batches."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from schedules.batches import InMemoryReader, PlanBatchSampler, StreamedReader
from schedules.tasks.runtime import DatasetData, TensorData


@pytest.mark.parametrize(
    ("start", "b", "expected"),
    [
        (0, 4, [[9, 8, 7, 6], [5, 4, 3, 2], [1, 0]]),  # last batch partial
        (3, 3, [[6, 5, 4], [3, 2, 1], [0]]),  # from the middle of the order
        (8, 5, [[1, 0]]),  # one short batch left
        (10, 2, []),  # nothing left
    ],
)
def test_plan_batch_sampler_yields_the_plan_from_a_position(
    start: int, b: int, expected: list[list[int]]
) -> None:
    sampler = PlanBatchSampler()
    sampler.set(list(range(9, -1, -1)), start, b)
    assert list(sampler) == expected
    assert len(sampler) == len(expected)


class _CountingStreamedReader(StreamedReader):
    starts = 0

    def _start(self, order: list[int], pos: int, size: int) -> None:
        self.starts += 1
        super()._start(order, pos, size)


def _data(n: int = 23) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, generator=g), torch.arange(n)


# (pos, size) requests of one epoch over n = 23 with a batch-size change at position 10 (as the adaptive
# family does), then a measurement pass in the middle, then the rest.
REQUESTS = [(0, 5), (5, 5), (10, 8), "measure", (18, 5)]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_streamed_batches_equal_the_in_memory_gathers(num_workers: int) -> None:
    x, y = _data()
    memory = InMemoryReader(TensorData(x, y))
    streamed = _CountingStreamedReader(
        DatasetData(TensorDataset(x, y), num_workers=num_workers), device=torch.device("cpu"), seed=0
    )
    try:
        for epoch in range(2):
            order = torch.randperm(23, generator=torch.Generator().manual_seed(epoch))
            for request in REQUESTS:
                if request == "measure":
                    subset = torch.tensor([2, 3, 11, 17, 19])
                    for (a, b), (c, d) in zip(
                        memory.chunks(2, subset), streamed.chunks(2, subset), strict=True
                    ):
                        assert torch.equal(a, c) and torch.equal(b, d)
                    assert [len(c[1]) for c in streamed.chunks(10)] == [10, 10, 3]
                    continue
                pos, size = request
                xm, ym = memory.take(order, pos, size)
                xs, ys = streamed.take(order, pos, size)
                assert torch.equal(xm, xs) and torch.equal(ym, ys)
        # per epoch: the start, the size change, the restart after the two measurement passes (+ their 2)
        assert streamed.starts == 2 * (3 + 2)
    finally:
        streamed.close()


def test_consecutive_batches_do_not_restart_the_loader() -> None:
    x, y = _data(100)
    streamed = _CountingStreamedReader(DatasetData(TensorDataset(x, y)), device=torch.device("cpu"), seed=0)
    order = torch.randperm(100)
    # the trainer asks for min(b, n - pos): the last batch is partial
    got = torch.cat([streamed.take(order, pos, min(7, 100 - pos))[1] for pos in range(0, 100, 7)])
    assert torch.equal(got, order) and streamed.starts == 1
