# The two commands of the README's Quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench

$(PY):
	$(PYTHON) -m venv $(VENV)

setup: $(PY)
	bash scripts/install-desktop-deps.sh
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'

demo: setup
	$(VENV)/bin/deskpilot demo

test: setup
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m ruff format --check src tests benchmarks examples
	$(PY) -m pytest -q -p no:cacheprovider

bench: setup
	$(PY) benchmarks/client_bench.py
	$(PY) benchmarks/desktop_bench.py
	$(PY) benchmarks/agent_bench.py
