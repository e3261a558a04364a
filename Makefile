# Unlearning Workbench: set up, run, test.  Every target creates .venv and installs on first use.
#
#   make run     open the desktop app on the demo project (builds it first)
#   make test    lint, import contracts and the test suite (all but the `slow` tests; under 10 min
#                on 2 cores), offline and offscreen; OMP_NUM_THREADS=2 make test runs it on 2 threads
#   make test-slow  the slow end-to-end science tests (about 4 min on 2 cores); CI runs both
#   make demo    build the demo project headless and print its run
#   make bench   run the benchmarks (reported ratios and rates, not asserted)
#   make package  build the desktop bundle dist/unlearning-workbench/ with PyInstaller (about 30 min
#                on a busy 2-core machine) and check that it starts and runs one job per family
#   make gpu-check  one step of each family's main job on CUDA with real-architecture random-weight
#                models (GPT-2-small LM, SD-1.x UNet, ResNet-18): throughput and peak memory
#
# Torch: on a machine without CUDA we install the CPU wheel torch==2.13.0 first, so that nothing
# pulls a multi-GB CUDA build.  GPU users: `make TORCH_SPEC=torch install` (or install the torch
# build you want into .venv first; an installed torch satisfying torch>=2.4 is kept).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_PROJECT ?= demo-project
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
export HF_HUB_OFFLINE := 1

.PHONY: install run gui demo test test-slow lint bench gpu-check package clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	@if [ -z "$$DISPLAY$$WAYLAND_DISPLAY" ] && [ -z "$$QT_QPA_PLATFORM" ]; then \
	  echo "No display found. Run under a virtual display:  xvfb-run make run"; \
	  echo "or headless (no visible window):  QT_QPA_PLATFORM=offscreen make run"; \
	  exit 2; fi
	$(VENV)/bin/workbench gui --demo --project $(DEMO_PROJECT)

gui: run

demo: $(STAMP)
	$(VENV)/bin/workbench demo --project $(DEMO_PROJECT)
	$(VENV)/bin/workbench show 1 --project $(DEMO_PROJECT) --json

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

OMP_NUM_THREADS ?= 1
export OMP_NUM_THREADS

test: lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not slow"

gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

# the launcher tests start cluster processes (a Ray head, submitit jobs): they run in a pytest
# session of their own (after the other slow tests in one session, the submitit test failed and
# pytest lost its stderr in the Ray test; each passes in a session of its own)
LAUNCHER_TESTS := tests/unit/test_launchers.py tests/unit/test_launchers_ray.py
test-slow: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m slow $(addprefix --ignore=,$(LAUNCHER_TESTS))
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m slow $(LAUNCHER_TESTS)

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) benchmarks/run_all.py

PYINSTALLER_SPEC ?= pyinstaller==6.22.3

package: $(STAMP)
	$(PY) -m pip install -q "$(PYINSTALLER_SPEC)"
	nice -n 10 env PY=$(PY) packaging/build.sh
	QT_QPA_PLATFORM=offscreen $(PY) packaging/check_bundle.py --jobs

clean:
	rm -rf $(VENV) $(DEMO_PROJECT) .pytest_cache .ruff_cache .mypy_cache build dist
