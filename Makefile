# The two commands of the README. Each one creates .venv with the pinned
# dependencies when it is missing (or when pyproject.toml changed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench-explain bench-train clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/isnet bench bias --out runs/bias

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench-explain: $(STAMP)
	$(BIN)/python training/bench_explain.py

bench-train: $(STAMP)
	TF_ENABLE_ONEDNN_OPTS=1 $(BIN)/python training/bench_train.py

clean-venv:
	rm -rf $(VENV)
