# Set-up from nothing: `make demo` and `make test` create .venv and install golf into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.golf-installed
# torch is installed first, on its own, so that the right build is chosen:
#  - a machine with an NVIDIA driver gets PyPI's default (CUDA) build;
#  - a CPU machine gets torch==2.13.0, which on the golf dev/CI machines is a CPU wheel already on disk.
# Override either on the command line, e.g. on another CPU box:
#   make TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" TORCH_SPEC=torch
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
ifeq ($(HAS_GPU),1)
TORCH_SPEC ?= torch>=2.5
else
TORCH_SPEC ?= torch==2.13.0
endif
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install demo test test-fast clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[dev,sweeps]"
	touch $(STAMP)

# conf/experiment/demo.yaml: 300 steps (no wall-clock cap), int8 + zlib, score-first TTT, the audit; about 6 minutes
# on a quiet 2-core machine, the same val_bpb on a busy one
demo: $(STAMP)
	$(PY) -m golf.data prepare
	$(PY) -m golf.train experiment=demo

test: $(STAMP)
	WANDB_MODE=disabled $(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	WANDB_MODE=disabled $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) outputs .pytest_cache
