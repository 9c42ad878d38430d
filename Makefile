# Two commands on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install openapi clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Initialise the embedded default (SQLite + local keyring in ./tresor-data) and serve.
run: $(STAMP)
	$(BIN)/tresor init --if-missing
	$(BIN)/tresor serve

## Check the import contracts (pyproject.toml, docs/architecture.md), then run the whole test
## suite (SQLite always; PostgreSQL when reachable, required under CI=true).
test: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Regenerate the committed OpenAPI document.
openapi: $(STAMP)
	$(BIN)/tresor openapi > openapi/openapi.json

clean:
	rm -rf $(VENV) .pytest_cache
