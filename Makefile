# Two commands for a fresh machine (see README):
#   make quick   set up .venv, then run the quick profile (offline, real MNIST) on 2 cores
#   make test    set up .venv, then run the test suite (make test-slow: the end-to-end tests)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= 2

.PHONY: setup quick paper test test-slow test-all lint report docs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: pip takes this build from the local wheel cache where one exists.
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

quick: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/quick.yaml

paper: setup
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1

report: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/quick.yaml --report results/report.html

lint: setup
	bash .ci/lint

# the suite without the end-to-end tests marked slow (those: make test-slow; CI runs both)
test: setup
	$(BIN)/pytest -q -m "not slow"

# the end-to-end tests: the shared tiny workflow run, the .test catalog run, SLURM, the browser
test-slow: setup
	$(BIN)/pytest -q -m slow

test-all: setup
	$(BIN)/pytest -q

# regenerate docs/configuration.md from the schema (tests/test_config_reference.py checks it)
docs: setup
	$(BIN)/python -m sgdvi.config_reference > docs/configuration.md
