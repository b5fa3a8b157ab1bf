# Shortcuts for scripts/bootstrap.py, which needs nothing but Python 3.10 or newer and pip.
PYTHON ?= python3

.PHONY: demo test

demo:  ## virtualenv + install, train the quickstart on the sample dataset, translate its held-out photos
	$(PYTHON) scripts/bootstrap.py demo

test:  ## virtualenv + install (with pytest), run the test suite
	$(PYTHON) scripts/bootstrap.py test
