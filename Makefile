# Two commands: `make test` and `make demo`. Both find a Python >= 3.12 and build .venv themselves.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo bench compat clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/find-python
	@interp="$$(scripts/find-python)" || exit 1; \
	 if [ ! -x "$(PY)" ]; then echo "creating $(VENV) with $$interp"; "$$interp" -m venv "$(VENV)"; fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy dify_lambda

pytest: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

demo: $(STAMP)
	$(PY) scripts/demo.py

bench: $(STAMP)
	$(PY) bench/run_all.py

# Every model plugin of a dify-official-plugins checkout, compared with its own SDK (not in `make test`).
compat: $(STAMP)
	@test -n "$(OFFICIAL)" || { echo "make compat: set OFFICIAL=<checkout of langgenius/dify-official-plugins>" >&2; exit 2; }
	$(PY) scripts/compat.py --official "$(OFFICIAL)" $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf $(VENV) build dist out .mypy_cache .ruff_cache .pytest_cache
