# pcfilter: `make book` builds the Jupyter Book, `make test` runs every check.
# Both set everything up first: Debian packages (as root, with apt-get), a virtual environment in
# .venv, and the project with its extras (reinstalled only when pyproject.toml changes).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pcfilter-installed

# Open3D links libusb, libGL, libEGL and libgomp; the browser test drives Debian's Chromium, with
# the monospace font the book's code cells name (without one, code falls back to a wider sans font).
OPEN3D_DEBS := libusb-1.0-0 libgl1 libegl1 libgomp1
BROWSER_DEBS := chromium fonts-dejavu-core

.PHONY: help book test setup clean

help:
	@echo "make book   set up, say which chapters the build executes and how long that took when measured,"
	@echo "            build the book (unchanged chapters come from the execution cache), print its index.html"
	@echo "make test   set up, then run the notebook (nbval) tests, the unit tests and the browser test"
	@echo "            of the book built from the notebooks' outputs in two processes (TEST_WORKERS=N for N),"
	@echo "            all in fast mode"
	@echo "make clean  remove the book build and caches (keeps .venv and data/)"

book: setup
	@$(BIN)/python book/_ext/execution.py
	$(BIN)/jupyter-book build book/
	@echo "Open the book: $(CURDIR)/_build/html/index.html"

# The notebooks, the unit tests and the browser test share TEST_WORKERS worker processes, one notebook
# or test file each at a time, in the order conftest.py gives: the notebooks first, then the unit tests
# with the browser test half-way, which builds the book from the notebooks' outputs. The run is bound
# by CPU: on two cores, three workers took as long as two (20.4 against 20.0 minutes on a fresh clone)
# with more CPU time (36.7 against 34.7 minutes).
TEST_WORKERS ?= 2
test: setup
	@$(call ensure_debs,$(BROWSER_DEBS))
	PCFILTER_FAST=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder book tests

setup: $(STAMP)
	@$(call ensure_debs,$(OPEN3D_DEBS))

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
	  { echo "pcfilter needs Python >= 3.11; found '$(PYTHON)'. Run: make PYTHON=/path/to/python3.11 ..." >&2; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { $(call ensure_debs,python3-venv); }
	$(PYTHON) -m venv $(VENV)

# uv resolves the same releases as pip but downloads, unpacks and compiles in parallel: a fresh
# install takes about 35 s instead of 80 on two cores. Modules are compiled at install time, as pip
# does, so that no process compiles TensorFlow again where PYTHONDONTWRITEBYTECODE is set, and uv
# trusts the system's certificates, as pip does. Where uv cannot be had or fails, pip installs everything.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "Installing pcfilter and its dependencies into $(VENV) (a minute or more the first time)"
	$(BIN)/python -m pip install --quiet uv && UV_SYSTEM_CERTS=1 \
	  $(BIN)/python -m uv pip install --quiet --python $(BIN)/python --compile-bytecode --editable '.[book,dev]' || \
	  { echo "uv failed: installing with pip instead" >&2; \
	    $(BIN)/python -m pip install --quiet --upgrade pip && \
	    $(BIN)/python -m pip install --quiet --editable '.[book,dev]'; }
	@touch $@

clean:
	rm -rf _build .pytest_cache .hypothesis .ruff_cache

# Install the Debian packages in $(1) that are missing: with apt-get when running as root,
# otherwise stop with a one-line message saying what to install.
define ensure_debs
if ! command -v dpkg-query >/dev/null; then \
  echo "note: not a Debian system; make sure these (or your system's equivalents) are installed: $(1)"; \
else \
  missing=""; \
  for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
  if [ -n "$$missing" ]; then \
    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
      echo "Installing Debian packages:$$missing"; \
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
    else \
      echo "Missing Debian packages:$$missing. Install them with: sudo apt-get install$$missing" >&2; exit 1; \
    fi; \
  fi; \
fi
endef
