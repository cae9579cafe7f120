# The two commands of the README: `make book` and `make test`. Both set up .venv themselves.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= default
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

.PHONY: book test run setup test-setup clean

$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (lpirc)" >/dev/null
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/lpirc run --profile $(PROFILE)

book: setup
	$(VENV)/bin/lpirc run --profile $(PROFILE)
	$(VENV)/bin/lpirc book --profile $(PROFILE)

test: $(VENV)/.test-installed
	$(PY) -m pytest -ra $(PYTEST_ARGS)

clean:
	rm -rf _build book/executed book/_generated
