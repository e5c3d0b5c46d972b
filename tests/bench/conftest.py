"""Benchmark smoke tests write result files and plots into a temporary folder, never the repository."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def results_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import bench._report

    folder = tmp_path / "results"
    monkeypatch.setattr(bench._report, "RESULTS_DIR", folder)
    return folder
