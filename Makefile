# The two commands: `make lab` (the course) and `make test` (the tests). Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kd_lab-installed
LAB_ARGS ?=
# JupyterLab refuses to start as root (containers, CI) unless told to.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)
PYTEST_ARGS ?=

.PHONY: setup lab test bench data kernel teacher clean

setup: $(STAMP) data kernel

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

data: $(STAMP)
	$(BIN)/python -m kd_lab data fashion-mnist

kernel: $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name kd_lab --display-name "Python (kd_lab)" >/dev/null

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_ARGS) $(LAB_ARGS)

test: setup
	KD_LAB_QUICK=1 $(BIN)/python -m pytest -q tests --nbval-lax notebooks $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m kd_lab bench

teacher: setup
	$(BIN)/python -m kd_lab teacher

clean:
	rm -rf $(VENV) .pytest_cache
