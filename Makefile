# The two commands of the README: `make book` and `make test`. Both set up .venv themselves.
# The first of Python 3.11 / 3.12 / 3.13 on PATH; `make PYTHON=/path/to/python ...` overrides.
PYTHON ?= $(firstword $(foreach v,3.11 3.12 3.13,$(shell command -v python$(v) 2>/dev/null)))
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= default
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

.PHONY: book test run setup test-setup clean lab gpu

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "need Python 3.11, 3.12 or 3.13 on PATH (python3.11 ...), or make PYTHON=..."; exit 1; }
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v <= (3, 13) else f"{sys.executable} is Python {v[0]}.{v[1]}; need 3.11-3.13")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (lpirc)" >/dev/null
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

$(VENV)/.lab-installed: $(VENV)/.installed requirements-lab.txt
	$(PY) -m pip install --quiet -r requirements-lab.txt
	touch $@

setup: $(VENV)/.installed

# Open a chapter by hand: set `profile = "smoke"` in its first cell and run all; it makes what it reads.
lab: $(VENV)/.lab-installed
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

# NVIDIA GPUs: TensorFlow's CUDA and cuDNN wheels (several GB) into the same .venv.
gpu: setup
	$(PY) -m pip install --quiet "tensorflow[and-cuda]==2.21.0"

run: setup
	$(VENV)/bin/lpirc run --profile $(PROFILE)

book: setup
	$(VENV)/bin/lpirc run --profile $(PROFILE)
	$(VENV)/bin/lpirc book --profile $(PROFILE)

test: $(VENV)/.test-installed
	tools/ensure-chromium
	$(PY) -m pytest -ra --durations=25 $(PYTEST_ARGS)

clean:
	rm -rf _build book/executed book/_generated
