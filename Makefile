# The two commands: `make lab` (the course) and `make test` (the tests). Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kd_lab-installed
LAB_ARGS ?=
# JupyterLab refuses to start as root (containers, CI) unless told to.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)
PYTEST_ARGS ?=
# The exact tested stack (pyproject.toml names ranges; README, "Versions").
CONSTRAINTS := requirements/constraints.txt
# `make lab CPU=1` (on a fresh clone, or after `make clean`): PyTorch's CPU-only wheels from TORCH_CPU_INDEX,
# an environment of about 1.6 GB instead of 6 GB of CUDA wheels (README, "A laptop without a GPU").
CPU ?=
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: setup browser lab test bench data kernel teacher clean

setup: $(STAMP) data kernel

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(CPU),$(BIN)/python -m pip install -c $(CONSTRAINTS) --index-url $(TORCH_CPU_INDEX) torch torchvision)
	$(BIN)/python -m pip install -c $(CONSTRAINTS) -e ".[dev]"
	touch $@

# --apt: set-up may install the Debian package dataset-fashion-mnist as a last resort (as root, where apt exists),
# as CI on a fresh machine needs; a plain `python -m kd_lab data` never runs apt-get unless asked (README, "Data").
data: $(STAMP)
	$(BIN)/python data_scripts/fetch.py fashion-mnist --apt

kernel: $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name kd_lab --display-name "Python (kd_lab)" >/dev/null

# Chromium for the browser tests (tests/test_browser.py), from the system's packages: installed with apt
# when none is found and the machine has apt and runs as root, else a note says what to install.
CHROMIUM_NAMES := chromium chromium-browser google-chrome google-chrome-stable
browser:
	@if [ -n "$$KD_LAB_CHROMIUM" ] || [ -n "$$(command -v $(CHROMIUM_NAMES) 2>/dev/null)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Chromium for the browser tests: apt-get install chromium"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "WARNING: 'apt-get install chromium' failed: the browser tests will skip (or fail in CI)"; \
	else \
	  echo "NOTE: the browser tests (tests/test_browser.py) need Chromium and none was found: install your"; \
	  echo "      system's chromium package (Debian/Ubuntu: sudo apt-get install chromium) or set"; \
	  echo "      KD_LAB_CHROMIUM=/path/to/chromium. Without it they are skipped."; \
	fi

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_ARGS) $(LAB_ARGS)

test: setup browser
	$(BIN)/ruff check .
	KD_LAB_QUICK=1 $(BIN)/python -m pytest -q tests --nbval-lax notebooks --durations=15 $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m kd_lab bench

teacher: setup
	$(BIN)/python -m kd_lab teacher

# A lesson is notebooks/NN_topic.md (its cells: the source to edit) paired with NN_topic.ipynb (the same cells
# with full-mode outputs); tools/lessons.py says how, and defines the code hash that ties outputs to their code.
# `make lesson N=01` runs lesson 01 in full mode (20-35 min on a 2-core CPU) and writes both files;
# `make lessons-sync` carries prose edits of the .md files (or of lesson N) into the notebooks, outputs kept.
.PHONY: lesson lessons-sync
lesson: setup
	$(BIN)/python tools/lessons.py execute $(N)

lessons-sync: $(STAMP)
	$(BIN)/python tools/lessons.py sync $(N)

clean:
	rm -rf $(VENV) .pytest_cache
