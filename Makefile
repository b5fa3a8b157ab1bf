# make demo: set up, train the quickstart on the sample dataset, translate its held-out photos.
# make test: set up (with pytest) and run the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# The demo owns runs/quickstart and results/quickstart and replaces them on every run.
demo: $(VENV)/.installed
	rm -rf runs/quickstart results/quickstart results/quickstart_side_by_side.png
	$(BIN)/python train.py --config configs/quickstart.yaml
	$(BIN)/python test.py --checkpoint runs/quickstart --input datasets/sample/testA \
		--output results/quickstart --side-by-side results/quickstart_side_by_side.png
	@echo
	@echo "Translated photos:   results/quickstart/"
	@echo "Side by side:        results/quickstart_side_by_side.png  (photo | painting-style result)"
	@echo "Training run:        runs/quickstart/ (samples/, metrics.jsonl, latest.pt)"

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

clean-demo:
	rm -rf runs/quickstart results/quickstart results/quickstart_side_by_side.png
