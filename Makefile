# Koretex: `make run` for a local network of one, `make test` for the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := agent,llama,coordinator,postgres,replicas,dev
# The versions the suite passed with: every package pinned with its hashes (`make lock` renews).
LOCKS := requirements.lock requirements-models.lock
# llama.cpp compiles from source on Linux; skip its multimodal tools, which Koretex never loads.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
# ...and its AMX kernels: a virtual machine may report AMX without granting its tile state, and
# the first Q4_0/Q8_0/IQ4_NL matrix product then dies of SIGILL (seen on this project's CI hosts).
ifeq ($(shell uname -m),x86_64)
CMAKE_ARGS += -DCMAKE_C_FLAGS=-mno-amx-int8 -DCMAKE_CXX_FLAGS=-mno-amx-int8
endif
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run test system lint typecheck bench bench-quick lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel

# Locked packages first (no resolution, hashes checked), then Koretex itself on top of them. The
# venv has a pip cache of its own: pip keys a built wheel on its source alone, so a shared cache
# would hand back a llama.cpp built with other CMAKE_ARGS (with the AMX kernels, say). The wheels
# it built stay there (the installer's test installs llama.cpp from them); the downloads do not.
WHEEL_CACHE := $(VENV)/pip-cache
$(VENV)/.installed: pyproject.toml $(LOCKS) | $(BIN)/python
	PIP_CACHE_DIR="$(CURDIR)/$(WHEEL_CACHE)" \
		$(BIN)/pip install --quiet --no-deps --require-hashes $(addprefix -r ,$(LOCKS))
	rm -rf $(WHEEL_CACHE)/http $(WHEEL_CACHE)/http-v2
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

run: $(VENV)/.installed
	$(BIN)/python scripts/run_local.py

# The Debian packages the suite needs (browser, PostgreSQL, Redis, nginx, shellcheck, compilers).
system:
	scripts/setup_system.sh

# The suite runs on SQLite and on a throwaway PostgreSQL (and Redis) on loopback ports.
test: system $(VENV)/.installed
	services="$$(scripts/test_services.sh start)" && set -a && eval "$$services" && set +a && \
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check protocol agent coordinator installer tests bench scripts

typecheck: $(VENV)/.installed
	$(BIN)/mypy

# Every benchmark, ending with one table of targets (`make bench-quick`: each in a few seconds).
# LiteLLM, the peer gateway_vs_peers measures against, lives in its own virtualenv: its pins
# would otherwise move the suite's.
PEERS := .venv-peers
$(VENV)/.bench: requirements-bench.lock | $(VENV)/.installed
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements-bench.lock
	touch $@

$(PEERS)/bin/litellm:
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --quiet "litellm[proxy]>=1.50"

bench: system $(VENV)/.bench $(PEERS)/bin/litellm
	KORETEX_BENCH_LITELLM=$(PEERS)/bin/litellm $(BIN)/python bench/run_all.py

bench-quick: system $(VENV)/.bench
	$(BIN)/python bench/run_all.py --quick

# Renew the locks from pyproject.toml (the models' packages are taken without their dependencies).
lock: | $(BIN)/python
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
		--no-header $(foreach extra,$(subst $(comma), ,$(EXTRAS)),--extra $(extra)) -o requirements.lock
	for locked in models bench; do \
		$(BIN)/uv pip compile requirements-$$locked.in --no-deps --universal --python-version 3.11 \
			--generate-hashes --no-header -o requirements-$$locked.lock; done

comma := ,

clean:
	rm -rf $(VENV) $(PEERS) build dist *.egg-info
