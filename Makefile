# blindsr — set-up, tests, demo, benchmarks and folder runs.
#   make test            install into .venv (first time) and run the test suite
#   make demo            install and run the demo on a CC0 photo (prints how close the kernel is)
#   make bench-kernel    KernelGAN speed and accuracy -> docs/BENCHMARKS.md
#   make bench-zssr      ZSSR iteration overhead, run times and PSNR -> docs/BENCHMARKS.md
# PyTorch: TORCH picks the build. The default takes the CPU build this project is developed on;
# on a CUDA machine use e.g. TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126",
# or TORCH=none to keep a torch that is already installed (with VENV_FLAGS=--system-site-packages).

PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= ../shared
DATA ?= $(SHARED)/data/BSD100RK
SCALE ?= 2

.PHONY: install test demo bench-kernel bench-zssr clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	if [ "$(TORCH)" != "none" ]; then $(BIN)/python -m pip install --quiet $(TORCH); fi
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python -m blindsr.demo

bench-kernel: $(STAMP)
	$(BIN)/python benchmarks/kernel.py --data $(DATA)

bench-zssr: $(STAMP)
	$(BIN)/python benchmarks/zssr.py --data $(DATA)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
