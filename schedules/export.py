"""Taking a found schedule home: its one JSON form with what it was found for, a PyTorch snippet, Megatron-LM
arguments. Torch-free (the CLI client imports it); ``schedsearch export`` prints what these return.

- ``FoundSchedule``: the schedule (docs/design.md, "One JSON form") with the task, the horizon (epochs N
  and training-set size n) and the optimizer and seed of the trial it comes from; ``to_json`` is
  ``--format json``.
- ``pytorch_snippet``: a short runnable loop with ``schedules.adapters`` (the trainer's LR, batches and
  optimizer, step by step).
- ``megatron_args``: ``--step-batch-size-schedule "THRESHOLD:BATCH ..."`` (Megatron-LM's step batch-size
  schedule; thresholds in consumed samples, epoch e starting at e x n) with ``--train-samples``, and the LR
  and optimizer arguments where a Megatron ``--lr-decay-style`` expresses the LR family. Families it cannot
  express raise ``ExportError`` naming the family and what can be exported.
"""

from __future__ import annotations

import pprint
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schedules.spec import OPTIMIZERS, Horizon, Schedule, SpecError, batch_plan

EXPORT_FORMATS = ("json", "pytorch", "megatron")
#: LR families with a Megatron-LM --lr-decay-style (linear only with a constant batch size, see below).
MEGATRON_LR_FAMILIES = ("constant", "cosine", "linear")


class ExportError(ValueError):
    """A schedule that the chosen format cannot express; the message names the family and the way out."""


@dataclass(frozen=True)
class FoundSchedule:
    """A schedule and what it was found for. ``source`` says where from (job id and name, trial id and name,
    SFO to target); it is informational."""

    schedule: Schedule
    task: dict[str, Any]
    horizon: Horizon
    optimizer: str = "nshb"
    momentum: float = 0.9
    seed: int = 0
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise SpecError("optimizer.name", self.optimizer, f"must be one of {', '.join(OPTIMIZERS)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule.to_json(),
            "task": dict(self.task),
            "horizon": {"epochs": self.horizon.epochs, "n_train": self.horizon.n_train},
            "optimizer": {"name": self.optimizer, "momentum": self.momentum},
            "seed": self.seed,
            "source": dict(self.source),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FoundSchedule:
        horizon, optimizer = d["horizon"], d.get("optimizer", {})
        return cls(
            schedule=Schedule.from_json(d["schedule"]),
            task=dict(d["task"]),
            horizon=Horizon(epochs=horizon["epochs"], n_train=horizon["n_train"]),
            optimizer=optimizer.get("name", "nshb"),
            momentum=float(optimizer.get("momentum", 0.9)),
            seed=int(d.get("seed", 0)),
            source=dict(d.get("source", {})),
        )

    def describe(self) -> str:
        """One line: where the schedule comes from and what it was found for."""
        src = self.source
        where = "schedsearch"
        if src.get("job_id"):
            where += f" job {src['job_id']}"
        if src.get("trial_id") is not None:
            name = f" ({src['trial_name']})" if src.get("trial_name") else ""
            where += f", trial {src['trial_id']}{name}"
        h = self.horizon
        return f"{where}: {self.task.get('name', '?')}, {h.epochs} epochs over n={h.n_train:,} examples"


# ---------------------------------------------------------------------------------------------- pytorch


def pytorch_snippet(found: FoundSchedule) -> str:
    """A runnable Python loop over stand-in data that trains with the found schedule through
    ``schedules.adapters``; a user swaps in their model and training set (of n_train examples)."""
    h = found.horizon
    schedule = pprint.pformat(found.schedule.to_json(), sort_dicts=False, width=100)
    adaptive = found.schedule.batch_size.is_adaptive
    lines = [
        f"# The schedule of {found.describe()}.",
        "# Put your model and training set (n examples) in place of the stand-ins: the batches, LRs and",
        "# optimizer are the trial's, step by step (schedules.adapters).",
        "import torch",
        "import torch.nn.functional as F",
        "from torch.utils.data import DataLoader, TensorDataset",
        "",
        "from schedules.adapters import ScheduleBatchSampler, ScheduleLR, make_torch_optimizer",
        "from schedules.clock import ScheduleClock",
        *(["from schedules.grad import full_gradient"] if adaptive else []),
        "from schedules.spec import Horizon, Schedule",
        "",
        f"SCHEDULE = {schedule}",
        f"horizon = Horizon(epochs={h.epochs}, n_train={h.n_train})",
        "clock = ScheduleClock(Schedule.from_json(SCHEDULE), horizon)",
        "",
        f"train_set = TensorDataset(torch.randn({h.n_train}, 16), torch.randint(0, 10, ({h.n_train},)))"
        "  # stand-in",
        f"torch.manual_seed({found.seed})",
        "model = torch.nn.Linear(16, 10)  # stand-in",
        f'optimizer = make_torch_optimizer("{found.optimizer}", model.parameters(), '
        f"momentum={found.momentum!r})",
        "scheduler = ScheduleLR(optimizer, clock)",
        f"loader = DataLoader(train_set, batch_sampler=ScheduleBatchSampler(clock, seed={found.seed}))",
        "",
        "for epoch in range(clock.horizon.epochs):",
        "    for x, y in loader:",
        "        loss = F.cross_entropy(model(x), y)",
        "        optimizer.zero_grad()",
        "        loss.backward()",
        "        optimizer.step()",
        "        scheduler.step()",
    ]
    if adaptive:
        lines += [
            "        if scheduler.grad_norm_due():  # adaptive: the stage moves with the full gradient norm",
            "            norm = full_gradient(model, *train_set.tensors, chunk=4096).grad_norm",
            "            scheduler.report_grad_norm(norm)",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- megatron


def step_batch_size_schedule(schedule: Schedule, horizon: Horizon) -> list[tuple[int, int]]:
    """(threshold in consumed samples, global batch size) for Megatron-LM's --step-batch-size-schedule: one
    entry where the batch plan changes, epoch e starting at e x n_train samples.

    Table (b0=8, factor=2, interval=2, 6 epochs, n=100): (0, 8), (200, 16), (400, 32).
    """
    if schedule.batch_size.is_adaptive:
        raise ExportError(
            "batch_size.family=adaptive moves with the measured full gradient norm, which a step batch-size "
            "schedule cannot express; export it with --format pytorch (its adapters support it) or json"
        )
    out: list[tuple[int, int]] = []
    for epoch, b in enumerate(batch_plan(schedule, horizon)):
        if not out or out[-1][1] != b:
            out.append((epoch * horizon.n_train, b))
    return out


def megatron_lr_args(found: FoundSchedule) -> tuple[list[tuple[str, str]], list[str]]:
    """(flag, value) pairs for the LR and optimizer, and the notes that say how close they are.

    Megatron-LM's SGD is torch's (SHB); NSHB with LR lr is SHB with lr (1 - beta) on the same trajectory
    (paper-notes §2.2), so an NSHB schedule's LRs are scaled by (1 - beta). Megatron's LR clock is consumed
    samples (``--lr-decay-samples``).
    """
    lr, h = found.schedule.lr, found.horizon
    samples = h.epochs * h.n_train
    beta = 0.0 if found.optimizer == "sgd" else found.momentum
    scale = (1.0 - beta) if found.optimizer == "nshb" else 1.0
    notes: list[str] = []
    if found.optimizer == "nshb":
        notes.append(
            f"NSHB as Megatron's SGD (SHB): LRs x (1 - momentum) = x {scale:g}, the same trajectory."
        )
    args: list[tuple[str, str]] = [
        ("--optimizer", "sgd"),
        ("--sgd-momentum", _num(beta)),
        ("--weight-decay", "0.0"),
    ]
    params = lr.to_json()
    if lr.family == "constant":
        args += [("--lr", _num(params["lr0"] * scale)), ("--lr-decay-style", "constant")]
    elif lr.family == "cosine":
        notes.append(
            "lr cosine: schedsearch holds each epoch's LR, Megatron decays per sample; "
            "equal at every epoch start."
        )
        args += [
            ("--lr", _num(params["lr0"] * scale)),
            ("--min-lr", _num(params["lr_min"] * scale)),
            ("--lr-decay-style", "cosine"),
            ("--lr-decay-samples", str(samples)),
        ]
    elif lr.family == "linear":
        sizes = {b for _, b in step_batch_size_schedule(found.schedule, h)}
        if len(sizes) != 1:
            raise ExportError(
                "lr.family=linear decays per step (1 - t/T) but Megatron-LM's linear style decays per "
                "sample, which differs once the batch size changes; Megatron can take linear only with a "
                "constant batch size. Use --format pytorch or json"
            )
        b = sizes.pop()
        exact = (
            "exactly"
            if h.n_train % b == 0
            else f"up to one step per epoch ({h.n_train} is not a multiple of {b})"
        )
        notes.append(f"lr linear: per step in schedsearch, per sample in Megatron; equal {exact}.")
        args += [
            ("--lr", _num(params["lr0"] * scale)),
            ("--min-lr", "0.0"),
            ("--lr-decay-style", "linear"),
            ("--lr-decay-samples", str(samples)),
        ]
    else:
        raise ExportError(
            f"lr.family={lr.family} has no Megatron-LM --lr-decay-style (Megatron offers constant, linear, "
            "cosine, inverse-square-root and WSD, with a linear warm-up); export --format megatron takes lr "
            f"{', '.join(MEGATRON_LR_FAMILIES)}. Use --format pytorch or json"
        )
    args.append(("--lr-warmup-samples", "0"))
    return args, notes


def megatron_args(found: FoundSchedule) -> str:
    """Megatron-LM command-line arguments for the found schedule (sample-based training), one per line with
    shell continuations, after ``#`` comment lines that say what differs from schedsearch's trainer."""
    h = found.horizon
    steps = step_batch_size_schedule(found.schedule, h)  # raises first: the batch schedule is the point
    lr_args, notes = megatron_lr_args(found)
    schedule = " ".join(f"{threshold}:{b}" for threshold, b in steps)
    args = [
        ("--train-samples", str(h.epochs * h.n_train)),
        ("--step-batch-size-schedule", f'"{schedule}"'),
        *lr_args,
    ]
    comments = [
        f"Megatron-LM arguments for the schedule of {found.describe()}.",
        "--step-batch-size-schedule thresholds are consumed samples (epoch e starts at e x n); Megatron",
        "reads them as tokens when --seq-length is set: then multiply each threshold by the sequence length.",
        "Every batch size must be a multiple of --micro-batch-size x the data-parallel size. Megatron has",
        "no partial last batch, so a change can come up to one step later than in schedsearch's trainer.",
        *notes,
    ]
    lines = [f"# {c}" for c in comments]
    lines += [f"{flag} {value} \\" for flag, value in args[:-1]]
    flag, value = args[-1]
    lines.append(f"{flag} {value}")
    return "\n".join(lines) + "\n"


def _num(x: float) -> str:
    """A float as Megatron's argparse reads it, without float noise (0.1 * 0.1 -> 0.01)."""
    return repr(float(f"{x:.12g}"))


__all__ = [
    "EXPORT_FORMATS",
    "MEGATRON_LR_FAMILIES",
    "ExportError",
    "FoundSchedule",
    "megatron_args",
    "megatron_lr_args",
    "pytorch_snippet",
    "step_batch_size_schedule",
]
