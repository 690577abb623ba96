# BoIR Kit — every set-up step lives here, so a fresh machine needs only `make demo` / `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOK_SRC := $(sort $(wildcard notebooks/[0-9][0-9]_*.py))
NOTEBOOKS := $(NOTEBOOK_SRC:.py=.ipynb)
# timm's hub is unreachable offline: fail fast instead of hanging on it.
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1
export MPLBACKEND := Agg
TABLE ?= 5
BOOK_OUT ?= runs/book/html
DEMO_OUT ?= runs/demo
# make lab: JupyterLab on the kit's root (LAB_IP=0.0.0.0 to reach it from another machine)
LAB_IP ?= 127.0.0.1
LAB_PORT ?= 8888
# no token, or an empty one (`make lab LAB_TOKEN=`, which `ifndef` would let through and which would turn
# authentication off): a random one, printed in the URL below. `override` beats a command-line value.
ifeq ($(strip $(LAB_TOKEN)),)
override LAB_TOKEN := $(shell od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
endif
# nbval executes every notebook with its defaults (kernel started in notebooks/, as JupyterLab does)
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=1200

.PHONY: help install notebooks demo test test-fast nbval lab reproduce bench clean lint book

help:
	@echo "make demo      - set up .venv, generate SynthCrowd, run the main job into $(DEMO_OUT)/"
	@echo "make test      - set up .venv, run ruff (make lint) and every test (notebooks included)"
	@echo "make lab       - set up .venv, build the notebooks, start JupyterLab on the kit and print its URL"
	@echo "make notebooks - build notebooks/NN_topic.ipynb from the committed jupytext .py files"
	@echo "make book      - execute the notebooks and build the book: them and docs/ as static HTML in $(BOOK_OUT)/"
	@echo "make reproduce TABLE=n - reproduce one of the paper's Tables 1-7 (runs, then tables_n.md)"
	@echo "make bench     - print the benchmark figures"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

notebooks/%.ipynb: notebooks/%.py $(STAMP)
	$(VENV)/bin/jupytext --quiet --to ipynb --set-kernel python3 --output $@ $<

notebooks: $(NOTEBOOKS)

demo: $(STAMP) notebooks
	$(PY) -m boir_core demo --out $(DEMO_OUT)

# two pytest-xdist workers (TEST_WORKERS=0: one process); tests/conftest.py's scheduler keeps a test file on one
# worker and the files that execute notebooks together
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadscope)

test: $(STAMP) notebooks lint
	$(PY) -m pytest -q $(XDIST) tests $(NOTEBOOKS) $(NBVAL)

# ruff: lint + import order over the package, tests, benchmarks, tools, data scripts and the notebook sources
lint: $(STAMP)
	$(VENV)/bin/ruff check boir_core tests benchmarks tools data_scripts $(NOTEBOOK_SRC)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" --ignore=tests/notebooks

nbval: $(STAMP) notebooks
	$(PY) -m pytest -q $(NOTEBOOKS) $(NBVAL)

# The kernel is registered inside .venv (python3, this interpreter); kernels get no forced MPLBACKEND.
lab: $(STAMP) notebooks
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
	@echo "JupyterLab for BoIR Kit: open http://$(LAB_IP):$(LAB_PORT)/lab/tree/notebooks?token=$(LAB_TOKEN)"
	@echo "(notebooks/NN_topic.ipynb; or right-click a notebooks/NN_topic.py > Open With > Jupytext Notebook)"
	env -u MPLBACKEND $(VENV)/bin/jupyter lab --no-browser --ServerApp.root_dir=$(CURDIR) \
	  --ServerApp.ip=$(LAB_IP) --ServerApp.port=$(LAB_PORT) --ServerApp.port_retries=0 \
	  --IdentityProvider.token=$(LAB_TOKEN) $(if $(filter 0,$(shell id -u)),--allow-root)

# The book: every notebook executed with its defaults (runs/book/executed/), then one static site with docs/ that
# reads offline (its own MathJax); open $(BOOK_OUT)/index.html. README, "Read it as a book", says how to publish it.
book: $(STAMP)
	$(PY) -m boir_core book --out $(BOOK_OUT)

reproduce: $(STAMP) notebooks
	$(PY) -m boir_core reproduce --table $(TABLE)

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# build/deploy-venv: the torch-free virtual environment tests/deploy/test_deploy_torch_free.py builds once and reuses
clean:
	rm -rf runs/ notebooks/*.ipynb .pytest_cache build/deploy-venv

# Mutation testing (tools/mutation.py): mutmut over decode, targets, losses, the schedule, the train step and
# evaluate, against the fast tests that cover them; prints the survival rate per module and every survivor.
# Not part of `make test` (hours on 2 cores); one group at a time: make mutation GROUPS="losses schedule".
.PHONY: mutation
GROUPS ?=
mutation: $(STAMP)
	$(PY) -m pip install -q -e '.[mutation]'
	nice -n 10 $(PY) tools/mutation.py $(GROUPS)
