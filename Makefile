# microshop: the two commands a newcomer needs are `make demo` and `make test`.
# Everything installs itself from the lock file (uv.lock) into .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.8
UV := .uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help demo run test test-unit test-integration test-operator test-browser screenshots chaos lint format lock images e2e manifests chart-crd scan scan-env bench mutants audit contract clean

help:
	@echo "make demo   - run the shop on embedded defaults and drive a scripted session through it"
	@echo "make run    - keep the standalone shop serving on http://127.0.0.1:8080 until Ctrl-C"
	@echo "make test   - lint + every test (unit, integration on PostgreSQL/RabbitMQ, operator, the short chaos schedule)"
	@echo "make chaos  - the chaos suite's full fault schedule on private servers; prints its table"
	@echo "make lint   - ruff, ruff format --check, mypy"
	@echo "make test-browser - the storefront and API docs in Debian's Chromium (/usr/bin/chromium)"
	@echo "make screenshots  - run the browser tests and keep their screenshots in docs/screenshots"
	@echo "make images - build the two container images (needs Docker)"
	@echo "make e2e    - end-to-end on a kind cluster (needs Docker and kind)"
	@echo "make manifests - regenerate manifests/install.yaml and argocd-cm.yaml from the chart"
	@echo "make scan   - checkov on the rendered chart and example Shops (suppressions: tools/checkov)"
	@echo "make bench  - every benchmark: tables, JSON and plots in bench/results (needs wrk, PostgreSQL and RabbitMQ; nginx optional)"
	@echo "make mutants - mutation testing (mutmut) of the pure modules; prints the kill rate"
	@echo "make contract - schemathesis (every check and phase) on a fresh standalone shop"
	@echo "make audit  - pip-audit on every package uv.lock pins (explanations: tools/pip-audit)"

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --all-extras --python $(PYTHON) --quiet
	@touch $@

venv: $(VENV)/.synced

# checkov lives in its own locked environment: its pins would downgrade ours if it shared
# uv.lock (the reason is in tools/checkov/pyproject.toml).
SCAN_VENV := .venv-scan
$(SCAN_VENV)/.synced: $(UV) tools/checkov/uv.lock tools/checkov/pyproject.toml
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(SCAN_VENV) $(UV) sync --frozen --project tools/checkov --python $(PYTHON) --quiet
	@touch $@

scan-env: $(SCAN_VENV)/.synced

scan: $(VENV)/.synced $(SCAN_VENV)/.synced
	$(BIN)/python -m tools.security_scan

# Installs nothing: wrk must be there (apt-get install wrk); without nginx its row is skipped.
bench: $(VENV)/.synced
	$(BIN)/python -m bench.run
# Needs PyPI's JSON API (per-version) or another pip-audit vulnerability service to answer.
audit: $(VENV)/.synced
	$(BIN)/python -m tools.pip_audit_lock

contract: $(VENV)/.synced
	$(BIN)/python -m tools.contract --max-examples 50

demo: $(VENV)/.synced
	$(BIN)/python -m microshop demo

run: $(VENV)/.synced
	$(BIN)/python -m microshop standalone --data-dir .data

lint: $(VENV)/.synced
	$(BIN)/ruff check services operator tests bench tools
	$(BIN)/ruff format --check services operator tests bench tools
	$(BIN)/mypy services/microshop operator/microshop_operator

format: $(VENV)/.synced
	$(BIN)/ruff check --fix services operator tests bench tools
	$(BIN)/ruff format services operator tests bench tools

test: lint $(SCAN_VENV)/.synced
	$(BIN)/python -m pytest

test-unit: $(VENV)/.synced $(SCAN_VENV)/.synced
	$(BIN)/python -m pytest tests/unit

test-integration: $(VENV)/.synced
	$(BIN)/python -m pytest -m integration

test-operator: $(VENV)/.synced
	$(BIN)/python -m pytest -m operator

# The whole schedule of docs/reliability.md (about 15 minutes); `make test` runs a short one.
chaos: $(VENV)/.synced
	MICROSHOP_CHAOS_SCHEDULE=full $(BIN)/python -m pytest -m chaos tests/chaos -s -p no:logging

# Not part of `make test` (minutes, not seconds); fails on a survivor that neither a test kills
# nor tests/mutants-explained.md explains. SCOPE=services or SCOPE=operator runs half.
SCOPE ?= all
mutants: $(VENV)/.synced
	$(BIN)/python -m tools.mutants --check --scope $(SCOPE)

# Needs /usr/bin/chromium (apt-get install -y chromium); Playwright's own browsers are never used.
test-browser: $(VENV)/.synced
	$(BIN)/python -m pytest -m browser tests/browser

# The README shows these: every page at desktop width and at 375 px, and axe's findings.
screenshots: $(VENV)/.synced
	rm -f docs/screenshots/*.png
	MICROSHOP_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest -m browser tests/browser -q

# Images are tagged as the chart and the Shop default expect (ghcr.io/microshop/...:VERSION).
IMAGE_REGISTRY ?= ghcr.io/microshop
IMAGE_TAG ?= 0.1.0
images:
	@if ! docker info >/dev/null 2>&1; then \
	  echo "images: skipped: no Docker engine answers here (\`docker info\` failed), so nothing can be built."; \
	  echo "        Start Docker (or point DOCKER_HOST at an engine) and run \`make images\` again."; \
	else \
	  set -ex; \
	  docker build -f services/Dockerfile --build-arg VERSION=$(IMAGE_TAG) -t $(IMAGE_REGISTRY)/microshop-services:$(IMAGE_TAG) .; \
	  docker build -f operator/Dockerfile --build-arg VERSION=$(IMAGE_TAG) -t $(IMAGE_REGISTRY)/microshop-operator:$(IMAGE_TAG) .; \
	fi

# The chart ships the Shop CRD in its crds/; this copy is checked by tests/unit/packaging.
chart-crd:
	cp crds/shop.yaml charts/microshop-operator/crds/shop.yaml

manifests: $(VENV)/.synced chart-crd
	$(BIN)/python -m tools.manifests all

# tests/e2e skips, saying why, where Docker or kind is missing.
e2e: $(VENV)/.synced
	$(BIN)/python -m pytest -m e2e tests/e2e

lock: $(UV)
	$(UV) lock --python $(PYTHON)
	$(UV) lock --project tools/checkov --python $(PYTHON)

clean:
	rm -rf .venv .venv-scan .uv .data .pytest_cache .mypy_cache .ruff_cache .mutants
