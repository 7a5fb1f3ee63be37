# Two commands for a fresh machine: `make demo` and `make test`. Both create the virtualenv and
# install the pinned dependencies first (python3, pip and make are all they need).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Reinstall whenever the declared or pinned dependencies change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: demo test test-fast mutation dev ui-check ui-screenshot bench quick-bench lint clean install

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)  ## run the whole pipeline once on the bundled simulators
	$(BIN)/evpipeline demo

test: $(STAMP)  ## run the test suite
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=25

test-fast: $(STAMP)  ## the development tier: no daemon, demo or benchmark processes, DuckDB backend only
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=10 -m "not slow" -k "not ducklake"

mutation: $(STAMP)  ## mutmut 3 over the critical modules, each against its own tests -> docs/testing.md
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,mutation]"
	$(BIN)/python -m evpipeline_tests.mutation

dev: $(STAMP)  ## Dagster UI + simulators + webhook receiver
	$(BIN)/evpipeline dev

ui-check: $(STAMP)  ## evpipeline dev: its dagster dev shows every asset, check, schedule, sensor; a source job succeeds (GraphQL); one lane runs; Ctrl-C stops it cleanly
	$(BIN)/python -m pytest -m ui evpipeline_tests/test_dev.py

ui-screenshot:  ## headless Chromium picture of the asset graph of a running `make dev` -> docs/asset-graph.png
	scripts/screenshot.sh docs/asset-graph.png

bench: $(STAMP)  ## full benchmark (installs the optional dlt reference)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,bench]"
	$(BIN)/evpipeline bench

quick-bench: $(STAMP)
	$(BIN)/evpipeline bench --quick

lint: $(STAMP)  ## ruff check and ruff format --check, mypy, the declared layers (lint-imports), dg check defs (all config in pyproject.toml)
	$(BIN)/ruff check evpipeline evpipeline_tests benchmarks
	$(BIN)/ruff format --check evpipeline evpipeline_tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
# the code location loads as dg loads it; the simulators' development settings fill what the environment lacks (no network)
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/python -c 'import os, sys; from evpipeline import settings; settings.apply_dev_defaults(); os.execv(sys.argv[1], sys.argv[1:])' $(BIN)/dg check defs

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
