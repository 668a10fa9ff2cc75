# hcs-neuro: `make demo` sets everything up and runs the main job; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
FASHION_DIR := /usr/share/datasets/fashion-mnist
JOBS   ?= 2

.PHONY: demo test test-slow test-all install data bench paper paper-quick paper-report paper-estimate docs clean help

help:
	@echo "make demo       set up (.venv, pinned deps, Fashion-MNIST data) and run the main job"
	@echo "make test       run the default test suite (< 15 min on 2 cores)"
	@echo "make test-slow  run the slow tests too"
	@echo "make bench      run the benchmarks in analysis/ (prints numbers, writes JSON)"
	@echo "make paper      rerun every experiment of analysis/REPORT.md (long; see the README)"
	@echo "make paper-quick  the same in a reduced smoke-test mode"
	@echo "make paper-report  analysis/REPORT.md from the committed records (no training)"
	@echo "make paper-estimate  measure this machine and print the study's run time"
	@echo "make docs       build the guides, studies and API reference (HTML in docs/_build/html)"

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -c constraints.txt -e ".[all]"
	touch $(STAMP)

# Debian's dataset-fashion-mnist installs the IDX files under $(FASHION_DIR).
# Where apt-get is not available (or we are not root) this is skipped with a note.
data:
	@if [ -f $(FASHION_DIR)/t10k-labels-idx1-ubyte.gz ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian package dataset-fashion-mnist"; \
	  (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null)) ; \
	else echo "note: apt-get not available; Fashion-MNIST must come from --data-dir or HCS_NEURO_DATA"; fi

demo: install data
	$(VENV)/bin/hcs-neuro demo --overwrite

test: install data
	$(PY) -m pytest -q

test-slow: install data
	$(PY) -m pytest -q -m "slow"

test-all: install data
	$(PY) -m pytest -q -m ""

# Benchmarks print numbers and write JSON under results/bench/ (not timed tests).
BENCH_OUT ?= results/bench
bench: install data
	mkdir -p $(BENCH_OUT)
	$(PY) analysis/bench/bench_training.py --json $(BENCH_OUT)/training.json
	$(PY) analysis/bench/bench_kwta.py --json $(BENCH_OUT)/kwta.json
	$(PY) analysis/bench/bench_circuit_speed.py --out $(BENCH_OUT)/circuit_speed.json
	$(PY) analysis/bench/bench_network.py --json $(BENCH_OUT)/network_digits.json
	$(PY) analysis/bench/bench_sweep.py --json $(BENCH_OUT)/sweep.json

# The claims study runs on the sweep engine (specs in analysis/paper/specs/, one record per point x
# seed under analysis/paper/records/, committed): `make paper` computes only the missing points
# (long: see analysis/REPORT.md, Progress), then rewrites analysis/REPORT.md and analysis/figures/.
PAPER_WORKERS ?= 1
paper: install data
	$(PY) analysis/paper/make_paper.py --workers $(PAPER_WORKERS)

# CI smoke test (about a minute on 2 idle cores): reduced specs into output/paper-quick/.
paper-quick: install data
	rm -rf output/paper-quick
	$(PY) analysis/paper/make_paper.py --quick --no-progress

# The report from the committed records only (no training), and the run-time estimate.
paper-report: install
	$(PY) analysis/paper/make_paper.py --report-only

paper-estimate: install data
	$(PY) analysis/paper/make_paper.py --estimate

# The user guides, the research record and the API reference (Sphinx + MyST; warnings are
# errors). autosummary regenerates docs/api/generated/ from the docstrings on every build.
docs: install
	@$(PY) -c "import sphinx, myst_parser" 2>/dev/null || $(PIP) install -q -c constraints.txt -e ".[docs]"
	rm -rf docs/api/generated
	MPLBACKEND=Agg $(PY) -m sphinx -b html -W --keep-going -q docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis docs/_build docs/api/generated
