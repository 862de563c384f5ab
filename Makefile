# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH_VERSION ?= 2.13.0

.PHONY: demo test test-all setup bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned, so that no open range pulls the CUDA build on a CPU machine.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet torch==$(TORCH_VERSION)
	$(PIP) install --quiet -e ".[test,extras]"
	touch $@

setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/skelssl demo --out demo_out

test: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

test-all: $(VENV)/.installed
	$(PY) -m pytest -q

# The data layer's benchmarks: NTU reading + agcn throughput, store memory, damaged sources, wrong uses. Results go by
# hand into benchmarks/RESULTS.md with the machine and date.
bench: $(VENV)/.installed
	$(PY) benchmarks/prepare_speed.py --files 5000 --baseline-files 1000
	$(PY) benchmarks/store_memory.py --samples 100000 --reads 20000
	$(PY) benchmarks/fault_probe.py
	$(PY) benchmarks/misuse_probe.py

clean:
	rm -rf demo_out .pytest_cache
