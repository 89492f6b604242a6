# MetaCRM developer commands. `make run` serves the app; `make test` runs lint
# and the whole suite against SQLite and a local PostgreSQL.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Present once `pip install -e '.[test]'` has succeeded for this pyproject.toml.
INSTALLED := $(VENV)/.installed

HOST ?= 127.0.0.1
PORT ?= 8000
ARTIFACTS := test-artifacts

CRM_TEST_PG_URL ?= postgresql+psycopg://crm:crm@127.0.0.1:5432/crm_test
export CRM_TEST_PG_URL

.PHONY: venv install run pg chromium lint test bench clean

venv install: $(INSTALLED)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -e '.[test]'
	touch $@

# migrate creates ./data/crm.db on first use; demo data only goes into a new database.
run: $(INSTALLED)
	mkdir -p data
	$(BIN)/crm migrate
	$(BIN)/crm demo --if-empty
	@echo "Sign in at http://$(HOST):$(PORT)/login (a new database: admin / metacrm-demo, set by crm demo)."
	$(BIN)/crm serve --worker --host $(HOST) --port $(PORT)

pg:
	bash scripts/pg_ensure.sh

# Headless Chromium (Debian package) for the browser tests in tests/browser.
chromium:
	bash scripts/chromium_ensure.sh

# lint-imports checks the import contracts of pyproject.toml (docs/architecture.md); without
# a cache it takes under a second and leaves no .import_linter_cache behind.
lint: $(INSTALLED)
	$(BIN)/ruff check engine tests bench && $(BIN)/mypy && $(BIN)/lint-imports --no-cache

# Two test processes (pytest-xdist): each test has a database of its own, so they share
# nothing but the PostgreSQL server; the demo's tests stay together (xdist_group) so its
# data is built once per database.
test: $(INSTALLED) lint pg chromium
	$(BIN)/pytest -n 2 --dist loadgroup --durations=30 --junitxml=$(ARTIFACTS)/junit.xml

bench: $(INSTALLED) pg
	$(BIN)/python -m bench.run

# Keeps data/: it holds the user's database.
clean:
	rm -rf $(VENV) $(ARTIFACTS) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
