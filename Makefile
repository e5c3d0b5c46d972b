.PHONY: setup demo test lint
setup:
	scripts/setup.sh
demo:
	scripts/demo.sh
test:
	scripts/test.sh
lint:
	scripts/setup.sh && .venv/bin/ruff check . && .venv/bin/mypy schedules workers service cli
