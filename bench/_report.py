"""Helpers of the benchmark scripts: the machine block, the latest-result file, aligned tables, statistics.

Each script keeps one result file, ``bench/results/<name>.json`` (overwritten by the next run), so the
repository holds only the latest run and ``docs/benchmarks.md`` can cite it by a stable name.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
IMG_DIR = Path(__file__).resolve().parent.parent / "docs" / "img"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The checked-out commit, with ``+dirty`` when the tree has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=root
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+dirty" if dirty else head


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: CPUs, load at the start, library versions, commit (no paths, no hosts)."""
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "cpu_count": os.cpu_count(),
        "load_avg_at_start": load,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": _version("torch"),
        "ray": _version("ray"),
        "optuna": _version("optuna"),
        "fastapi": _version("fastapi"),
        "sqlalchemy": _version("sqlalchemy"),
        "git_commit": git_commit(),
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_latest(name: str, payload: dict[str, Any], *, results_dir: Path | None = None) -> Path:
    """Write ``<results_dir>/<name>.json`` (replacing the previous run) with the machine block added."""
    folder = results_dir or RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    body = {"benchmark": name, "machine": machine_info(), **payload}
    path.write_text(json.dumps(body, indent=2, sort_keys=True, default=_jsonable) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return value.name
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"cannot write {type(value).__name__} to a result file")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (numbers right-aligned), as printed by every script."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            if not math.isfinite(v):
                return "-"
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return str(v)

    body = [[cell(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in body:
        lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def mean_spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, sample std, min and max of the values that exist; ``missing`` counts the Nones."""
    present = [float(v) for v in values if v is not None]
    return {
        "mean": statistics.fmean(present) if present else None,
        "std": statistics.stdev(present) if len(present) > 1 else (0.0 if present else None),
        "min": min(present) if present else None,
        "max": max(present) if present else None,
        "n": len(present),
        "missing": len(values) - len(present),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
