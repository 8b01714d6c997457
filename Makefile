# The two commands a new user needs are `make run` and `make test`; everything else is a step of those.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PYTEST_ARGS ?=

.PHONY: run test bench lint typecheck layers unit e2e system-deps install install-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	# The machine's pip 23.2 backtracks for minutes on this dependency set; a current pip resolves it at once.
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: setup.cfg | $(PY)
	$(PY) -m pip install --quiet -e '.[all]'
	@touch $@

$(VENV)/.installed-test: setup.cfg | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

system-deps:
	@bash scripts/system-deps.sh

## run: set up and run the main job on the embedded defaults
run: install system-deps
	$(BIN)/smart-rollback run

## test: set up, then lint, type-check, check the layering and run the whole suite (e2e included)
test: install-test system-deps lint typecheck layers
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-test
	$(BIN)/mypy

layers: install-test
	$(BIN)/lint-imports

unit: install-test
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

e2e: install-test system-deps
	$(BIN)/pytest -m e2e $(PYTEST_ARGS)

## bench: run every benchmark and update benchmarks/RESULTS.md
bench: install-test
	@bash scripts/system-deps.sh bench
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info .run
