#!/usr/bin/env bash
# The test command that the README gives and CI runs: sets up .venv, makes sure PostgreSQL answers,
# then runs lint, type checks and the whole pytest suite (PostgreSQL and Ray tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/ensure-postgres.sh
. .venv/bin/activate
ruff check .
mypy schedules workers service
exec pytest "$@"
