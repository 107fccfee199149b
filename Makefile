# Two commands set everything up on a fresh machine:
#   make run    install, then run the whole pipeline (dvc repro)
#   make test   install, then run the tests
VENV ?= .venv
PYTHON := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install run test test-fast

$(VENV)/installed: requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -r requirements.txt
	touch $@

install: $(VENV)/installed

run: install
	$(PYTHON) -m stages.ingest --check
	dvc repro
	dvc metrics show

test: install
	$(PYTHON) -m pytest -q

test-fast: install
	$(PYTHON) -m pytest -q -m "not slow"
