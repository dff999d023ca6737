# The two commands of the README. Each creates .venv when it is missing and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-quick lint typecheck check bench clean

$(STAMP): pyproject.toml setup.py src/hispeed/log/_rdbulk.c src/hispeed/formats/_flatjson.c src/hispeed/formats/_flatavro.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# the seed's own ksqlDB client, for the REST API's tests: its build needs setuptools and
	# wheel without isolation, and it shares the `ksql` import name with ksql-python-ng, so it
	# lives in a directory of its own that its test puts on a subprocess's path
	$(BIN)/python -m pip install --quiet setuptools wheel
	$(BIN)/python -m pip install --quiet --upgrade --no-build-isolation \
		--target $(VENV)/ksql-0.10.2 ksql==0.10.2
	# ksql-python-ng calls httpx.get(cert=...), which httpx 0.28 removed: its own directory too
	$(BIN)/python -m pip install --quiet --upgrade --target $(VENV)/ksql-python-ng \
		ksql-python-ng 'httpx[http2]<0.28'
	# jetblack-ksql-dbapi needs Python 3.12 or later: a venv of its own when one is here
	py312=$$(scripts/python312); if [ -n "$$py312" ]; then \
		$$py312 -m venv $(VENV)/jetblack && \
		$(VENV)/jetblack/bin/python -m pip install --quiet jetblack-ksql-dbapi 'httpx[http2]'; fi
	touch $(STAMP)

run: $(STAMP)  ## hispeed on its embedded default with the course's scenarios (http://127.0.0.1:8088/demo)
	$(BIN)/hispeed demo run

test: $(STAMP)  ## lint, types and the whole suite, as CI runs it
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

test-quick: $(STAMP)  ## the suite without the slow parts
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/hispeed bench log

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
