# fusemax developer entry points. Everything runs in .venv (made by scripts/setup.sh).
#   make setup      create/refresh .venv, install Debian headers for FST waves (as root)
#   make test       fast tier: unit + Verilator tests, 2 pytest workers
#   make test-all   also the tests marked slow (--runslow)
#   make demo       run scripts/demo.py
#   make bench      the FuseMax binding per preset vs the models and the +Architecture baseline
#                   (scripts/bench.py; builds Verilator models up to large: takes a while)
#   make clean      remove build/ and .venv/
# Extra pytest arguments: make test PYTEST_ARGS='-k runner -x'

SHELL        := /bin/bash
PYTHON       := .venv/bin/python
STAMP        := .venv/.fusemax-setup-stamp
PYTEST_JOBS  ?= 2
PYTEST_ARGS  ?=
PYTEST       := $(PYTHON) -m pytest -q -n $(PYTEST_JOBS) --dist worksteal $(PYTEST_ARGS)

.PHONY: setup test test-all demo bench clean

setup:
	@bash scripts/setup.sh

# The stamp is (re)written by setup.sh, so targets below rerun setup only when
# pyproject.toml or setup.sh changed, or .venv is gone.
$(STAMP): pyproject.toml scripts/setup.sh
	@bash scripts/setup.sh

test: $(STAMP)
	$(PYTEST)

test-all: $(STAMP)
	$(PYTEST) --runslow

demo: $(STAMP)
	$(PYTHON) scripts/demo.py

BENCH_ARGS ?=
bench: $(STAMP)
	$(PYTHON) scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf build .venv
