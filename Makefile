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

.PHONY: run test lint typecheck check install migrate demo clean bench-reports bench-realtime bench-realtime-quick bench-escalation

$(VENV)/.installed: requirements.txt
	@test -n "$(PYTHON)" || { echo "Tierline needs Python 3.12 or newer; none found (set PYTHON=...)." >&2; exit 1; }
	@echo "Using $(PYTHON) ($$($(PYTHON) --version))"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0

demo: migrate
	$(PY) manage.py load_demo

run: demo
	@echo
	@echo "Tierline is starting on http://$(HOST):$(PORT)/"
	@echo "  Visitor chat:  http://$(HOST):$(PORT)/chat/"
	@echo "  Agent console: http://$(HOST):$(PORT)/console/"
	@echo "  Reports:       http://$(HOST):$(PORT)/reports/"
	@echo "  Admin:         http://$(HOST):$(PORT)/admin/"
	@if [ -n "$$REDIS_URL" ]; then \
		echo "Services mode: daphne, Celery worker and beat (honcho, Procfile)"; \
		BIND=$(HOST) PORT=$(PORT) $(VENV)/bin/honcho start -f Procfile; \
	else \
		echo "Embedded mode: SQLite, in-memory channel layer, in-process Celery"; \
		$(PY) manage.py serve --bind $(HOST) --port $(PORT); \
	fi

test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy .

check: lint typecheck
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Fills a separate PostgreSQL database with 1,000,000 chats and times every report (README).
bench-reports: install
	DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tierline_bench} \
		$(PY) bench/reports.py --chats $${BENCH_CHATS:-1000000}

# Realtime: Tierline vs a bare websockets relay and a bare Channels relay (README, docs/performance.md).
bench-realtime: install
	$(PY) -m bench.realtime $(BENCH_ARGS)

bench-realtime-quick: install
	$(PY) -m bench.realtime --quick $(BENCH_ARGS)

# Escalations under the 2,000-chat load, and wait-timeout precision for 1,000 timers.
bench-escalation: install
	$(PY) -m bench.escalation $(BENCH_ARGS)
