# make demo: prepare the bundled faces, train a small net on the CPU, write a grid.
# make test: the fast test suite (make test-all adds the slow tests and the mutation check).
# Both create ./.venv unless a virtual environment is already active.

PYTHON ?= python3
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

ifdef VIRTUAL_ENV
ENV_DIR := $(VIRTUAL_ENV)
else
ENV_DIR := .venv
endif
PY := $(ENV_DIR)/bin/python
STAMP := $(ENV_DIR)/.pggan-installed

.PHONY: install demo test test-all lint bench clean

$(STAMP): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(ENV_DIR)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[test,fast]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q
	$(PY) tools/mutation_check.py

lint: $(STAMP)
	$(ENV_DIR)/bin/ruff check pggan tools tests setup.py

clean:
	rm -rf build *.egg-info .pytest_cache
