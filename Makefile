# Two commands do everything on a fresh machine:
#   make quickstart   offline demo: GANomaly on scikit-learn's digits, writes runs/quickstart
#   make test         ruff + the test suite (real data from $GANAD_DATA_DIR, default ../shared/datasets)
# Both create .venv and install ganad into it first if needed.

VENV ?= .venv
PY := $(VENV)/bin/python
# torch first: this pins the CPU wheel here; on a GPU machine install your CUDA build of torch first
TORCH ?= torch==2.13.0
# elsewhere PyPI's torch is a multi-GB CUDA build: make quickstart TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
export GANAD_DATA_DIR ?= $(abspath ../shared/datasets)

.PHONY: quickstart test lint install bench clean

# the quick start installs only what it runs (torch + ganad's core); the tests add the dev extras
# (pytest, ruff, hypothesis, Ray, PyOD, pandas), which would more than double the quick start's venv
$(VENV)/.core: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed: $(VENV)/.core
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

quickstart: $(VENV)/.core
	$(VENV)/bin/ganad train --config configs/quickstart.yaml --out runs/quickstart --overwrite

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks

test: lint
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
