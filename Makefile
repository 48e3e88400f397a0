# SOXGov: `make demo` brings up a working demo, `make test` runs the suite. Both start from a fresh clone.
#
# The demo uses the embedded default (SQLite in var/, Celery tasks run eagerly in the web process), so no
# environment is needed. `make test` honours DATABASE_URL (PostgreSQL) and REDIS_URL (real worker test) when
# they are set; extra pytest options go in PYTEST_ARGS, e.g. `make test PYTEST_ARGS="-k evidence -x"`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Rebuilt only when pyproject.toml changes, so `make test` does not reinstall on every run.
INSTALLED := $(VENV)/.installed
# npm ci empties node_modules first, so a stamp inside it disappears exactly when the assets do.
ASSETS := static/node_modules/.installed
DEMO_ADDR ?= 127.0.0.1:8000
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core by default; PYTEST_WORKERS=0 runs in this process. --dist loadgroup
# keeps the tests of each server a session starts (tests/conftest.py, SERVER_GROUPS) on one worker.
PYTEST_WORKERS ?= auto

.PHONY: help demo test install assets migrate seed worker beat lint format clean distclean

help:
	@echo "make demo      install, migrate, seed the demo company and serve http://$(DEMO_ADDR)"
	@echo "make test      install and run the test suite (PYTEST_ARGS=... for extra pytest options)"
	@echo "make worker    Celery worker (needs REDIS_URL)"
	@echo "make beat      Celery beat with the database scheduler (needs REDIS_URL)"
	@echo "make lint      ruff check, ruff format --check, makemigrations --check"
	@echo "make assets    install front-end assets from npm into static/node_modules"
	@echo "make migrate   apply database migrations"
	@echo "make clean     remove caches and build output (keeps .venv, node_modules and var/)"
	@echo "make distclean clean, plus .venv, static/node_modules and var/ (deletes the demo database)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

install: $(INSTALLED)

$(ASSETS): static/package.json static/package-lock.json
	npm --prefix static ci --no-audit --no-fund
	touch $@

assets: $(ASSETS)

# var/ is git-ignored and SQLite will not create the directory its database lives in; WhiteNoise warns at
# start-up while STATIC_ROOT is missing.
var/staticfiles:
	mkdir -p $@

migrate: $(INSTALLED) | var/staticfiles
	$(BIN)/python manage.py migrate

seed: migrate
	$(BIN)/python manage.py seed_demo --address $(DEMO_ADDR)

demo: $(INSTALLED) $(ASSETS) seed
	@echo "Serving the demo at http://$(DEMO_ADDR)/ (DEMO_ADDR=host:port to change it)"
	$(BIN)/python manage.py runserver $(DEMO_ADDR)

test: $(INSTALLED) $(ASSETS) | var/staticfiles
	@echo "Testing on $(if $(DATABASE_URL),the DATABASE_URL database,SQLite (embedded default))$(if $(REDIS_URL), with a real Celery worker (REDIS_URL),; worker end-to-end test skipped: REDIS_URL is not set)"
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

define require_redis
	@if [ -z "$$REDIS_URL" ]; then \
		echo "REDIS_URL is not set. Without a broker Celery tasks run eagerly inside the web process," >&2; \
		echo "so a separate $(1) would have nothing to do. Example: REDIS_URL=redis://127.0.0.1:6379/0 make $(1)" >&2; \
		exit 2; \
	fi
endef

worker: $(INSTALLED) | var/staticfiles
	$(call require_redis,worker)
	$(BIN)/celery -A soxgov worker -l info

beat: $(INSTALLED) | var/staticfiles
	$(call require_redis,beat)
	$(BIN)/celery -A soxgov beat -l info

lint: $(INSTALLED) | var/staticfiles
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	find . -path ./$(VENV) -prune -o -path ./static/node_modules -prune -o \
		-type d -name __pycache__ -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache .hypothesis build *.egg-info var/staticfiles

distclean: clean
	rm -rf $(VENV) static/node_modules var
