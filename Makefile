# Two commands: `make test` and `make demo`. Both find a Python >= 3.12 and build .venv themselves.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo bench compat clean venv sdk-matrix

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/find-python
	@interp="$$(scripts/find-python)" || exit 1; \
	 if [ ! -x "$(PY)" ]; then echo "creating $(VENV) with $$interp"; "$$interp" -m venv "$(VENV)"; fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[cli,dev]'
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy dify_lambda

# Workers for pytest-xdist. Most tests wait on subprocesses, sockets, moto and pip rather than
# the CPU, so twice the cores of a 2-core machine finish first (docs/contributing.md has the figures).
WORKERS ?= 4

# Coverage includes the subprocesses the tests start (pyproject [tool.coverage.run]); it prints the
# total against fail_under and writes the report to .cache/coverage/html.
pytest: $(STAMP)
	$(PY) -m pytest -n $(WORKERS) --dist loadgroup --cov --cov-report=html $(PYTEST_ARGS)

test: lint typecheck pytest

# Conformance on every supported dify_plugin minor (make test runs a subset); venvs cached in .cache/sdk-matrix.
sdk-matrix: $(STAMP)
	DIFY_LAMBDA_SDK_MATRIX=all $(PY) -m pytest tests/functional/handlers/test_conformance.py -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) scripts/demo.py

bench: $(STAMP)
	$(PY) bench/run_all.py

# Every model plugin of a dify-official-plugins checkout, compared with its own SDK (not in `make test`).
compat: $(STAMP)
	@test -n "$(OFFICIAL)" || { echo "make compat: set OFFICIAL=<checkout of langgenius/dify-official-plugins>" >&2; exit 2; }
	$(PY) scripts/compat.py --official "$(OFFICIAL)" $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf $(VENV) build dist out .mypy_cache .ruff_cache .pytest_cache .cache/coverage
