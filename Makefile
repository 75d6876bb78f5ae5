# smlocal: the two commands the README promises, and the steps they are made of.
# Every target installs what it needs and is safe to run again.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.smlocal-installed
SDK_STAMP := .venv-sdk/.installed
SDK3_STAMP := .venv-sdk3/.installed
SKLEARN_MODEL := containers/sklearn/build/model.tar.gz
SKLEARN_IMAGE := smlocal/sklearn-iris:latest
TRANSFORMERS_MODEL := containers/transformers/build/model.tar.gz
TRANSFORMERS_IMAGE := smlocal/transformers-text:latest
MME_MODELS := containers/multi-model/build/models/logistic.tar.gz
MME_IMAGE := smlocal/multi-model-iris:latest

.PHONY: help demo test wheel-check venv sdk-venv sdk3-venv docker base-image sklearn-image transformers-image multi-model-image fixtures registry lint unit

help: ## this list
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

demo: venv docker sklearn-image ## train, build, serve and invoke the reference sklearn container
	$(BIN)/python scripts/demo.py

test: venv sdk-venv sdk3-venv docker sklearn-image transformers-image multi-model-image fixtures registry ## lint, type-check and run every test (Docker ones included)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory wheel-check
	$(BIN)/pytest -q

lint: venv ## ruff, mypy --strict and import-linter (the dependency direction)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy benchmarks/*.py
	$(BIN)/lint-imports

wheel-check: venv ## build the wheel, install it in a fresh venv, run every command and import there
	@bash scripts/check-wheel.sh

unit: venv ## the fast tests only (no Docker)
	$(BIN)/pytest -q tests/unit

venv: $(STAMP) ## .venv with pinned dependencies and smlocal itself
$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "smlocal needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

sdk-venv: $(SDK_STAMP) ## .venv-sdk: the SageMaker Python SDK v2 in its own venv, for its e2e test
$(SDK_STAMP): requirements-sdk.lock
	test -x .venv-sdk/bin/python || $(PYTHON) -m venv .venv-sdk
	.venv-sdk/bin/pip install -q -r requirements-sdk.lock
	touch $@

sdk3-venv: $(SDK3_STAMP) ## .venv-sdk3: the SageMaker Python SDK v3 in its own venv, for its e2e test
$(SDK3_STAMP): requirements-sdk3.lock
	test -x .venv-sdk3/bin/python || $(PYTHON) -m venv .venv-sdk3
	.venv-sdk3/bin/pip install -q -r requirements-sdk3.lock
	touch $@

docker: ## a running Docker engine (installs Debian's docker.io when absent)
	@bash scripts/ensure-docker.sh

base-image: docker ## python:3.11-slim, or a local stand-in when no registry answers
	@bash scripts/ensure-base-image.sh

$(SKLEARN_MODEL): venv containers/sklearn/train.py
	$(BIN)/python containers/sklearn/train.py --out $(SKLEARN_MODEL)

sklearn-image: base-image $(SKLEARN_MODEL) ## the reference image smlocal/sklearn-iris:latest
	@bash scripts/build-image.sh containers/sklearn $(SKLEARN_IMAGE)

$(TRANSFORMERS_MODEL): venv containers/transformers/train.py
	$(BIN)/python containers/transformers/train.py --out $(TRANSFORMERS_MODEL)

transformers-image: base-image $(TRANSFORMERS_MODEL) ## the reference image smlocal/transformers-text:latest
	@bash scripts/build-image.sh containers/transformers $(TRANSFORMERS_IMAGE)

$(MME_MODELS): venv containers/multi-model/train.py
	$(BIN)/python containers/multi-model/train.py --out $(dir $(MME_MODELS))

multi-model-image: base-image $(MME_MODELS) ## the multi-model reference image smlocal/multi-model-iris:latest and its models
	@bash scripts/build-image.sh containers/multi-model $(MME_IMAGE)

registry: ## a local image registry on 127.0.0.1:5055 (Debian's docker-registry), push target for promote tests
	@bash scripts/ensure-registry.sh

fixtures: base-image ## the deliberately broken fixture images the tests use
	@bash scripts/build-fixtures.sh
