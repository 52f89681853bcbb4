# kafka-failover — every target works from a fresh clone; nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: help venv fetch lint typecheck imports test test-fast demo drill bench bench-smoke clean distclean \
	chart-sync pin-runtime images kind-e2e

help:
	@echo "make demo   - start two local Kafka clusters, the gateway, a producer and a consumer, switch, print a timeline"
	@echo "make drill  - DR drill: MirrorMaker 2, a planned and an unplanned switch under load, loss counted"
	@echo "make test   - install everything into $(VENV), fetch test jars, lint, type-check and run the whole suite"
	@echo "make bench  - direct Kafka, the gateway and peer proxies on one broker: throughput, latency, CPU, memory; switch latency"
	@echo "make kind-e2e - build both images, install the Helm chart on a kind cluster, switch, check (needs Docker)"

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
	$(PY) -m kube_testbed.helm_building
	$(PY) -m kafka_testbed.franz_go

lint: $(STAMP)
	$(VENV)/bin/ruff check proxy operator tests bench scripts
	$(VENV)/bin/ruff format --check proxy operator tests bench scripts
	$(VENV)/bin/hadolint Dockerfile.proxy Dockerfile.operator

typecheck: $(STAMP)
	$(VENV)/bin/mypy

imports: $(STAMP)
	$(VENV)/bin/lint-imports

# pytest exits 5 when no test ran: that is a failure here, never green.
test: lint typecheck imports fetch
	$(PY) -m pytest tests

test-fast: $(STAMP)
	$(PY) -m pytest tests/unit tests/protocol

drill: fetch
	$(PY) -m kafka_testbed.drill

demo: fetch
	$(PY) -m kafka_testbed.demo

bench: fetch
	$(PY) bench/run.py

bench-smoke: fetch
	$(PY) bench/run.py --smoke

# Copy the CRD, the operator's RBAC rules and the spec schema into the Helm chart.
chart-sync: $(STAMP)
	$(PY) scripts/sync_chart.py

# Pin requirements/runtime.txt (what the images install) from the venv.
pin-runtime: $(STAMP)
	$(PY) scripts/pin_runtime_requirements.py

images:
	docker build -f Dockerfile.proxy -t ghcr.io/kafka-failover/gateway:0.1.0 .
	docker build -f Dockerfile.operator -t ghcr.io/kafka-failover/operator:0.1.0 .

# Needs a Docker engine: exits 3 at once, saying so, without one.
kind-e2e:
	bash scripts/kind-e2e.sh

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache test-logs

distclean: clean
	rm -rf $(VENV) .cache
