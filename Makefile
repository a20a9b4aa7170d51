# qrtl — `make test` sets up .venv on first use (pinned versions) and runs the suite.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.qrtl-installed

.PHONY: install test example clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PY) -c 'import sys; assert sys.version_info[:2] == (3, 11), "qrtl needs Python 3.11 (TensorFlow 2.15), found " + sys.version.split()[0]'
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==24.3.1
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	$(BIN)/python -c "import qkeras, tensorflow, hls4ml, qat, qrtl; print('qrtl environment ready: tensorflow', tensorflow.__version__)"
	touch $(STAMP)

test: install
	$(BIN)/pytest -q

# Re-train the shipped example model (examples/jet_tagger/*.h5).
example: install
	$(BIN)/python examples/jet_tagger/train.py

clean:
	rm -rf $(VENV) build .pytest_cache
