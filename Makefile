PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-browser browser-deps lint format bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tailorcrm init --demo
	$(BIN)/tailorcrm serve --host 127.0.0.1 --port 5000

lint: $(STAMP)
	$(BIN)/ruff format --check tailorcrm tests benchmarks
	$(BIN)/ruff check tailorcrm tests benchmarks
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format tailorcrm tests benchmarks
	$(BIN)/ruff check --fix tailorcrm tests benchmarks

# One worker per core; each worker takes whole test files, so that a file's
# fixtures (a live server, a browser) are set up once.
test: lint
	$(BIN)/pytest -q -n auto --dist loadfile

# The browser tests alone (they also run in `make test`).
test-browser: $(STAMP)
	$(BIN)/pytest -q tests/browser

# Debian's Chromium, which the browser tests drive, and Node.js, which runs the
# rules parity tests (needs root); Playwright's own browser downloads are never
# used.
browser-deps:
	command -v chromium >/dev/null && command -v node >/dev/null || \
		{ apt-get update && apt-get install -y chromium nodejs; }

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
