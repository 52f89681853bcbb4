# kafka-failover — every target works from a fresh clone; nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: help venv fetch lint typecheck imports test test-fast demo bench bench-smoke clean distclean

help:
	@echo "make demo   - start two local Kafka clusters, the gateway, a producer and a consumer, switch, print a timeline"
	@echo "make test   - install everything into $(VENV), fetch test jars, lint, type-check and run the whole suite"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required, found " + sys.version)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

fetch: $(STAMP)
	$(PY) -m kafka_testbed.fetching
	$(PY) -m kube_testbed.building

lint: $(STAMP)
	$(VENV)/bin/ruff check proxy operator tests bench
	$(VENV)/bin/ruff format --check proxy operator tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

imports: $(STAMP)
	$(VENV)/bin/lint-imports

# pytest exits 5 when no test ran: that is a failure here, never green.
test: lint typecheck imports fetch
	$(PY) -m pytest tests

test-fast: $(STAMP)
	$(PY) -m pytest tests/unit tests/protocol

demo: fetch
	$(PY) -m kafka_testbed.demo

bench: fetch
	$(PY) bench/run.py

bench-smoke: fetch
	$(PY) bench/run.py --smoke

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache test-logs

distclean: clean
	rm -rf $(VENV) .cache
