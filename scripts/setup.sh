#!/usr/bin/env bash
# Idempotent setup: a local virtual environment in .venv with the project and its dev tools.
# Installs PyTorch's CPU wheel first where there is no NVIDIA GPU, so the `torch>=2.4` range in
# pyproject.toml is already satisfied and pip does not pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${SCHEDSEARCH_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
stamp="$VENV/.schedsearch-installed"
want="$(cat pyproject.toml examples/plugins/*/pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
$PIP install -q --upgrade pip
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $PIP install -q "torch>=2.4"
  else
    # The CPU build; on machines whose pip index carries only the CUDA build, use PyTorch's CPU index.
    $PIP install -q "torch==2.13.0" || $PIP install -q torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi
$PIP install -q -e ".[dev]"
# The example task plugins (examples/plugins/*), as an operator installs a plugin next to schedsearch; their
# end-to-end test runs a job naming one. --no-deps: schedsearch and torch are already here.
for plugin in examples/plugins/*/; do
  $PIP install -q --no-deps -e "$plugin"
done
echo "$want" > "$stamp"
