# `make help` lists the targets. `make run` and `make test` install what they need into .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The embedded SQLite store in the project folder, unless MLFLOW_TRACKING_URI is already set.
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
export MLFLOW_DISABLE_TELEMETRY ?= true
export MPLCONFIGDIR ?= $(CURDIR)/$(VENV)/.matplotlib
export PATH := $(CURDIR)/$(BIN):$(PATH)
MLFLOW_RUN_ARGS ?=
PYTEST_ARGS ?=

.PHONY: help install run test test-fast ui clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(STAMP) ## create .venv and install the pinned packages

run: $(STAMP) ## run the whole chain (entry point main) through `mlflow run`
	$(BIN)/mlflow run . -e main --env-manager local $(MLFLOW_RUN_ARGS)

test: $(STAMP) ## run all tests, the slow end-to-end ones included
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## run the tests not marked slow
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

ui: $(STAMP) ## open the MLflow UI on the tracking store
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI)

clean: ## remove the local tracking store and its artifacts (keeps .venv)
	rm -rf mlflow.db mlruns mlartifacts
