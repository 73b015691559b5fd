# make demo: prepare the bundled faces, train a small net on the CPU, write a grid.
# make test: the fast test suite (make test-all adds the slow tests and the mutation check);
# make test-gpu: the same suite on CUDA (PGGAN_TEST_DEVICE=cuda); make gpu-check: tools/gpu_check.py (~8 minutes).
# make explore: the explore page on the demo's run (after make demo), at http://127.0.0.1:8000/.
# All create ./.venv unless a virtual environment is already active.

PYTHON ?= python3
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

ifdef VIRTUAL_ENV
ENV_DIR := $(VIRTUAL_ENV)
else
ENV_DIR := .venv
endif
PY := $(ENV_DIR)/bin/python
STAMP := $(ENV_DIR)/.pggan-installed

.PHONY: install demo explore explore-screenshot test test-gpu test-all gpu-check lint bench clean

$(STAMP): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(ENV_DIR)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[test,fast]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py

explore: $(STAMP)
	@test -d checkpoints/demo || { echo "make explore: no checkpoints/demo yet; run make demo first"; exit 1; }
	$(ENV_DIR)/bin/pggan-explore checkpoints/demo --open

# docs/explore.png, the README's picture: the browser test on the demo's run (after make demo)
explore-screenshot: $(STAMP)
	@test -d checkpoints/demo || { echo "make explore-screenshot: run make demo first"; exit 1; }
	PGGAN_EXPLORE_RUN=checkpoints/demo PGGAN_EXPLORE_SCREENSHOT=docs/explore.png \
		$(PY) -m pytest -q tests/test_explore_browser.py

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-gpu: $(STAMP)
	PGGAN_TEST_DEVICE=cuda $(PY) -m pytest -q -m "not slow"

gpu-check: $(STAMP)
	$(PY) tools/gpu_check.py --json gpu-check.json

test-all: $(STAMP)
	$(PY) -m pytest -q
	$(PY) tools/mutation_check.py

lint: $(STAMP)
	$(ENV_DIR)/bin/ruff check pggan tools tests setup.py

clean:
	rm -rf build *.egg-info .pytest_cache
