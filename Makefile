# The two commands: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv system-deps lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests use (a PostgreSQL server); installed only when missing and root.
system-deps:
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
		else echo "note: PostgreSQL server binaries not found; PostgreSQL tests will be skipped"; fi; \
	fi

demo: $(STAMP)
	$(BIN)/workbench demo --fresh

test: $(STAMP) system-deps
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check workbench tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/rating.py
	$(BIN)/python benchmarks/billing.py
	$(BIN)/python benchmarks/pdfs.py

clean:
	rm -rf $(VENV) var .pytest_cache
