# Two commands on a fresh machine:  `make demo`  and  `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch==2.13.0 resolves to the local CPU wheel on these machines; a bare `torch` would pull CUDA.
TORCH_SPEC ?= torch==2.13.0
# What `make test` adds to the venv: Ray (the distributed backend's test) and pyarrow (parquet export).
TEST_EXTRAS ?= dev,ray,parquet

.PHONY: venv demo test test-ray test-all lint bench results clean

$(BIN)/adamlab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/adamlab

# The test extras, installed after torch so that pip keeps the CPU wheel (torch stays $(TORCH_SPEC)).
$(VENV)/.test-extras: $(BIN)/adamlab
	$(BIN)/pip install -q "$(TORCH_SPEC)" -e ".[$(TEST_EXTRAS)]"
	touch $@

venv: $(BIN)/adamlab

demo: venv
	$(BIN)/adamlab demo

# The default suite, then the local-Ray sweep (slow-marked; ADAMLAB_REQUIRE_RAY makes a skip a failure).
test: $(VENV)/.test-extras
	$(BIN)/python -m pytest
	ADAMLAB_REQUIRE_RAY=1 $(BIN)/python -m pytest -m slow tests/scale/test_ray.py

test-ray: $(VENV)/.test-extras
	ADAMLAB_REQUIRE_RAY=1 $(BIN)/python -m pytest -m slow tests/scale/test_ray.py

test-all: $(VENV)/.test-extras
	$(BIN)/python -m pytest -m "slow or not slow"

# Every recipe of scripts/regenerate_results.DEFAULT_PLAN under its protocol (DeepOBS at the paper's budget
# for noisy-quadratic, wilson, adam-mnist-logreg; the cpu protocol for the other data recipes); rewrites
# their marked sections of docs/results.md (needs the data under $$ADAMLAB_DATA). Resumes from the stores
# in results/. RESULTS_ARGS="--recipes wilson" for one.
# One torch thread by default: the batched runs of these small problems were 12x slower with two
# threads on a 2-core machine with one other busy process (override with OMP_NUM_THREADS=2).
results: venv
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m scripts.regenerate_results $(RESULTS_ARGS)

lint: venv
	$(BIN)/ruff check src tests scripts benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
