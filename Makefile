# Set-up and entry points. Each target creates the virtual environment it needs.
#
# The test and demo environment (.venv) is installed from uv.lock: exact versions with their
# hashes, so a clone installs the same packages next year as today. uv itself is pinned with
# its hashes in tools/uv.txt and installed with pip into .venv-uv. Packages are installed with
# their bytecode compiled, as pip does, so that imports are fast even where Python may not
# write bytecode (PYTHONDONTWRITEBYTECODE).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VENV := .venv-uv
UV := $(UV_VENV)/bin/uv
EXTRAS := --extra test --extra examples
MLFLOW2_VENV := .venv-mlflow2
MLFLOW2_STAMP := $(MLFLOW2_VENV)/.installed
BENCH_VENV := benchmarks/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed
export UV_PYTHON_DOWNLOADS := never

.PHONY: demo test lock test-latest test-lowest bench clean

demo: $(STAMP)  ## run the end-to-end example
	$(BIN)/python examples/demo.py

test: $(STAMP) $(MLFLOW2_STAMP)  ## run the test suite
	$(BIN)/python -m pytest

lock: $(UV)  ## refresh uv.lock to the newest releases pyproject.toml allows
	$(UV) lock --upgrade --python $(PYTHON)
	$(UV) pip compile --quiet --upgrade --python-version 3.11 --generate-hashes \
		tests/mlflow2/requirements.in -o tests/mlflow2/requirements.txt

test-latest: $(UV)  ## run the suite on the newest releases, not the lock's
	$(UV) venv --quiet --clear --python $(PYTHON) .venv-latest
	$(UV) pip install --quiet --python .venv-latest/bin/python --refresh --upgrade -e '.[test,examples]'
	.venv-latest/bin/python -m pytest

test-lowest: $(UV)  ## run the suite on the lowest versions pyproject.toml allows
	$(UV) venv --quiet --clear --python $(PYTHON) .venv-lowest
	$(UV) pip install --quiet --python .venv-lowest/bin/python --resolution lowest-direct -e '.[test,examples]'
	.venv-lowest/bin/python -m pytest

BENCHMARKS := tracking server data drift pipeline evaluation serving serving_batch events cli_startup loop

bench: $(BENCH_STAMP)  ## run every benchmark; each writes its results to benchmarks/results/
	for name in $(BENCHMARKS); do $(BENCH_VENV)/bin/python benchmarks/$$name.py || exit 1; done

$(UV): tools/uv.txt
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet --require-hashes -r tools/uv.txt
	touch $(UV)

$(STAMP): pyproject.toml uv.lock $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --locked --compile-bytecode $(EXTRAS) --python $(PYTHON)
	touch $(STAMP)

# The MLflow 2.x client the tests run against loopml server: its own locked environment.
$(MLFLOW2_STAMP): tests/mlflow2/requirements.txt $(UV)
	$(UV) venv --quiet --clear --python $(PYTHON) $(MLFLOW2_VENV)
	$(UV) pip install --quiet --python $(MLFLOW2_VENV)/bin/python --require-hashes \
		-r tests/mlflow2/requirements.txt
	touch $(MLFLOW2_STAMP)

$(BENCH_STAMP): pyproject.toml benchmarks/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . -r benchmarks/requirements.txt
	touch $(BENCH_STAMP)

clean:
	rm -rf $(VENV) $(UV_VENV) $(MLFLOW2_VENV) .venv-latest .venv-lowest $(BENCH_VENV) .pytest_cache .hypothesis
