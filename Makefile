# The two commands: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast venv system-deps docs-deps lint bench clean dashboards lab screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages, installed only when missing and root (apt-get): Pango, HarfBuzz's font subsetter
# and fonts for the invoice PDFs (WeasyPrint), poppler-utils for checking them, a PostgreSQL server
# for the tests.
APT := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
docs-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0 || ! fc-list 2>/dev/null | grep -qi dejavu \
		|| ! ldconfig -p 2>/dev/null | grep -q libharfbuzz-subset || ! command -v pdftotext >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && $(APT) libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
				poppler-utils >/dev/null; \
		else echo "note: install Pango, HarfBuzz's subsetter, DejaVu fonts and poppler-utils for invoice PDFs"; fi; \
	fi

system-deps: docs-deps
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && $(APT) chromium >/dev/null; \
		else echo "note: Debian chromium not found; the dashboard browser tests will be skipped"; fi; \
	fi
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && $(APT) postgresql >/dev/null; \
		else echo "note: PostgreSQL server binaries not found; PostgreSQL tests will be skipped"; fi; \
	fi

demo: $(STAMP) docs-deps
	$(BIN)/workbench demo --fresh

test: $(STAMP) system-deps
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

# The fast lane: the tests not marked slow (see tests/conftest.py), in under a minute
test-fast: $(STAMP) docs-deps
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check workbench tests benchmarks

bench: $(STAMP) system-deps
	$(BIN)/python benchmarks/rating.py
	$(BIN)/python benchmarks/billing.py
	$(BIN)/python benchmarks/pdfs.py
	$(BIN)/python benchmarks/pdfs.py --fonttools --naive 100
	$(BIN)/python benchmarks/month.py

clean:
	rm -rf $(VENV) var .pytest_cache

# The reviewers' dashboards (Voila, sources hidden) on http://127.0.0.1:8866/ (DASHBOARDS_IP=0.0.0.0 for
# every interface): each reviewer logs in with the name and password `workbench add-reviewer NAME` gave
DASHBOARDS_IP ?= 127.0.0.1
DASHBOARDS_PORT ?= 8866
LOGIN := --Voila.identity_provider_class=workbench.ui.login.ReviewerIdentityProvider \
	--VoilaConfiguration.multi_kernel_manager_class=workbench.ui.login.ReviewerKernelManager
dashboards: $(STAMP)
	$(BIN)/voila notebooks/dashboards/ --port $(DASHBOARDS_PORT) --no-browser --Voila.ip=$(DASHBOARDS_IP) $(LOGIN)

# JupyterLab for the analysts, with the same logins
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ --no-browser --ServerApp.ip=$(DASHBOARDS_IP) \
		--ServerApp.identity_provider_class=workbench.ui.login.ReviewerIdentityProvider \
		--ServerApp.kernel_manager_class=workbench.ui.login.ReviewerKernelManager
# The README's dashboard screenshots (docs/dashboard-*.png), on a generated operator through the demo
screenshots: $(STAMP) system-deps
	$(BIN)/python docs/screenshots.py --out docs
