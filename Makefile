# simsiam-tfx: `make setup` once, then `make test` / `make run`.
VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
# uv installs the lock's wheels (downloads in parallel) where pip took twice as long on a fresh clone;
# --compile-bytecode as pip does: with PYTHONDONTWRITEBYTECODE set (as here), an uncompiled
# site-packages costs every process about 3x its TensorFlow import (docs/development.md). uv reads
# PIP_INDEX_URL (passed on here) but not pip.conf; where uv fails, pip installs the lock instead.
UV_VERSION  := 0.13.9
DATA_DIR    ?= ../shared/flowers/flower_photos
OUTPUT      ?= runs/latest
PROFILE     ?=
PYTEST_ARGS ?=
# WORKERS=N (or auto): pytest-xdist workers; a module, and all the modules that read the smoke run,
# stay on one worker (tests/conftest.py). Off by default: one parallel run here hung inside a Keras
# fit on TensorFlow (docs/development.md); CI runs the suite in one process.
WORKERS     ?= 0
XDIST       := $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadscope)

.PHONY: setup test test-fast lint run clean help torch-reference jax-check

help:
	@echo "make setup      create .venv (Python 3.10) with the pinned dependencies + this package"
	@echo "make test       make lint + the whole pytest suite (slow end-to-end tests included)"
	@echo "make lint       ruff check, ruff format --check and vulture (dead code)"
	@echo "make test-fast  ruff + pytest without the tests marked slow"
	@echo "make run        the pipeline on $(DATA_DIR) (or TFDS tf_flowers) into $(OUTPUT)"
	@echo "make torch-reference  .venv-torch (Python 3.11 + PyTorch) for benchmarks/torch_reference.py only"
	@echo "make jax-check  tests/models on the GPU pack's Keras 3.15.1 + numpy 2 + JAX (CPU) in .venv-jax (Python 3.11)"

setup: $(STAMP)

# Re-runs only when the lock file or setup.py changed, so a second `make setup` takes seconds.
$(STAMP): requirements.lock setup.py
	@py=$$(scripts/find-python310) || exit 1; \
	if [ ! -x $(PY) ]; then echo "creating $(VENV) with $$py"; $$py -m venv $(VENV) || exit 1; fi
	$(PY) -m pip install --quiet --upgrade "pip==24.3.1"
	$(PY) -m pip install --quiet "uv==$(UV_VERSION)" && $(if $(PIP_INDEX_URL),UV_DEFAULT_INDEX=$(PIP_INDEX_URL)) \
	  $(PY) -m uv pip install --quiet --python $(PY) --no-deps --compile-bytecode -r requirements.lock \
	  || $(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@TF_CPP_MIN_LOG_LEVEL=3 $(PY) -W ignore -c "import tfx, keras; print(f'ready: tfx {tfx.__version__}, keras {keras.__version__}')" 2>/dev/null \
	  || $(PY) -c "import tfx, keras"
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/vulture

test: lint
	$(VENV)/bin/pytest $(XDIST) $(PYTEST_ARGS)

test-fast: lint
	$(VENV)/bin/pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

run: $(STAMP)
	@if [ -d "$(DATA_DIR)" ]; then src="--data-dir $(DATA_DIR)"; else src="--tfds tf_flowers"; fi; \
	$(VENV)/bin/simsiam-tfx run $$src --output $(OUTPUT) $(if $(PROFILE),--profile $(PROFILE),)

clean:
	rm -rf runs .pytest_cache

# Benchmark-only: the PyTorch reference step of `python -m benchmarks.throughput --torch-python ...`.
# Never a runtime dependency. pip takes torch 2.13.0's CPU build from a local wheel where the machine
# has one (this project's machines do); elsewhere it downloads PyPI's (CUDA) build, several GB.
torch-reference: .venv-torch/.installed
.venv-torch/.installed:
	python3.11 -m venv .venv-torch
	.venv-torch/bin/pip install --quiet "torch==2.13.0" numpy pillow
	@touch $@

# Benchmark-only: the Keras that `scripts/gpu-quality` packs, checked on JAX (CPU) with numpy 2 before a GPU run.
jax-check: .venv-jax/.installed
	KERAS_BACKEND=jax PYTHONPATH=$(CURDIR) .venv-jax/bin/pytest -q -p no:cacheprovider -o addopts="" tests/models \
		--ignore tests/models/test_models_backends.py
.venv-jax/.installed:
	python3.11 -m venv .venv-jax
	.venv-jax/bin/pip install --quiet "keras==3.15.1" "jax[cpu]==0.10.2" "numpy>=2" pillow matplotlib pytest
	@touch $@
