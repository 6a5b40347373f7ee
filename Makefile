# The two commands of the README: `make demo` (the main job) and `make test` (the whole test suite).
# Both install what they need: a virtualenv in .venv with radlake and its pinned dependencies
# (pip caches under ~/.cache/pip); the stack's components are fetched by radlake itself into
# ~/.cache/radlake on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test unit down status bench bench-quick clean-state

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "radlake needs Python >= 3.11 (python3 is %d.%d)" % sys.version_info[:2])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e ".[dev,bench,gpu]"
	touch $(STAMP)

install: $(STAMP)

# The browser tests drive Debian's chromium (playwright never downloads its own browser here). Installed when
# missing and this user may (root); elsewhere those tests say what to install.
BROWSER := $(VENV)/.browser
$(BROWSER): $(STAMP)
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null) \
	      || echo "note: chromium could not be installed: the browser tests will say so"; \
	  else echo "note: the browser tests need Debian's chromium (apt-get install chromium)"; fi; \
	fi
	touch $(BROWSER)

## The main job: stack up, then the end-to-end run with a printed summary.
demo: install
	$(VENV)/bin/radlake stack up
	$(VENV)/bin/radlake schemas register
	$(VENV)/bin/radlake demo

## Every test: unit tests and integration tests against the real stack (started by the fixtures).
test: install $(BROWSER)
	$(PY) -m pytest tests $(PYTEST_ARGS)

## Unit tests only (no stack).
unit: install
	$(PY) -m pytest tests -m "not integration" $(PYTEST_ARGS)

down: install
	$(VENV)/bin/radlake stack down

status: install
	$(VENV)/bin/radlake stack status

## Every benchmark at full size, one after another; a table of ratios vs goals at the end (docs/benchmarks.md).
bench: install
	$(PY) bench/run_all.py

## The same at small sizes (about 10 minutes on 2 cores).
.PHONY: bench-quick
bench-quick: install
	$(PY) bench/run_all.py --quick

## Stop the stack and delete its state (Kafka logs, lake, object store, Vault data, logs) under .radlake/.
clean-state: install
	$(VENV)/bin/radlake stack down
	rm -rf .radlake

