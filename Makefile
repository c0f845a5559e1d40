# Koretex: `make run` for a local network of one, `make test` for the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := agent,llama,coordinator,postgres,dev
# llama.cpp compiles from source on Linux; skip its multimodal tools, which Koretex never loads.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

run: $(VENV)/.installed
	$(BIN)/python scripts/run_local.py

# The suite runs on SQLite and on a throwaway PostgreSQL (and Redis) on loopback ports.
test: $(VENV)/.installed
	set -a; eval "$$(scripts/test_services.sh start)"; set +a; \
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check protocol agent coordinator installer tests bench scripts

typecheck: $(VENV)/.installed
	$(BIN)/mypy

bench: $(VENV)/.installed
	$(BIN)/python bench/gateway_overhead.py
	$(BIN)/python bench/routing.py

clean:
	rm -rf $(VENV) build dist *.egg-info
