# Soyang — the two commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export SHARED_DATA ?= ../shared/data

.PHONY: run test lint format install install-dev browser-deps gettext-deps java-deps check-deploy clean-demo messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime-installed $@

install: $(VENV)/.runtime-installed
install-dev: $(VENV)/.dev-installed

## The embedded demo: SQLite portal DB, 10,000-person synthetic DuckDB warehouse, a real Celery worker.
run: install messages
	bash scripts/run_demo.sh

## The whole test suite (lint included) on PostgreSQL and Redis (see README for DATABASE_URL and REDIS_URL).
test: install-dev browser-deps gettext-deps java-deps messages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict cohorts/compiler cohorts/expression
	$(BIN)/lint-imports --no-cache
	DJANGO_SETTINGS_MODULE=portal.settings.test $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict cohorts/compiler cohorts/expression
	$(BIN)/lint-imports --no-cache

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Translations: locale/*/LC_MESSAGES/django.po -> .mo with polib (no GNU gettext needed); .mo files are not committed.
messages: install
	$(BIN)/python scripts/compile_messages.py

## GNU gettext (xgettext) for the test that every message the code uses has its Korean translation.
gettext-deps:
	@bash scripts/ensure_gettext.sh

## Chromium for the browser tests comes from the system packages (no browser download at test time).
browser-deps:
	@bash scripts/ensure_browser.sh

## Java 17+ for the real Spark the Spark tests start (warehouse.spark_server), from the system packages.
java-deps:
	@bash scripts/ensure_java.sh

check-deploy: install
	DJANGO_SETTINGS_MODULE=portal.settings.production SECRET_KEY=$${SECRET_KEY:-$$(head -c 60 /dev/urandom | base64 | tr -d '\n')} \
		$(BIN)/python manage.py check --deploy --fail-level WARNING

clean-demo:
	rm -rf var/demo var/portal.sqlite3 var/broker var/log
