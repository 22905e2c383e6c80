# modelfleet developer entry points. `make test` is what CI runs; `make demo` shows the operator
# on a local control plane. Both install what they need: a venv for Python and, on first use,
# the cluster binaries (cached outside the repo, see `modelfleet cluster build --help`).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)

.PHONY: help venv cluster-binaries demo-binaries test-binaries crds verify-crds manifests api-docs generate lint test test-unit test-integration bench-scale demo demo-down clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create .venv with modelfleet and its dev tools

cluster-binaries: venv ## build etcd, Kubernetes and kwok once (cached in ~/.cache/modelfleet)
	$(BIN)/modelfleet cluster build

demo-binaries: venv ## the cluster binaries plus Prometheus, which the demo runs
	$(BIN)/modelfleet cluster build --prometheus

test-binaries: venv ## the cluster binaries plus helm (chart test) and Prometheus (dashboard test)
	$(BIN)/modelfleet cluster build --helm --prometheus

crds: venv ## regenerate crds/ and the chart's CRDs from the pydantic types
	$(BIN)/modelfleet crds > crds/modeldeployments.modelfleet.dev.yaml
	cp crds/modeldeployments.modelfleet.dev.yaml charts/modelfleet/crds/

manifests: venv ## render manifests/install.yaml from the chart (helm template; values in manifests/install-values.yaml)
	$(BIN)/python -m modelfleet.dev.manifests

api-docs: venv ## regenerate docs/api.md (the API reference) from the pydantic types
	$(BIN)/modelfleet api-docs > docs/api.md

generate: crds manifests api-docs ## every generated file: CRDs, install.yaml, docs/api.md

lint: venv ## ruff, mypy and the import layering contracts
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test-unit: venv ## pure unit tests (no cluster)
	$(BIN)/pytest tests/unit

test-integration: venv test-binaries ## integration tests on a real local control plane
	$(BIN)/pytest tests/integration

test: lint test-unit test-integration ## everything CI runs

bench-scale: venv cluster-binaries ## scale benchmark (issue 10; 20-40 min, not in `make test`); ARGS="--deployments 100" for less
	$(BIN)/python bench/scale/run.py $(ARGS)

demo: venv demo-binaries ## local cluster + operator + Prometheus + samples, left running
	$(BIN)/python -m modelfleet.dev.demo

demo-down: venv ## stop what `make demo` started
	$(BIN)/python -m modelfleet.dev.demo --down

clean: ## remove the venv and caches in the repo (not the cluster binaries)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
