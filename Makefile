# Set-up and entry points. Each target creates the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_VENV := benchmarks/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: demo test bench clean

demo: $(STAMP)  ## run the end-to-end example
	$(BIN)/python examples/demo.py

test: $(STAMP)  ## run the test suite
	$(BIN)/python -m pytest

bench: $(BENCH_STAMP)  ## run the benchmarks against the tools users would pick instead
	$(BENCH_VENV)/bin/python benchmarks/tracking.py
	$(BENCH_VENV)/bin/python benchmarks/data.py
	$(BENCH_VENV)/bin/python benchmarks/drift.py
	$(BENCH_VENV)/bin/python benchmarks/pipeline.py
	$(BENCH_VENV)/bin/python benchmarks/evaluation.py
	$(BENCH_VENV)/bin/python benchmarks/serving.py
	$(BENCH_VENV)/bin/python benchmarks/serving_batch.py

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,examples]'
	touch $(STAMP)

$(BENCH_STAMP): pyproject.toml benchmarks/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . -r benchmarks/requirements.txt
	touch $(BENCH_STAMP)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .hypothesis
