# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DATA   ?= ./data
HOST   ?= 127.0.0.1
PORT   ?= 8080
CHROMIUM ?= /usr/bin/chromium
# Most tests wait on a daemon subprocess; two workers keep both cores busy.
TEST_WORKERS ?= 2

.PHONY: run test install install-test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python $(CHROMIUM)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# The browser tests drive Debian's Chromium (Playwright never downloads one).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends chromium \
		|| { apt-get update -q && apt-get install -y -q --no-install-recommends chromium; }; \
	else \
		echo "the tests need Debian's chromium: sudo apt-get install chromium"; exit 1; \
	fi

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/sferumd serve --data-dir $(DATA) --host $(HOST) --port $(PORT) --demo

test: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	SFERUM_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -n $(TEST_WORKERS)

bench: install-test
	$(BIN)/python -m bench.send --json
	$(BIN)/python -m bench.fanout --json
	$(BIN)/python -m bench.resume --json
	$(BIN)/python -m bench.idle --json
	$(BIN)/python -m bench.roster --json
	$(BIN)/python -m bench.sfu --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
