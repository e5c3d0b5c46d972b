"""Where training stands at global step t: the trainer's walk through epochs, batches and LRs as a value.

Torch-free. ``schedules.trainer`` walks a run as nested loops (epochs, then batches through one seeded
permutation per epoch, the last partial batch kept); ``ScheduleClock`` answers the same questions for any step
without running the loop, so a user's own training loop (``schedules.adapters``) and the exporters
(``schedules.export``) see exactly the trainer's schedule. The rules of the walk are defined here once and the
trainer's loop reads them from its clock: the batch size of an epoch at an adaptive stage
(``batch_size_of``), the LR of a step (``lr_at``), when the adaptive family measures the gradient norm
(``check_due``) and when it moves to the next stage (``advances``):

- ``position(t)``: the epoch of step t, where its batch starts in that epoch's permutation (``offset``), its
  size and the ``adaptive`` stage;
- ``lr(t)``: ``schedule.lr.at(epoch, t, T)`` times the adaptive LR multiplier (docs/design.md, paper-notes
  §2.3);
- the ``adaptive`` family (arXiv 2508.05302, paper-notes §5.4) moves with the full gradient norm, which only
  the training loop can measure: every ``check_every`` steps ``grad_norm_due(t)`` is true and the loop reports
  the norm with ``report_grad_norm(t, norm)``; the clock then moves to the next stage exactly as the trainer
  does (next stage once the norm is <= eps0 sqrt(b0 / b_k)).

Table (n_train=10, batch constant b0=4, 2 epochs): steps 0, 1, 2 are epoch 0 at offsets 0, 4, 8 with sizes
4, 4, 2; step 3 is epoch 1 at offset 0.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

from schedules.families.batch import AdaptiveBatch
from schedules.spec import Horizon, Schedule, batch_plan, total_steps


@dataclass(frozen=True)
class StepPosition:
    """Step ``step`` (0-based, global) takes examples ``perm[offset : offset + batch_size]`` of epoch
    ``epoch``'s permutation; ``stage`` is the adaptive stage k (0 for the other families)."""

    step: int
    epoch: int
    offset: int
    batch_size: int
    stage: int


class ScheduleClock:
    """The schedule's clock over ``horizon`` (``horizon.epochs`` epochs of ``horizon.n_train`` examples).

    A pure function of the step for every family but ``adaptive``, whose stage changes are recorded as they
    are reported (``stage_changes``: the steps at which stage 1, 2, ... began). Past the last step of the
    horizon the position stays in the last epoch with batch size 0 (a loop may call the LR scheduler once
    more after its last step).
    """

    def __init__(self, schedule: Schedule, horizon: Horizon) -> None:
        self.schedule = schedule
        self.horizon = horizon
        self.plan = batch_plan(schedule, horizon)
        #: T, what the per-step LR families read (the stage-0 plan's T for adaptive, as in the trainer).
        self.total_steps = total_steps(schedule, horizon)
        bs = schedule.batch_size
        self._adaptive: AdaptiveBatch | None = bs if isinstance(bs, AdaptiveBatch) else None
        self._changes: list[int] = []  # step at which stage k + 1 began, for k = 0, 1, ...
        self._starts: list[int] = [0]  # step at which epoch e begins, filled lazily up to epochs
        self._drawn = -1  # the last step whose batch a sampler has drawn (see mark_drawn)
        self._reported = 0  # the last steps_done a gradient norm was reported for

    # ------------------------------------------------------------------------------------------- reading

    @property
    def is_adaptive(self) -> bool:
        return self._adaptive is not None

    @property
    def stage_changes(self) -> tuple[int, ...]:
        return tuple(self._changes)

    def stage_at(self, step: int) -> int:
        """The adaptive stage of step ``step`` (0 for the other families)."""
        return bisect.bisect_right(self._changes, step)

    def batch_size_of(self, epoch: int, stage: int) -> int:
        """The nominal batch size in ``epoch`` at ``stage``: b_e from the batch plan, or the adaptive stage's
        b_k clipped to n_train (the epoch's last batch may be smaller)."""
        if self._adaptive is None:
            return self.plan[min(epoch, self.horizon.epochs - 1)]
        return max(1, min(int(self._adaptive.stage_batch(stage)), self.horizon.n_train))

    def epoch_start(self, epoch: int) -> int:
        """The global step at which ``epoch`` begins; ``epoch_start(horizon.epochs)`` is the run's step count
        (for adaptive: given the stage changes reported so far)."""
        if not 0 <= epoch <= self.horizon.epochs:
            raise ValueError(f"epoch must be in [0, {self.horizon.epochs}], got epoch={epoch}")
        while len(self._starts) <= epoch:
            e = len(self._starts) - 1
            end = self._walk(e, self._starts[e])
            assert isinstance(end, int)
            self._starts.append(end)
        return self._starts[epoch]

    def epoch_steps(self, epoch: int) -> int:
        """How many steps ``epoch`` takes (for adaptive: if no further stage change comes)."""
        return self.epoch_start(epoch + 1) - self.epoch_start(epoch)

    def position(self, step: int) -> StepPosition:
        """Epoch, offset, batch size and stage of global step ``step`` (>= 0)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got step={step}")
        last = self.horizon.epochs - 1
        if step >= self.epoch_start(last + 1):  # past the end: stay in the last epoch
            stage = self.stage_at(step)
            return StepPosition(step, last, self.horizon.n_train, 0, stage)
        # the epoch whose start is the last one <= step (the starts up to the end are filled now)
        epoch = bisect.bisect_right(self._starts, step) - 1
        found = self._walk(epoch, self._starts[epoch], target=step)
        assert isinstance(found, StepPosition)
        return found

    def lr(self, step: int) -> float:
        """The LR of global step ``step`` (``lr_at`` of its position)."""
        p = self.position(step)
        return self.lr_at(p.epoch, step, p.stage)

    def lr_at(self, epoch: int, step: int, stage: int) -> float:
        """The LR of global step ``step`` in ``epoch`` at adaptive stage ``stage``: ``lr.at(epoch, step, T)``,
        x lr_factor^stage for adaptive (the trainer calls this for every step it sets an LR)."""
        value = self.schedule.lr.at(
            epoch=epoch, step=step, total_steps=self.total_steps, horizon=self.horizon
        )
        if self._adaptive is not None:
            value *= self._adaptive.stage_lr_multiplier(stage)
        return value

    # ------------------------------------------------------------------------------------------- adaptive

    def grad_norm_due(self, steps_done: int) -> bool:
        """True when the trainer would measure the full gradient norm after ``steps_done`` steps
        (``check_due`` at the position of the last step done)."""
        if self._adaptive is None or steps_done <= 0:
            return False
        return self.check_due(steps_done, self.position(steps_done - 1).epoch, self.stage_at(steps_done - 1))

    def check_due(self, steps_done: int, epoch: int, stage: int) -> bool:
        """The adaptive family's check after ``steps_done`` steps, the last of them in ``epoch`` at ``stage``:
        a multiple of ``check_every``, not yet at the last stage and the batch still smaller than n_train."""
        bs = self._adaptive
        if bs is None or steps_done <= 0 or steps_done % bs.check_every:
            return False
        return stage < bs.max_stage and self.batch_size_of(epoch, stage) < self.horizon.n_train

    def advances(self, stage: int, grad_norm: float) -> bool:
        """The adaptive rule (arXiv 2508.05302, paper-notes §5.4): the next stage once the full gradient norm
        ||grad f|| <= eps0 sqrt(b0 / b_k) at stage k. False for a NaN norm (a diverging run stays)."""
        return self._adaptive is not None and grad_norm <= self._adaptive.stage_threshold(stage)

    def report_grad_norm(self, steps_done: int, grad_norm: float) -> bool:
        """Report the full gradient norm ||grad f|| (unsquared, over the whole training set) measured after
        ``steps_done`` steps; returns True when the stage moved (from step ``steps_done`` on).

        Raises ValueError when no check is due at ``steps_done`` (see ``grad_norm_due``), and RuntimeError
        when a sampler has already drawn the batch of step ``steps_done`` with the old batch size (a
        DataLoader with ``num_workers > 0`` draws ahead; use ``num_workers=0`` with the adaptive family)."""
        bs = self._adaptive
        if bs is None:
            raise ValueError(
                f"batch_size.family is {self.schedule.batch_size.family}, not adaptive: "
                "there is no gradient-norm check to report"
            )
        if not self.grad_norm_due(steps_done):
            raise ValueError(
                f"no gradient-norm check is due after steps_done={steps_done} (checks come every "
                f"check_every={bs.check_every} steps until the last stage); ask grad_norm_due() first"
            )
        if steps_done <= self._reported:
            raise ValueError(
                f"a gradient norm was already reported after steps_done={self._reported}; "
                "report each check once"
            )
        if not math.isfinite(grad_norm) or grad_norm < 0:
            raise ValueError(f"grad_norm must be a finite number >= 0, got grad_norm={grad_norm!r}")
        stage = self.stage_at(steps_done - 1)
        self._reported = steps_done
        if not self.advances(stage, grad_norm):
            return False
        if self._drawn >= steps_done:
            raise RuntimeError(
                f"the batch sampler has already drawn the batch of step {self._drawn} with the batch size "
                f"of stage {stage}; a DataLoader with num_workers > 0 draws batches ahead of the loop, which "
                "the adaptive family cannot allow: use num_workers=0"
            )
        self._changes.append(steps_done)
        # Epoch starts after the change may move; the ones at or before it stay.
        keep = bisect.bisect_right(self._starts, steps_done)
        del self._starts[keep:]
        return True

    def mark_drawn(self, step: int) -> None:
        """A sampler has drawn the batch of ``step`` (so a later stage change at or before it is an error)."""
        self._drawn = max(self._drawn, step)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs besides the step: the adaptive stage changes."""
        return {"stage_changes": list(self._changes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        changes = [int(s) for s in state.get("stage_changes", [])]
        if changes and self._adaptive is None:
            raise ValueError("stage_changes only apply to batch_size.family=adaptive")
        if changes != sorted(set(changes)):
            raise ValueError(f"stage_changes must be increasing steps, got {changes}")
        self._changes = changes
        self._starts = [0]
        self._drawn = -1
        self._reported = changes[-1] if changes else 0

    # ------------------------------------------------------------------------------------------- the walk

    def _walk(self, epoch: int, start: int, target: int | None = None) -> int | StepPosition:
        """Walk ``epoch`` from its first step ``start`` in segments of constant batch size (a segment ends
        where the epoch ends or the stage changes). Returns the next epoch's first step, or the position of
        step ``target`` when it lies in this epoch."""
        n = self.horizon.n_train
        step, offset = start, 0
        while True:
            stage = self.stage_at(step)
            b = self.batch_size_of(epoch, stage)
            left = -(-(n - offset) // b)  # steps to finish the epoch at this batch size
            i = bisect.bisect_right(self._changes, step)
            seg = min(left, self._changes[i] - step) if i < len(self._changes) else left
            if target is not None and target < step + seg:
                at = offset + (target - step) * b
                return StepPosition(target, epoch, at, min(b, n - at), stage)
            if seg == left:
                return step + left
            offset += seg * b
            step += seg
