# Two commands: `make run` (the whole stack) and `make test` (every test).
# Each installs what it needs on the first run and skips it on the next.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
WEB_STAMP := web/node_modules/.installed
WEB_BUILD := web/dist/index.html
WEB_SOURCES := $(shell find web/src web/index.html web/vite.config.ts web/tsconfig.json -type f 2>/dev/null)
# npm ci rewrites this file, so it is the install's own stamp.
BENCH_NODE := bench/node/node_modules/.package-lock.json

.PHONY: run test test-python test-web deps system web bench bench-node lint clean deploy-test

run: deps system web
	$(BIN)/tickwire up

test: deps web bench-node
	tools/ensure-system.sh redis-server chromium nginx prometheus
	cd web && npm test --silent
	$(BIN)/pytest

bench: deps system bench-node
	$(BIN)/tickwire bench

# The bench's Node.js load client: the npm package ws at the version its lock pins.
bench-node: $(BENCH_NODE)

$(BENCH_NODE): bench/node/package.json bench/node/package-lock.json
	cd bench/node && npm ci --no-audit --no-fund

deps: $(PY_STAMP)

# The client SDK is its own distribution (clients/python); the tests import it from there.
$(PY_STAMP): pyproject.toml clients/python/pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip install -q --no-deps -e clients/python
	touch $@

system:
	tools/ensure-system.sh redis-server

web: $(WEB_BUILD)

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

$(WEB_BUILD): $(WEB_STAMP) $(WEB_SOURCES)
	cd web && npm run build

lint: deps
	$(BIN)/ruff check services ingest gateway tickwire bench clients tests web/scripts
	$(BIN)/mypy
	$(BIN)/mypy --strict web/scripts/measure_dashboard.py

clean:
	rm -rf $(VENV) web/node_modules web/dist bench/node/node_modules .tickwire

deploy-test: deps web
	$(BIN)/pytest tests/deploy
