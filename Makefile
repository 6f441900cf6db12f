# policy-crawler: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck eval bench services clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

## demo: serve the bundled sample site on 127.0.0.1 and crawl it into ./data (no servers needed)
demo: $(STAMP)
	$(BIN)/crawler demo

## test: the whole test suite (needs Redis and PostgreSQL on 127.0.0.1; `make services` starts them)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider -n auto --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

## eval: extraction quality and speed on ../shared/extraction-corpus
eval: $(STAMP)
	$(BIN)/python -m crawler.evaluate --check

## bench: crawl throughput vs the extraction limit and a Scrapy peer (quiet machine; not part of `make test`)
bench: $(STAMP)
	bash .ci/services
	$(BIN)/pip install -q -e ".[bench]" && $(BIN)/python -m bench $(BENCH_ARGS)

## services: start Redis and PostgreSQL on 127.0.0.1 if they are down
services:
	bash .ci/services

clean:
	rm -rf $(VENV) data build *.egg-info .pytest_cache .mypy_cache .ruff_cache
