# cce-upgrade-watch: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
N ?= 1000
CACHE := $(or $(CCE_UPGRADE_WATCH_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/cce-upgrade-watch)
# checkov pins versions of packages the project also uses: it lives in a venv of
# its own, cached outside the repository like the control-plane binaries.
CHECKOV_VERSION := 3.3.30
CHECKOV := $(CACHE)/checkov-$(CHECKOV_VERSION)/bin/checkov

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# Dependencies exactly as locked (hashes checked; hack/lock refreshes the files), then
# the project itself, editable, built by the locked setuptools without a download.
$(STAMP): pyproject.toml requirements/test.txt requirements/build.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/test.txt -r requirements/build.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP) ## create .venv with the project and its test tools

cluster-bin: ## build (or reuse) kube-apiserver, kube-controller-manager, kubectl and etcd
	hack/localcluster build

helm-bin: ## build (or reuse) helm, for the chart tests
	hack/helm build

gitops-oracle: ## build (or reuse) the GitOps oracle (kstatus, Flux CEL, Argo CD Lua), for the GitOps tests
	hack/gitops-oracle build

image-deps: ## install (once) the Debian packages the image tests need: podman, runc, mmdebstrap
	hack/host-packages image

node-bin: cluster-bin ## build (or reuse) kubelet, kube-scheduler, kube-proxy; install containerd & co. once
	hack/host-packages node
	hack/localcluster build-node

image: image-deps ## build the operator image from the Dockerfile with podman (cached)
	hack/image build

$(CHECKOV):
	$(PYTHON) -m venv $(CACHE)/checkov-$(CHECKOV_VERSION)
	$(CACHE)/checkov-$(CHECKOV_VERSION)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'

checkov: $(CHECKOV) ## install checkov (the manifests' security scan) in a cached venv of its own

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check operator tests benchmarks
	$(BIN)/ruff format --check operator tests benchmarks
	$(BIN)/mypy

test-unit: $(STAMP) gitops-oracle ## unit tests only (no cluster needed)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test: $(STAMP) cluster-bin helm-bin gitops-oracle node-bin checkov image-deps lint ## everything: venv, control-plane binaries, lint, all tests
	CHECKOV=$(CHECKOV) $(BIN)/pytest $(PYTEST_ARGS)

demo: $(STAMP) cluster-bin ## control plane + simulator + operator, with an upgrade progressing
	$(BIN)/cce-upgrade-watch demo

bench: $(STAMP) cluster-bin ## the end-to-end benchmark (N watches, default 1000)
	$(BIN)/python -m benchmarks.bench --watches $(N) $(BENCH_ARGS)

clean: ## remove the venv and caches (not the control-plane binaries)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info operator/*.egg-info

.PHONY: help venv cluster-bin helm-bin gitops-oracle node-bin image-deps image checkov lint test-unit test demo bench clean
