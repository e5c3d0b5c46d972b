"""The job plot: full gradient norm against SFO (log-log) for the best trials and the baselines.

matplotlib is imported inside the function (PNG through Agg, no display) so the API starts without it.
"""

from __future__ import annotations

import io

from sqlalchemy.orm import Session

from service.report import sfo_to_target
from service.storage import repository as repo
from service.storage.models import Job, Trial


def _label(trial: Trial, rank: int | None) -> str:
    sfo = sfo_to_target(trial)  # None also for a stored value that is not a finite number
    reached = f"SFO to target {int(sfo):,}" if sfo is not None else "target not reached"
    name = trial.name or trial.trial_key
    return f"best #{rank}: {name} ({reached})" if rank is not None else f"{name} ({reached})"


def render_job_plot(session: Session, job: Job, *, top: int = 3) -> bytes:
    """PNG bytes. Searched trials are solid lines, baselines dashed; the target is a dotted line."""
    # The object API, not pyplot: pyplot's global state is not safe in the server's worker threads.
    from matplotlib.figure import Figure

    ranked, _ = repo.list_trials(session, job_id=job.id, kind="search", limit=top)
    best = ranked  # best first; trials that never reached the objective come last
    baselines, _ = repo.list_trials(session, job_id=job.id, kind="baseline", limit=50)
    chosen = best + baselines
    curves = repo.metrics_for_trials(session, trial_ids=[t.id for t in chosen])

    fig = Figure(figsize=(9, 5.5), dpi=100)
    ax = fig.subplots()
    drawn = 0
    for rank, trial in enumerate(chosen, start=1):
        points = [
            (m.sfo, m.grad_norm) for m in curves[trial.id] if m.sfo > 0 and m.grad_norm and m.grad_norm > 0
        ]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        is_search = trial.kind != "baseline"
        ax.plot(
            xs,
            ys,
            linestyle="-" if is_search else "--",
            linewidth=2.2 if is_search else 1.3,
            marker="o" if len(xs) < 40 else None,
            markersize=3,
            label=_label(trial, rank if is_search else None),
        )
        drawn += 1
    target = job.spec.get("target", {}).get("grad_norm")
    if target:
        ax.axhline(float(target), color="black", linestyle=":", linewidth=1, label=f"target {target:g}")
    if drawn:
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no per-epoch metrics yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("SFO (stochastic gradients computed)")
    ax.set_ylabel("full gradient norm ||∇f(θ)||")
    name = job.name if len(job.name) <= 80 else job.name[:77] + "..."
    ax.set_title(f"{name}\nfull gradient norm vs SFO (job {job.status})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if drawn or target:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
