# Doorstep. `make demo` serves the Cambridge demo; `make test` runs the suite on SQLite and PostgreSQL.
VENV ?= .venv
PY := $(VENV)/bin/python
DOORSTEP := $(VENV)/bin/doorstep
PORT ?= 8000
export DOORSTEP_DATABASE_URL ?= sqlite+aiosqlite:///./doorstep.db
# make test always runs the PostgreSQL leg: an unreachable server fails the run, it never skips.
DOORSTEP_TEST_PG_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

.PHONY: demo test bench openapi lint clean

# What serving needs (make demo); the test and bench extras on top of it (make test, bench, lint).
$(VENV)/.serving: pyproject.toml
	test -x $(PY) || python3 scripts/make_venv.py $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed: $(VENV)/.serving pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.serving
	$(DOORSTEP) init
	$(DOORSTEP) db upgrade
	$(DOORSTEP) demo
	@echo "Serving on http://127.0.0.1:$(PORT) (docs at http://127.0.0.1:$(PORT)/docs)"
	$(DOORSTEP) serve --port $(PORT)

# Two workers: the SQLite leg on one, the PostgreSQL leg on the other (tests/conftest.py groups them).
PYTEST_ARGS ?= -n 2 --dist loadgroup

# tests/test_clients.py's TypeScript generator and compiler, pinned in clients/package-lock.json. Without npm
# (.ci/run installs it) those tests skip, saying so.
clients/node_modules/.package-lock.json: clients/package.json clients/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix clients --no-audit --no-fund --silent; fi

# tests/test_clients.py's Python client generator, in a venv of its own: it pins typer below the CLI's.
GENERATOR := $(VENV)/generator/bin/openapi-python-client
$(GENERATOR): clients/generator.txt | $(VENV)/.serving
	test -x $(VENV)/generator/bin/python || $(PY) scripts/make_venv.py $(VENV)/generator
	$(VENV)/generator/bin/python -m pip install --quiet -r clients/generator.txt
	touch $@

test: $(VENV)/.installed clients/node_modules/.package-lock.json $(GENERATOR)
	DOORSTEP_TEST_PG_URL=$(DOORSTEP_TEST_PG_URL) $(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	DOORSTEP_TEST_PG_URL=$(DOORSTEP_TEST_PG_URL) $(PY) -m bench

openapi: $(VENV)/.serving
	$(PY) -m app.openapi openapi

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check app simulator tests bench alembic

clean:
	rm -rf $(VENV) doorstep.db doorstep.db-wal doorstep.db-shm .doorstep-demo.json bench/out
