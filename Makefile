# Tierline. `make run` starts the demo, `make test` runs the suite. Needs Python 3.12+.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

# The first Python 3.12+ found: python3.13, python3.12 (pyenv shims that point elsewhere fail the
# check and are skipped), pyenv's own versions, then plain python3.
PYTHON ?= $(shell for c in python3.13 python3.12 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV) python3; do \
	"$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { command -v "$$c"; break; }; done)

.PHONY: run test lint typecheck check install install-dev migrate demo clean bench-reports bench-realtime bench-realtime-quick bench-idle bench-escalation

# What running Tierline needs (requirements.txt): all `make run` installs.
$(VENV)/.installed: requirements.txt
	@test -n "$(PYTHON)" || { echo "Tierline needs Python 3.12 or newer; none found (set PYTHON=...)." >&2; exit 1; }
	@echo "Using $(PYTHON) ($$($(PYTHON) --version))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing what Tierline needs to run into $(VENV) (requirements.txt; only when it changes)"
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	touch $@

# Tests, linters, type stubs and benchmark tools on top (requirements-dev.txt). Its own stamp, so
# a development target after `make run` installs this part too.
$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	@echo "Installing the development tools into $(VENV) (requirements-dev.txt; only when it changes)"
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

migrate: install
	@echo "Migrating the database and collecting static files"
	@$(PY) manage.py migrate --noinput --verbosity 0
	@$(PY) manage.py collectstatic --noinput --verbosity 0

demo: migrate
	@$(PY) manage.py load_demo

run: demo
	@echo
	@echo "Tierline is starting on http://$(HOST):$(PORT)/"
	@echo "  Visitor chat:   http://$(HOST):$(PORT)/chat/"
	@echo "  Agent console:  http://$(HOST):$(PORT)/console/"
	@echo "  Left messages:  http://$(HOST):$(PORT)/console/messages/"
	@echo "  Reports:        http://$(HOST):$(PORT)/reports/"
	@echo "  Live view:      http://$(HOST):$(PORT)/reports/live/"
	@echo "  Admin:          http://$(HOST):$(PORT)/admin/"
	@echo "  Log in:         http://$(HOST):$(PORT)/accounts/login/"
	@echo "  REST API:       http://$(HOST):$(PORT)/api/v1/"
	@echo "  API docs:       http://$(HOST):$(PORT)/api/docs/"
	@echo "  API schema:     http://$(HOST):$(PORT)/api/schema/"
	@echo "  Health check:   http://$(HOST):$(PORT)/healthz"
	@echo "  Chat widget:    http://$(HOST):$(PORT)/widget.js (embedding it: docs/widget.md)"
	@echo "  Websockets:     ws://$(HOST):$(PORT)/ws/chat/<id>/, /ws/console/ and /ws/live/"
	@if [ -n "$$REDIS_URL" ]; then \
		echo "Services mode: daphne, Celery worker and beat (honcho, Procfile)"; \
		BIND=$(HOST) PORT=$(PORT) $(VENV)/bin/honcho start -f Procfile; \
	else \
		echo "Embedded mode: SQLite, in-memory channel layer, in-process Celery"; \
		$(PY) manage.py serve --bind $(HOST) --port $(PORT); \
	fi

test: install-dev
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install-dev
	$(VENV)/bin/mypy .

check: lint typecheck
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Fills a separate PostgreSQL database with 1,000,000 chats and times every report (docs/performance.md).
bench-reports: install-dev
	DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tierline_bench} \
		$(PY) bench/reports.py --chats $${BENCH_CHATS:-1000000}

# Realtime: Tierline vs a bare websockets relay and a bare Channels relay (docs/performance.md).
bench-realtime: install-dev
	$(PY) -m bench.realtime $(BENCH_ARGS)

bench-realtime-quick: install-dev
	$(PY) -m bench.realtime --quick $(BENCH_ARGS)

# What idle sockets cost: 10,000 open visitor sockets held 60 s with their keep-alives.
bench-idle: install-dev
	$(PY) -m bench.idle $(BENCH_ARGS)

# Escalations under the 2,000-chat load, and wait-timeout precision for 1,000 timers.
bench-escalation: install-dev
	$(PY) -m bench.escalation $(BENCH_ARGS)
