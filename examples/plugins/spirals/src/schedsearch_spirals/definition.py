"""The task's definition: what schedsearch's API and command line know of it without importing torch."""

from __future__ import annotations

from schedules.tasks.definition import (
    GRAD_NORM_SUBSET_OPTION,
    NUM_WORKERS_OPTION,
    STREAM_OPTION,
    Option,
    TaskDefinition,
)

SPIRALS_MLP = TaskDefinition(
    name="spirals-mlp",
    description="Two interleaved spirals (generated, seeded), random Fourier features and a residual MLP",
    loader="schedsearch_spirals.task:load",
    options=(
        Option("n", "int", 2000, "Training points (half per spiral).", minimum=16, maximum=1_000_000),
        Option("n_test", "int", 500, "Test points.", minimum=16, maximum=1_000_000),
        Option("turns", "float", 1.5, "Turns of each spiral (more is harder).", minimum=0.25, maximum=5.0),
        Option("noise", "float", 0.05, "Gaussian noise added to each point.", minimum=0.0, maximum=1.0),
        Option("width", "int", 64, "Width of the residual MLP.", minimum=4, maximum=1024),
        Option("blocks", "int", 2, "Residual blocks.", minimum=0, maximum=8),
        Option("seed", "int", 0, "Seed of the generated points and of the Fourier features.", minimum=0),
        STREAM_OPTION,
        NUM_WORKERS_OPTION,
        GRAD_NORM_SUBSET_OPTION,
    ),
    # known from the options alone: the API checks batch sizes against it and the driver places ASHA's rungs
    n_train=lambda options: int(options["n"]),
)
