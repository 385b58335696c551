# `make help` lists the targets. `make run` and `make test` install what they need into .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What only `make test` / `make lint` need (pytest, hypothesis, moto, Prefect, ruff, mypy) and `make server` needs
# (Flask-WTF) comes on top, so `make run` installs the pipeline's own dependencies (and the dask extra) only.
TEST_STAMP := $(VENV)/.installed-test
SERVER_STAMP := $(VENV)/.installed-server
# Airflow cannot share the pipeline's environment (it pins fastapi < 0.137, Prefect needs >= 0.139): the Airflow
# example is tested from an environment of its own, pinned in examples/orchestrators/airflow-requirements.txt.
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
# The embedded SQLite store in the project folder, unless MLFLOW_TRACKING_URI is already set.
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
export MLFLOW_DISABLE_TELEMETRY ?= true
export MPLCONFIGDIR ?= $(CURDIR)/$(VENV)/.matplotlib
export PATH := $(CURDIR)/$(BIN):$(PATH)
MLFLOW_RUN_ARGS ?=
PYTEST_ARGS ?=
PORT ?= 5001
# `make server`: a tracking server for a team (deploy/tracking_server.py); artifacts go to a local folder unless
# ARTIFACTS is an s3:// URL (then AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and MLFLOW_S3_ENDPOINT_URL apply).
BACKEND_STORE_URI ?= postgresql://postgres@127.0.0.1:5432/mlflow
ARTIFACTS ?= $(CURDIR)/mlartifacts
SERVER_PORT ?= 5000
SERVER_ARGS ?=
# The champion of the configured registered model (read from configs/pipeline.yaml when `make serve` runs).
MODEL_URI ?= $(shell $(BIN)/python -c 'from pipeline.config import load_config; r = load_config().registry; \
	print(f"models:/{r.model_name}@{r.champion_alias}")')

.PHONY: help install run test test-fast ui-check lint bench serve server ui clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dask]'
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(SERVER_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[server]'
	touch $@

$(AIRFLOW_STAMP): examples/orchestrators/airflow-requirements.txt
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r $<
	touch $@

install: $(STAMP) ## create .venv and install the pipeline's pinned packages and the dask extra (no test tools)

run: $(STAMP) ## run the whole chain (entry point main) through `mlflow run`
	@# `mlflow run` opens the tracking store before the pipeline starts and retries a bad database for ~100 s:
	@# check it first, so a wrong MLFLOW_TRACKING_URI is one line with the fix, in seconds.
	$(BIN)/python -m pipeline check-store
	$(BIN)/mlflow run . -e main --env-manager local $(MLFLOW_RUN_ARGS)

test: $(TEST_STAMP) $(AIRFLOW_STAMP) ## run all tests, the slow end-to-end ones included
	AIRFLOW_PYTHON=$(CURDIR)/$(AIRFLOW_VENV)/bin/python $(BIN)/python -m pytest $(PYTEST_ARGS)

# test_template.py reads the selection from the recipe below: it runs the same tests in a copy of the repository.
test-fast: $(TEST_STAMP) ## unit tests and light in-process checks (no model trained, no server): under a minute
	$(BIN)/python -m pytest -m "not slow and not heavy" $(PYTEST_ARGS)

# The browser check (tests/integration/test_ui.py) needs Debian's Chromium; `make test` skips it where there is none.
ui-check: $(TEST_STAMP) ## the evaluate run's note and the run list (a row per chain) checked in headless Chromium
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y --no-install-recommends chromium; } \
		|| { echo "ui-check needs Chromium: sudo apt-get install chromium" >&2; exit 1; }
	PIPELINE_REQUIRE_BROWSER=1 $(BIN)/python -m pytest tests/integration/test_ui.py $(PYTEST_ARGS)

lint: $(TEST_STAMP) ## ruff (lint and format check) on the tree, mypy on pipeline/ (settings in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP) ## run every benchmark and write the figures into docs/benchmarks.md (minutes; quiet machine)
	$(BIN)/python benchmarks/run_all.py

serve: $(STAMP) ## serve the champion over HTTP on 127.0.0.1:5001 (PORT=... for another)
	$(BIN)/mlflow models serve -m "$(MODEL_URI)" --env-manager local --host 127.0.0.1 --port $(PORT)

server: $(SERVER_STAMP) ## start a tracking server on PostgreSQL (BACKEND_STORE_URI, ARTIFACTS; SERVER_ARGS=--auth)
	$(BIN)/python deploy/tracking_server.py --backend-store-uri "$(BACKEND_STORE_URI)" \
		--artifacts-destination "$(ARTIFACTS)" --port $(SERVER_PORT) $(SERVER_ARGS)

ui: $(STAMP) ## open the MLflow UI on the tracking store
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI)

clean: ## remove the local tracking store and its artifacts (keeps .venv)
	rm -rf mlflow.db mlruns mlartifacts
