# edgetam-export developer entry points. Every target creates the virtualenv on demand,
# so a fresh clone needs only python3 (>=3.10) and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= build/export
CHECKPOINT ?=

.PHONY: venv test lint format export clean

venv: $(STAMP)

# torch is installed first, pinned, so the resolver never reaches for a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The test command also holds the layers contract, so a back-edge fails CI.
test: $(STAMP)
	$(PY) dev/lint_imports.py
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) dev/lint_imports.py

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

export: $(STAMP)
	$(VENV)/bin/edgetam-export export --backend coreml --backend executorch --backend onnx \
		$(if $(CHECKPOINT),--checkpoint $(CHECKPOINT),--synthetic) --out $(OUT)

clean:
	rm -rf $(VENV) build .pytest_cache
