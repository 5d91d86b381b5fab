# Convenience targets; the README's two commands are the source of truth.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test bench clean
setup:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -e '.[dev]'
run: setup
	$(PY) -m cnnexp
test:
	$(PY) -m pytest
bench:
	$(PY) scripts/bench_conv.py
	$(PY) scripts/bench_data.py
clean:
	rm -rf outputs/runs outputs/multirun bench-results
