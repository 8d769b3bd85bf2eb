# edgetam-export developer entry points. Every target creates the virtualenv on demand,
# so a fresh clone needs only python3 (>=3.10) and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= build/export
CHECKPOINT ?=
# pytest-xdist workers of `make test` (the session export runs in the background beside them).
TEST_WORKERS ?= 2

.PHONY: venv test lint format export bench clean

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
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=15 tests

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

# Host benchmark (not part of `make test`): exports the default onnx + executorch fp32/fp16 bundle
# into $(BENCH_BUNDLE) if it is missing, runs every setting interleaved with the PyTorch-eager
# baseline on a full-bank steady-state frame, and writes build/bench/host.json + report.md + PNGs.
BENCH_BUNDLE ?= build/bench/bundle
BENCH_OUT    ?= build/bench
BENCH_ARGS   ?= --iterations 10 --warmup 3
bench: $(STAMP)
	test -f $(BENCH_BUNDLE)/manifest.json || $(VENV)/bin/edgetam-export export --backend onnx --backend executorch \
		--precision fp32 --precision fp16 $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT),--synthetic) --out $(BENCH_BUNDLE)
	$(VENV)/bin/edgetam-export bench run $(BENCH_BUNDLE) --backend onnx --backend executorch \
		--precision fp32 --precision fp16 $(BENCH_ARGS) --json $(BENCH_OUT)/host.json
	$(VENV)/bin/edgetam-export bench report $(BENCH_OUT)/host.json --out $(BENCH_OUT)

clean:
	rm -rf $(VENV) build .pytest_cache
