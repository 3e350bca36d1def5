# billstream: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck unit test-kafka bench fuzz chaos drift clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("billstream needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## The main job on the embedded default: broker, worker, Dext and Intacct sandboxes over HTTP.
demo: $(STAMP)
	$(BIN)/billstream demo --ledger intacct --items 120

## Lint, type-check and the unit tiers first (each stops the run when it fails), then the
## tiers that start processes and sockets: contract, integration on the embedded broker, e2e,
## chaos and the broker canary.
test: lint typecheck unit
	$(BIN)/pytest -q tests/contract tests/integration tests/e2e tests/chaos tests/kafka

## ruff (style, and complexity at most 15), the size limits (800 lines a file, 100 a
## function) and the import contracts in pyproject.toml ([tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/check_sizes.py
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

## The unit tiers: no process, socket or install (tests/tiers.py refuses them); seconds.
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit tests/streams

## The broker-backed tests again, on genuine Apache Kafka 4.x fetched from Maven Central.
test-kafka: $(STAMP)
	PYTHON=$(BIN)/python tools/kafka/with-kafka.sh $(BIN)/pytest -q -m broker tests/integration tests/chaos tests/kafka

bench: $(STAMP)
	$(BIN)/python -m tests.bench.run --items $(or $(ITEMS),5000)

## 10,000 hostile items through push (HTTP), the export folder and validation; a table, one
## JSON line, exit 1 when a goal is missed (a 500, a crash, a hang, an item lost).
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run

## 2,000 invoices per ledger through flaky sandboxes, 20 SIGKILLs and a broker restart each;
## lost and doubled must be 0 (KAFKA=genuine for Apache Kafka; CHAOS_ITEMS, CHAOS_KILLS for less).
CHAOS_ITEMS ?= 2000
CHAOS_KILLS ?= 20
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos.run --items $(CHAOS_ITEMS) --kills $(CHAOS_KILLS) \
		$(if $(filter genuine,$(KAFKA)),--genuine,)

## 100,000 generated invoices through validation and the local ledger, 5,000 through each
## sandbox: every bill adds up to its invoice to the minor unit, no float on the way.
drift: $(STAMP)
	$(BIN)/python -m tests.money.run

clean:
	rm -rf .billstream .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
