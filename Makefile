# tradingd developer entry points. Only python3 (with venv/ensurepip) and make are needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test soak bench lint services clean

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; assert sys.version_info >= (3, 11), sys.version' 2>/dev/null || \
		{ echo "tradingd needs Python 3.11 or newer as '$(PY)' (make PY=python3.12 ...)"; exit 1; }
	@test -x $(BIN)/pip || { \
		rm -rf $(VENV); \
		$(PY) -m venv $(VENV) || { rm -rf $(VENV); \
			echo "could not create $(VENV): on Debian/Ubuntu install the venv module: apt-get install python3-venv"; exit 1; }; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	@mkdir -p .state && test -s .state/admin_token || \
		(umask 077 && $(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))' > .state/admin_token)
	@echo "admin token for the paper demo: .state/admin_token (health.admin_token_file in config.toml);"
	@echo "in another terminal: $(BIN)/tradingd status   (also: halt, resume, flatten, orders, balances; --help)"
	$(BIN)/tradingd run --config config.toml

services:
	@./.ci/services

test: $(STAMP) services
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -q

soak: $(STAMP) services
	CRASH_LOOPS=100 VENUE_CRASH_LOOPS=100 BETWEEN_SNAPSHOT_LIVES=100 FEED_STORM_S=180 $(BIN)/python -m pytest -q tests/test_crash_loop.py tests/test_crash_loop_venue.py tests/test_crash_between_snapshots.py tests/test_binance_feed_limits.py

lint: $(STAMP)
	$(BIN)/ruff check daemon actors adapters tests bench
	$(BIN)/ruff format --check daemon actors adapters tests bench
	$(BIN)/mypy

bench: $(STAMP) services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .state
