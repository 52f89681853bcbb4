# kafka-failover — every target works from a fresh clone; nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml operator/pyproject.toml lab/pyproject.toml | sha1sum | cut -c1-12)
SOURCES := proxy operator lab tests bench scripts

.PHONY: help venv fetch fetch-kafka fetch-kube lint typecheck imports test test-fast demo drill \
	bench bench-smoke soak clean distclean chart-sync pin-runtime images kind-e2e fuzz

help:
	@echo "make demo   - start two local Kafka clusters, the gateway, a producer and a consumer, switch, print a timeline"
	@echo "make drill  - DR drill: MirrorMaker 2, a planned and an unplanned switch under load, loss counted"
	@echo "              (DRILL_ARGS=\"--via kubectl\": planned, then automatic failover by the operator)"
	@echo "make test   - install everything into $(VENV), fetch test jars, build the images, lint, type-check and run the whole suite"
	@echo "make images - build the gateway and operator images (docker, else podman from Debian) and print their sizes"
	@echo "make soak   - SOAK_MINUTES (60) of load through 3 gateways with switches and faults: loss, memory, fds"
	@echo "make bench  - direct Kafka, the gateway and peer proxies on one broker: throughput, latency, CPU, memory; switch latency"
	@echo "make fuzz   - coverage-guided fuzzing (atheris) of the frame splitter and the address rewriter, FUZZ_SECONDS each (default 600)"
	@echo "make kind-e2e - build both images, install the Helm chart on a kind cluster, switch, check (needs Docker)"

# The product (the gateway at the root, the operator in operator/) and the test lab (lab/) are
# three distributions, installed editable side by side; the lab never goes into a product wheel.
$(STAMP): pyproject.toml operator/pyproject.toml lab/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required, found " + sys.version)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]' -e ./operator -e ./lab
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

# Kafka's jars and the lab's Java programs: all the demo needs.
fetch-kafka: $(STAMP)
	$(PY) -m kafka_testbed.fetching

# etcd, kube-apiserver, kube-controller-manager and helm, built from the Go module proxy.
fetch-kube: $(STAMP)
	$(PY) -m kube_testbed.building
	$(PY) -m kube_testbed.helm_building

# Everything the suite needs: also franz-go's integration suite, built from the Go module proxy.
fetch: fetch-kafka fetch-kube
	$(PY) -m kafka_testbed.franz_go

lint: $(STAMP)
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(VENV)/bin/hadolint Dockerfile.proxy Dockerfile.operator

typecheck: $(STAMP)
	$(VENV)/bin/mypy

imports: $(STAMP)
	$(VENV)/bin/lint-imports

# Both product images, cached by content (docker, else podman, installed from Debian as root).
images: $(STAMP)
	$(PY) -m kafka_testbed.images

# pytest exits 5 when no test ran: that is a failure here, never green.
test: lint typecheck imports fetch images
	$(PY) -m pytest tests

test-fast: $(STAMP)
	$(PY) -m pytest tests/unit tests/protocol

# Each target of tests/fuzz for FUZZ_SECONDS; the corpus grows in .fuzz/<target>/ across runs
# and an input that breaks a target is saved next to it (make test runs each for 10 s).
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	@for target in tests/fuzz/fuzz_*.py; do \
		name=$$(basename $$target .py); mkdir -p .fuzz/$$name/corpus; \
		echo "fuzzing $$name for $(FUZZ_SECONDS) s"; \
		$(PY) $$target -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=.fuzz/$$name/ .fuzz/$$name/corpus || exit 1; \
	done

# DRILL_ARGS="--via kubectl" runs the planned and the automatic modes through the operator.
drill: fetch
	$(PY) -m kafka_testbed.drill $(DRILL_ARGS)

demo: fetch-kafka
	$(PY) -m kafka_testbed.demo

# Issue 19's soak; the report goes to soak-report.json, exit 1 when a goal is missed.
SOAK_MINUTES ?= 60
soak: fetch
	$(PY) -m kafka_testbed.soaking --minutes $(SOAK_MINUTES)

bench: fetch-kafka
	$(PY) bench/run.py

bench-smoke: fetch-kafka
	$(PY) bench/run.py --smoke

# Copy the CRD, the operator's RBAC rules and the spec schema into the Helm chart.
chart-sync: $(STAMP)
	$(PY) scripts/sync_chart.py

# Pin requirements/gateway.txt and operator.txt (what the images install) from the venv.
pin-runtime: $(STAMP)
	$(PY) scripts/pin_runtime_requirements.py

# Needs a Docker engine: exits 3 at once, saying so, without one.
kind-e2e:
	bash scripts/kind-e2e.sh

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache test-logs .fuzz

# Downloads, builds and the Debian image base live in ~/.cache/kafka-failover, shared by clones.
distclean: clean
	rm -rf $(VENV)
