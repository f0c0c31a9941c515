# bread: `make run` starts everything, `make test` tests everything. `make help` lists the rest.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
export PATH := $(CURDIR)/$(BIN):$(PATH)

INSTALLED := $(VENV)/.installed
GENERATED := build/bread.pb
PROTOS := $(shell find protos -name '*.proto')

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-14s %s\n", $$1, $$2}'

setup: $(INSTALLED) $(GENERATED) ## create the venv, install dependencies, generate code

$(INSTALLED): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(GENERATED): $(INSTALLED) $(PROTOS) scripts/gen_protos.py scripts/gen_openapi.py
	$(PY) scripts/gen_protos.py

proto: $(INSTALLED) ## regenerate Python code, stubs, Envoy's descriptor set and build/openapi.json
	$(PY) scripts/gen_protos.py

lint: setup ## ruff, mypy, the contract checks, and promtool on the alert rules and their tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy servicekit $(wildcard *_svc) ops harness tests bench examples scripts
	$(MAKE) --no-print-directory contracts
	promtool check rules prometheus/alerts.yml
	promtool test rules prometheus/tests/*.yml

contracts: setup ## buf lint, and buf breaking against main's protos/ (AGAINST=<commit or branch>)
	$(PY) scripts/check_contracts.py $(if $(AGAINST),--against '$(AGAINST)')

# The database layout (ops/profiles.py): default (SQLite) or polyglot. Not PROFILE,
# which every service reads as dev or prod.
DB ?= default

REPLICAS ?= 1

run: setup ## start everything (DB=default|polyglot: SQLite, or PostgreSQL + MariaDB; REPLICAS=2; PROFILE=dev|prod: the services' mode; TRACE_SAMPLE_RATIO=0: no tracing)
	$(PY) -m ops.run --profile $(DB) --replicas $(REPLICAS)

observe: setup ## Prometheus (Debian's) on :9090 scraping `make run`, with the alerts; data in var/
	$(PY) -m ops.observe

rollout: setup ## replace SERVICE's replicas one at a time under `make run`, without downtime
	$(PY) -m ops.rollout $(SERVICE)

ROLE ?= customer
SUB ?= alice

token: setup ## print a development token (ROLE=customer|baker|operator SUB=alice) as the last line
	@$(PY) -m ops.tokens --role $(ROLE) --sub $(SUB)

events: setup ## print domain events as they flow (FROM_START=1 replays the log first)
	$(PY) -m ops.watch_events $(if $(FROM_START),--from-start)

trace: setup ## print ORDER's traces from `make run`'s trace file as span trees with durations
	@$(PY) -m ops.trace $(ORDER)

THRESHOLD ?= 60

stuck: setup ## list orders of a running `make run` (same DB, REPLICAS) waiting over THRESHOLD seconds, with their last event
	@$(PY) -m ops.stuck --profile $(DB) --replicas $(REPLICAS) --threshold $(THRESHOLD)

dlq: setup ## list dead-lettered events of every service with their error (QUEUE_PREFIX=bread)
	$(PY) -m ops.dead_letters list

redrive: setup ## move dead letters back to their queues (all, or ID="<event id> ...")
	$(PY) -m ops.dead_letters redrive $(ID)

rebuild-mypage: setup ## rebuild the Mypage read model from the event log (stop customer first; same DB and REPLICAS as make run)
	DATABASE_URL=$$($(PY) -m ops.run --profile $(DB) --replicas $(REPLICAS) --database-url customer) \
		$(PY) -m customer_svc.rebuild --reset

test: setup ## run the whole test suite (unit, integration, end-to-end, faults, chaos, hostile, resilience, k8s) and lint
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory lint

# No unit test uses hypothesis or anyio; their pytest plugins cost 2 s of a 10 s budget to load.
test-fast: setup ## the unit tests only: every use case on in-memory SQLite with fakes, under 10 s
	$(BIN)/pytest -q -p no:hypothesispytest -p no:anyio tests/unit

clean: ## remove generated code, local data and the venv
	rm -rf $(VENV) bread build var bread.egg-info .pytest_cache .ruff_cache .mypy_cache

.PHONY: help setup proto lint contracts run observe rollout token events trace stuck dlq redrive rebuild-mypage test test-fast clean

include $(wildcard mk/*.mk)
