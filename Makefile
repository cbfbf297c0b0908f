# powrops — every target bootstraps .venv from nothing.
#
# The venv is built on a Python that the unprivileged PostgreSQL OS user can execute too
# (Debian's /usr/bin/python3 when present), because the server runs `powrops wal push` as
# its archive_command.

SHELL := /bin/bash
PYTHON ?= $(shell for p in /usr/bin/python3.11 /usr/bin/python3 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint lab bench clean venv packages

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "no Python >= 3.11 with venv found; set PYTHON=..." >&2; exit 3; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q lib
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/powrops demo

PY_DIRS := lib tests migrations setup.py $(wildcard benchmarks)

lint: $(STAMP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy

# The suite waits on servers, kernels and browsers more than it computes: two workers, each
# taking whole test files (a module's shared cluster stays in one process). The slowest tests
# are listed at the end, so that a run that grew says where.
TEST_WORKERS ?= 2

# Some tests need Debian's postgresql-15, chromium, prometheus and node-exporter and are skipped
# without them: run as root on Debian, `make test` installs what is missing first (as CI does);
# otherwise it says which are missing.
packages:
	@.ci/debian-packages

test: packages lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=20

# JupyterLab's root is the project, so that the templates (runbooks/), the working copies
# `powrops runbook NAME` writes and the whole report archive (reports/) can all be opened; it
# opens on runbooks/. A kernel runs in its notebook's folder: the project's configuration (or,
# without one, its state and report directories) is passed explicitly as well as found by
# walking up. Jupyter Server refuses root unless told: a clone in /root still opens.
LAB_TARGET = $(if $(wildcard powrops.toml),POWROPS_CONFIG=$(CURDIR)/powrops.toml,POWROPS_STATE_DIR=$(CURDIR)/.powrops POWROPS_REPORTS_DIR=$(CURDIR)/reports)
# A kernel whose notebook was closed is shut down after 30 min idle, and a template opened
# from runbooks/ or notebooks/ is never saved (the options are
# powrops.reports.workcopy.LAB_OPTIONS; a test keeps the two the same).
LAB_CULLING = --MappingKernelManager.cull_idle_timeout=1800 --MappingKernelManager.cull_interval=60 --MappingKernelManager.cull_connected=False
LAB_TEMPLATES = --ContentsManager.pre_save_hook=powrops.reports.workcopy.keep_templates
LAB_ARGS = --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/runbooks $(LAB_CULLING) $(LAB_TEMPLATES) $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,lab]'
	$(LAB_TARGET) POWROPS_PROJECT_ROOT=$(CURDIR) $(BIN)/jupyter lab $(LAB_ARGS)

bench: $(STAMP)
	@for b in $(wildcard benchmarks/bench_*.py); do echo "== $$b"; $(BIN)/python $$b || exit $$?; done

clean:
	-$(BIN)/powrops db stop
	rm -rf $(VENV) .powrops .pytest_cache .mypy_cache .ruff_cache
