"""Schedule-aware early stopping for the schedule search (issue 11): a small, pure rule, testable without Ray.

Plain ASHA on the gradient norm prunes the schedules that win (docs/benchmarks.md §2): a warm-up or a
growing LR gives a *higher* gradient norm exactly while the LR is high, early, which is when ASHA judges.
This rule reads the schedule's own plan and combines two mechanisms on the SFO clock:

1. **Incumbent capping** (only for the objective SFO to a gradient-norm target). Once some trial reached
   the target at ``c`` SFO, a trial that has not reached it and whose next measurement (one epoch on: the
   target is checked at epoch ends) comes at ``c`` SFO or later cannot beat it any more: its SFO to target
   can only be larger or equal. Stopping it there loses nothing the search ranks by, whatever the schedule
   would do later. This is adaptive capping (Hutter et al., ParamILS, JAIR 2009) with SFO as the run time.
2. **Rungs where a schedule can be judged** (asynchronous successive halving, Li et al., MLSys 2020, with
   reduction factor ``rf``). Rungs sit at ``budget / rf^k`` SFO as in ASHA, but:

   - *placement*: a trial meets rungs only from one epoch into the first batch stage that starts once its
     LR has reached its peak (``ScheduleFacts.judged_from``): a schedule is never compared while its
     warm-up is raising the LR, nor in the high-LR, small-batch stretch right after it; an LR that rises to
     the end of the run is judged by the cap alone;
   - *statistic*: the running minimum of the gradient norm *projected to the end of the budget* by the
     schedule's noise scale (``ScheduleFacts.projection``): the SGD bound's noise floor on E||grad f||^2 is
     proportional to eta/b (paper-notes §2.5: L eta sigma^2 / ((2 - L eta) b) for a constant eta and b), so
     a norm measured at (eta_e, b_e) is scaled by sqrt((eta_N/b_N) / (eta_e/b_e)). A schedule whose norm is
     high *because* its LR is high and its batch still small is not punished for it: its batch will grow.
   - *comparison*: at a rung the trial's statistic is compared with every other trial's statistic at the
     same SFO (the trials that passed the rung; one that reached the target by then counts as the best);
     it goes on if it is in the best ``1/rf`` of them.

Guarantees kept from ASHA: a stopped trial is *pruned* (the caller reports it to the searcher as pruned,
never as completed with a penalty value); a trial that reached the target, or is in its last epoch, is
never stopped (that would only lose its result); a diverged trial (a missing, NaN or infinite metric) is
the worst: it is stopped, and to its peers it counts as +inf, never as a number that cannot be compared.

Interface: ``on_result(trial_id, facts, record) -> Decision`` with the trial's ``ScheduleFacts`` and one epoch
record (``epoch``, ``sfo``, ``grad_norm``; ``full_loss`` for the ``min_loss`` statistic). Why these choices,
against the alternatives, measured: docs/benchmarks.md §2 (``bench/search_efficiency.py --compare``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from schedules.spec import Horizon, Schedule, batch_plan, lr_plan

#: What a rung compares, lower is better (a running minimum is over the trial's records so far):
#: ``grad_norm``: the last full gradient norm (plain ASHA); ``min_grad_norm``: its running minimum;
#: ``projected_grad_norm``: the running minimum of the norm projected to the budget's end by the noise
#: scale (module docstring); ``min_loss``: the running minimum of f(theta) from the measurement pass.
STATISTICS = ("projected_grad_norm", "min_grad_norm", "grad_norm", "min_loss")
#: When a trial starts to meet rungs: ``after_warmup``: once its LR has reached its peak; ``after_stage``:
#: one epoch into the first batch stage that starts at or after that peak; ``sfo``: from the first record
#: (plain ASHA).
PLACEMENTS = ("after_stage", "after_warmup", "sfo")
_REL = 1e-9  # float noise in a plan's LR values (the warm-up's last plateau is lr_max up to rounding)


@dataclass(frozen=True)
class ScheduleFacts:
    """What the rule knows of a trial's schedule, read off its plan (``schedules.spec``).

    - ``sfo_per_epoch``: n_train, the SFO of one full epoch (every epoch covers the training set once);
    - ``settle_epoch``: completed epochs after which the LR has reached its peak over the horizon; 0 when
      the LR never rises; the horizon's length for an LR that peaks only in the last epoch;
    - ``stage_starts``: 0-based epochs at which the batch size changes (empty for a constant batch and for
      ``adaptive``, whose stages the trainer moves at run time);
    - ``noise_scale``: eta_e / b_e at the first step of each epoch (empty when the plan is not known in
      advance: ``adaptive``).

    Table (exp_growth b0=8 x2 every 3 epochs; warmup_const 0.1 -> 1.0 over W=4, w=1; 10 epochs):
    settle_epoch 4 (lr_max from epoch index 3), stage_starts (3, 6, 9), noise_scale[0] = 0.1/8.
    """

    sfo_per_epoch: float
    settle_epoch: int = 0
    stage_starts: tuple[int, ...] = ()
    noise_scale: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sfo_per_epoch) and self.sfo_per_epoch > 0):
            raise ValueError(f"sfo_per_epoch must be a positive number, got {self.sfo_per_epoch!r}")
        if self.settle_epoch < 0:
            raise ValueError(f"settle_epoch must be >= 0, got {self.settle_epoch!r}")
        if any(not (math.isfinite(x) and x > 0) for x in self.noise_scale):
            raise ValueError("noise_scale must hold positive numbers (eta_e / b_e)")

    @classmethod
    def from_schedule(cls, schedule: Schedule | Mapping[str, Any], horizon: Horizon) -> ScheduleFacts:
        """Facts of ``schedule`` (a ``Schedule`` or its JSON form, which is validated) over ``horizon``."""
        if not isinstance(schedule, Schedule):
            schedule = Schedule.from_json(schedule)
        lrs = lr_plan(schedule, horizon)
        peak = max(lrs)
        rises = lrs[0] < peak * (1 - _REL)
        first_peak = next(e for e, lr in enumerate(lrs) if lr >= peak * (1 - _REL))
        stages: tuple[int, ...] = ()
        noise: tuple[float, ...] = ()
        if not schedule.batch_size.is_adaptive:
            plan = batch_plan(schedule, horizon)
            stages = tuple(e for e in range(1, len(plan)) if plan[e] != plan[e - 1])
            if all(lr > 0 for lr in lrs):  # an LR that decays to 0 has no noise scale to project by
                noise = tuple(lr / b for lr, b in zip(lrs, plan, strict=True))
        return cls(
            sfo_per_epoch=float(horizon.n_train),
            settle_epoch=first_peak + 1 if rises else 0,
            stage_starts=stages,
            noise_scale=noise,
        )

    def projection(self, epoch: int) -> float:
        """sqrt(noise scale in the horizon's last epoch / noise scale in ``epoch``), the factor that carries a
        gradient norm measured after ``epoch`` completed epochs to the end of the budget; 1.0 when the plan
        is unknown. Example: LR constant, batch 16 now and 1,024 at the end: sqrt(16/1024) = 0.125."""
        if not self.noise_scale or epoch < 1:
            return 1.0
        now = self.noise_scale[min(epoch, len(self.noise_scale)) - 1]
        return math.sqrt(self.noise_scale[-1] / now)

    def judged_from(self, placement: str) -> int:
        """Completed epochs before which no rung judges the trial, under ``placement``: ``sfo`` 0;
        ``after_warmup`` the settle epoch; ``after_stage`` one epoch into the first batch stage that starts at
        or after the LR's peak (the settle epoch when the LR never rises or no stage starts after its peak).
        """
        if placement == "sfo":
            return 0
        if placement == "after_warmup" or self.settle_epoch == 0:
            return self.settle_epoch
        later = [s for s in self.stage_starts if s >= self.settle_epoch - 1]
        return later[0] + 1 if later else self.settle_epoch


@dataclass(frozen=True)
class Decision:
    """The rule's answer for one record: ``stop`` (the trial is to be pruned) and why, in one sentence."""

    stop: bool
    reason: str = ""

    @property
    def kind(self) -> str:
        """``capped``, ``rung``, ``diverged`` or '' (continue): the reason's first word."""
        return self.reason.split(":", 1)[0] if self.stop else ""


CONTINUE = Decision(False)


@dataclass(frozen=True)
class StoppingConfig:
    """The rule's settings (``schedule_aware_config`` fills them as the search uses them).

    - ``budget_sfo``: the per-trial SFO budget;
    - ``rungs``: rung positions in SFO, ascending, each in (0, budget_sfo); () for no rungs;
    - ``reduction_factor``: rf > 1; at a rung a trial goes on if it is in the best 1/rf of those compared;
    - ``statistic``, ``placement``: one of ``STATISTICS``, ``PLACEMENTS``;
    - ``target``: the gradient-norm target; ``cap``: incumbent capping, valid only when the searched
      objective is the SFO to that target;
    - ``min_peers``: a rung compares only when at least this many other trials have a value there.
    """

    budget_sfo: float
    rungs: tuple[float, ...] = ()
    reduction_factor: float = 2.0
    statistic: str = "projected_grad_norm"
    placement: str = "after_stage"
    target: float | None = None
    cap: bool = False
    min_peers: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.budget_sfo) and self.budget_sfo > 0):
            raise ValueError(f"budget_sfo must be a positive number, got {self.budget_sfo!r}")
        object.__setattr__(self, "rungs", tuple(float(r) for r in self.rungs))
        if list(self.rungs) != sorted(set(self.rungs)) or any(
            not 0 < r < self.budget_sfo for r in self.rungs
        ):
            raise ValueError(
                f"rungs must be ascending SFO values in (0, {self.budget_sfo:g}), got {self.rungs}"
            )
        if not (math.isfinite(self.reduction_factor) and self.reduction_factor > 1):
            raise ValueError(f"reduction_factor must be > 1, got {self.reduction_factor!r}")
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {self.statistic!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, got {self.placement!r}")
        if self.target is not None and not (math.isfinite(self.target) and self.target > 0):
            raise ValueError(f"target must be a positive number, got {self.target!r}")
        if self.cap and self.target is None:
            raise ValueError("cap needs target: capping compares each trial's SFO with the SFO to target")
        if self.min_peers < 1:
            raise ValueError(f"min_peers must be >= 1, got {self.min_peers!r}")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rungs": list(self.rungs)}


def rungs_for(budget_sfo: float, sfo_per_epoch: float, reduction_factor: float = 2.0) -> tuple[float, ...]:
    """ASHA's rung positions below the budget: budget / rf^k for k >= 1, none under one epoch of SFO.

    >>> rungs_for(40_410, 1_347, 3)   # 30 epochs of 1,347: 1.1, 3.3 and 10 epochs
    (1496.6666666666667, 4490.0, 13470.0)
    """
    out: list[float] = []
    r = budget_sfo / reduction_factor
    while r >= sfo_per_epoch:
        out.append(r)
        r /= reduction_factor
    return tuple(sorted(out))


def schedule_aware_config(
    *, budget_sfo: float, sfo_per_epoch: float, target: float | None, **overrides: Any
) -> StoppingConfig:
    """The rule as the search uses it: rungs at budget / 2^k (``rungs_for``), rf 2, the projected gradient
    norm judged from one epoch into the first batch stage after the LR peak, and incumbent capping when
    there is a target (the searched objective must then be SFO to that target). ``overrides`` replace any
    ``StoppingConfig`` field (the bench's alternatives, docs/benchmarks.md §2)."""
    rf = float(overrides.pop("reduction_factor", 2.0))
    settings: dict[str, Any] = {
        "budget_sfo": budget_sfo,
        "rungs": rungs_for(budget_sfo, sfo_per_epoch, rf),
        "reduction_factor": rf,
        "target": target,
        "cap": target is not None,
    }
    settings.update(overrides)
    return StoppingConfig(**settings)


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass
class _Trial:
    facts: ScheduleFacts
    sfo: list[float] = field(default_factory=list)  # ascending, one per record
    stat: list[float] = field(default_factory=list)  # the statistic after each record; +inf once diverged
    judged: set[float] = field(default_factory=set)  # rungs already met
    reached_sfo: float | None = None

    def value_at(self, sfo: float) -> float:
        """The statistic of its last record at or before ``sfo`` (+inf before its first record)."""
        i = bisect.bisect_right(self.sfo, sfo)
        return self.stat[i - 1] if i else math.inf


class ScheduleAwareStopping:
    """The rule (module docstring). One instance per search. Not thread-safe: Tune calls a scheduler from
    one thread, and the Optuna bench runs trials one after another.

    ``incumbent_sfo`` is the lowest SFO at which any trial reached the target so far (None before).
    """

    def __init__(self, config: StoppingConfig) -> None:
        self.config = config
        self.trials: dict[str, _Trial] = {}
        self.incumbent_sfo: float | None = None

    def _statistic(self, trial: _Trial, record: Mapping[str, Any]) -> float:
        """The trial's statistic after ``record``; +inf (the worst) once any metric it needs is missing,
        NaN or infinite, and for ever after."""
        if trial.stat and trial.stat[-1] == math.inf:
            return math.inf
        norm = _finite(record.get("grad_norm"))
        loss = _finite(record.get("full_loss"))
        if norm is None or (self.config.statistic == "min_loss" and loss is None):
            return math.inf
        name = self.config.statistic
        if name == "grad_norm":
            return norm
        if name == "min_grad_norm":
            current = norm
        elif name == "projected_grad_norm":
            epoch = _finite(record.get("epoch"))
            if epoch is None:  # the epoch in progress, from the SFO clock
                epoch = math.ceil((_finite(record.get("sfo")) or 0.0) / trial.facts.sfo_per_epoch)
            current = norm * trial.facts.projection(int(epoch))
        else:
            current = loss  # type: ignore[assignment]  # checked above: finite for min_loss
        return min(trial.stat[-1], current) if trial.stat else current

    def on_result(self, trial_id: str, facts: ScheduleFacts, record: Mapping[str, Any]) -> Decision:
        """Record one epoch of ``trial_id`` (records of one trial come in SFO order) and decide.

        Raises ValueError when the record has no finite ``sfo`` (the clock every comparison runs on)."""
        cfg = self.config
        sfo = _finite(record.get("sfo"))
        if sfo is None:
            raise ValueError(f"the record of trial {trial_id} needs a finite sfo, got {record.get('sfo')!r}")
        trial = self.trials.setdefault(trial_id, _Trial(facts))
        value = self._statistic(trial, record)
        trial.sfo.append(sfo)
        trial.stat.append(value)
        if value == math.inf:
            return Decision(True, "diverged: a missing or non-finite metric counts as the worst")
        norm = _finite(record.get("grad_norm"))
        if trial.reached_sfo is None and cfg.target is not None and norm is not None and norm <= cfg.target:
            trial.reached_sfo = sfo
            if self.incumbent_sfo is None or sfo < self.incumbent_sfo:
                self.incumbent_sfo = sfo
        if trial.reached_sfo is not None:
            return CONTINUE  # at its target: its result is final, stopping it would only lose it
        if sfo + trial.facts.sfo_per_epoch / 2 >= cfg.budget_sfo:
            return CONTINUE  # in its last epoch: stopping saves nothing and loses the trainer's summary
        # The target is checked at epoch ends, so the earliest this trial can reach it is its next record,
        # one epoch on: if that is not below the incumbent's SFO, it cannot beat the incumbent any more. (A
        # last epoch cut short by the budget ends before that, but the incumbent is within the budget too.)
        next_record = sfo + trial.facts.sfo_per_epoch
        if cfg.cap and self.incumbent_sfo is not None and next_record >= self.incumbent_sfo:
            return Decision(
                True,
                f"capped: {sfo:,.0f} SFO spent without reaching the target, which another trial reached at "
                f"{self.incumbent_sfo:,.0f} SFO: its next measurement cannot come earlier",
            )
        return self._rung(trial_id, trial, sfo, value)

    def _rung(self, trial_id: str, trial: _Trial, sfo: float, value: float) -> Decision:
        cfg = self.config
        if sfo < trial.facts.judged_from(cfg.placement) * trial.facts.sfo_per_epoch:
            return CONTINUE  # before its LR peak and the batch stage after it: not comparable yet
        due = [r for r in cfg.rungs if r <= sfo and r not in trial.judged]
        if not due:
            return CONTINUE
        rung = due[-1]
        trial.judged.update(due)  # a trial that comes late meets only its highest due rung, as in ASHA
        peers: list[float] = []
        for other_id, other in self.trials.items():
            if other_id == trial_id:
                continue
            if other.reached_sfo is not None and other.reached_sfo <= sfo:
                peers.append(-math.inf)  # at its target by this SFO: better than any value
            elif other.sfo and other.sfo[-1] >= rung:
                peers.append(other.value_at(sfo))
        if len(peers) < cfg.min_peers:
            return CONTINUE
        ranked = sorted([*peers, value])
        cutoff = ranked[max(1, math.ceil(len(ranked) / cfg.reduction_factor)) - 1]
        if value <= cutoff:
            return CONTINUE
        return Decision(
            True,
            f"rung: at the {rung:,.0f} SFO rung its {cfg.statistic} {value:.4g} is not in the best "
            f"1/{cfg.reduction_factor:g} of {len(ranked)} trials at {sfo:,.0f} SFO (cutoff {cutoff:.4g})",
        )
