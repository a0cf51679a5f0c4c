# The two commands of the README's Quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup python-check demo test test-parallel lint bench

python-check:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "deskpilot needs Python >= 3.11; this python3 is " + sys.version.split()[0] + ". Install a newer Python and run make PYTHON=/path/to/python3.11 ...")'

# Debian packages first (they include python3-venv when it is missing), then the venv. The
# package list is src/deskpilot/install.py (the same step as `deskpilot doctor --install`).
setup: python-check
	PYTHON=$(PYTHON) bash scripts/install-desktop-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'

demo: setup
	$(VENV)/bin/deskpilot demo

test: setup
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m ruff format --check src tests benchmarks examples
	$(PY) -m mypy src/deskpilot
	$(PY) -m pytest -q -p no:cacheprovider

# The same suite in about 8 minutes instead of 13 on a shared 2-core machine: every file but
# the timing-sensitive tests (marker `serial`) on 2 pytest-xdist workers (each file on one
# worker, so module fixtures start once), then the `serial` tests alone. CI still runs
# `make test`: this target has yet to pass two full runs in a row.
test-parallel: setup
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m ruff format --check src tests benchmarks examples
	$(PY) -m mypy src/deskpilot
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile -m "not serial"
	$(PY) -m pytest -q -p no:cacheprovider -m serial

bench: setup
	$(PY) benchmarks/client_bench.py
	$(PY) benchmarks/desktop_bench.py
	$(PY) benchmarks/agent_bench.py
	$(PY) benchmarks/fleet_bench.py
	$(PY) benchmarks/remote_bench.py
	$(PY) benchmarks/count_bench.py --exact-mode
	$(PY) benchmarks/eval_bench.py
	$(PY) benchmarks/ui_bench.py
