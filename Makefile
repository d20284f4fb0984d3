PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench clean

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

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
