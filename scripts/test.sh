#!/usr/bin/env bash
# The test command that the README gives and CI runs: sets up .venv, makes sure PostgreSQL answers,
# then runs lint, type checks and the whole pytest suite (PostgreSQL and Ray tests included).
# All three run even when an earlier one fails, so one run shows every problem; the exit status is non-zero
# if any failed. Arguments go to pytest (e.g. `scripts/test.sh tests/deploy -q`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/ensure-postgres.sh
. .venv/bin/activate

failed=()
ruff check . || failed+=("ruff")
mypy schedules workers service cli || failed+=("mypy")
set +e
pytest "$@"
status=$?
set -e
case $status in
  0) ;;
  5) echo "pytest collected no tests: that is a failure here" >&2; failed+=("pytest (no tests)") ;;
  *) failed+=("pytest (exit $status)") ;;
esac

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
# Nothing is printed after pytest on success: CI reads pytest's summary as the closing line.
