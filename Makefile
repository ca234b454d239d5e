# Two commands for a fresh machine (see README):
#   make quick   set up .venv, then run the quick profile (offline, real MNIST) on 2 cores
#   make test    set up .venv, then run the test suite (make test-fast: without the slow tests)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= 2

.PHONY: setup quick paper test test-fast lint report docs

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

# on every core (pytest-xdist); tests sharing a build or the SLURM cluster stay on one worker
test: setup
	$(BIN)/pytest -q -n auto --dist loadgroup

# everything but the tests marked slow (the shared tiny workflow run, the browser, SLURM)
test-fast: setup
	$(BIN)/pytest -q -n auto --dist loadgroup -m "not slow"

# regenerate docs/configuration.md from the schema (tests/test_config_reference.py checks it)
docs: setup
	$(BIN)/python -m sgdvi.config_reference > docs/configuration.md
