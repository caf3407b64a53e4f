# The README's two commands: `make demo` and `make test`. Both set up .venv on first use.
# `make test` is the full suite (CI runs it); `make test-fast` the tier to run after each change:
# everything not marked slow (Lava, Brian2, netx, end-to-end), under 2 minutes on 2 cores.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: demo test test-fast lint bench setup

setup: $(STAMP)

$(STAMP): requirements.txt requirements-lava.txt pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --ignore-requires-python -r requirements-lava.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check spikec tests examples benchmarks
	$(PY) -m pytest -q -n 2 tests

test-fast: $(STAMP)
	$(PY) -m ruff check spikec tests examples benchmarks
	$(PY) -m pytest -q -n 2 -m "not slow" tests

demo: $(STAMP)
	$(PY) -m spikec.demo

bench: $(STAMP)
	$(PY) benchmarks/torch_backend.py
