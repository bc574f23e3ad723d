# Two commands on a fresh machine: `make run` (set up, start the gateway) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
STATIC := gateway/static
STATIC_STAMP := $(STATIC)/node_modules/.installed-stamp
PYTEST_ARGS ?=

.PHONY: run test lint bench venv static format cluster-smoke clean

# Every package, build tools included, comes at the version pinned in constraints.txt
# (regenerate with `.venv/bin/python scripts/lock.py --write`).
PIP_INSTALL := PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(BIN)/pip install -q --disable-pip-version-check

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(PIP_INSTALL) pip setuptools
	@$(PIP_INSTALL) -e '.[dev,loadtest]'
	@touch $(STAMP)

venv: $(STAMP)

# The demo page serves phoenix.js from the official npm package.
$(STATIC_STAMP): $(wildcard $(STATIC)/package-lock.json)
	@if [ -f $(STATIC)/package.json ]; then \
		command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }; \
		cd $(STATIC) && npm ci --silent --no-audit --no-fund && touch node_modules/.installed-stamp; \
	fi

static: $(STATIC_STAMP)

run: venv static
	$(BIN)/python -m gateway serve

test: venv static
	@scripts/setup-test-deps.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check gateway loadtest tests bench
	$(BIN)/ruff format --check gateway loadtest tests bench
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format gateway loadtest tests bench
	$(BIN)/ruff check --fix gateway loadtest tests bench

# `make bench BENCH_ARGS=--quick` for the short mode; `BENCH_ARGS=compare` for one benchmark.
bench: venv static
	@scripts/setup-test-deps.sh
	@scripts/npm-ci.sh bench/load
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(STATIC)/node_modules tests/js/node_modules .pytest_cache .mypy_cache .ruff_cache

# HAProxy, two gateways and redis-server as local processes; phoenix.js users ride a drain and a crash.
cluster-smoke: venv
	@scripts/setup-test-deps.sh
	$(BIN)/python scripts/cluster_smoke.py
