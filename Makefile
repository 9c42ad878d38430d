# Two commands on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Message catalogues (gettext, Babel): api/locale/<lang>/LC_MESSAGES/messages.po
LOCALES := api/locale
CATALOGUES := $(wildcard $(LOCALES)/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGUES:.po=.mo)
PYBABEL := PYTHONPATH=. $(BIN)/pybabel

.PHONY: run test install openapi clean schemathesis-100 messages-extract messages-update messages-compile

## The official Python client (clients/python, its own package) is installed beside the
## server: its tests (tests/clients) run against a served Tresor.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e clients/python
	touch $(STAMP)

install: $(STAMP) $(COMPILED)

## Compile each catalogue whose .po changed (the app compiles a stale or missing .mo in memory).
$(LOCALES)/%/LC_MESSAGES/messages.mo: $(LOCALES)/%/LC_MESSAGES/messages.po $(STAMP)
	$(PYBABEL) compile --statistics -d $(LOCALES) -D messages -l $*

messages-compile: $(COMPILED)

## List every message id the code uses in api/locale/messages.pot (templates, _() and
## TEXTS reads, the id families of api/i18n.py; see babel.cfg).
messages-extract: $(STAMP)
	$(PYBABEL) extract -F babel.cfg --no-location --sort-output --omit-header \
		--project Tresor -o $(LOCALES)/messages.pot .

## Add new ids to both catalogues (empty, to translate: the catalogue test fails until then).
messages-update: messages-extract
	$(PYBABEL) update -i $(LOCALES)/messages.pot -d $(LOCALES) -D messages \
		--no-fuzzy-matching --width 100

## Initialise the embedded default (SQLite + local keyring in ./tresor-data) and serve.
run: $(STAMP) $(COMPILED)
	$(BIN)/tresor init --if-missing
	$(BIN)/tresor serve

## Lint (ruff: the rule set in pyproject.toml, and the formatting), type-check (vault/ and
## the client strictly, they ship py.typed; api/ in ordinary mode), check the import
## contracts (pyproject.toml, docs/architecture.md), then run the whole test suite (SQLite always; PostgreSQL when
## reachable, required under CI=true).
LINTED := vault api tests bench migrations setup.py clients/python
test: $(STAMP) $(COMPILED)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy --strict vault
	$(BIN)/mypy --strict clients/python/src
	$(BIN)/mypy api
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Schemathesis with all default checks and 100 examples per operation, every role, both
## databases (the issue-17 bar; the suite runs 30). Takes several minutes.
schemathesis-100: $(STAMP) $(COMPILED)
	TRESOR_ST_EXAMPLES=100 $(BIN)/python -m pytest -q -p no:cacheprovider -rxX \
		tests/api/test_schemathesis.py

## Regenerate the committed OpenAPI document.
openapi: $(STAMP)
	$(BIN)/tresor openapi > openapi/openapi.json

clean:
	rm -rf $(VENV) .pytest_cache $(COMPILED)
