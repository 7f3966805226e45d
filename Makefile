# tradingd developer entry points. Only python3 and make are needed on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint services clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/tradingd run --config config.toml

services:
	@./.ci/services

test: $(STAMP) services
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check daemon actors adapters tests bench
	$(BIN)/ruff format --check daemon actors adapters tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .state
