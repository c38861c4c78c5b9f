# Two commands set up a fresh machine:
#   make demo   record a realistic history on the embedded store and show the journeys
#   make test   lint, type-check, check the layering, and run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench fuzz lock clean

# The hottest modules of who is who, of the fold and of the decider, and the touchpoint's
# validation (scripts/compile.py's), compiled with mypyc where a C compiler is found (plain
# Python elsewhere); compiled again whenever they change, or a module whose named tuples or
# constants they read compiled in does.
IDENTITY := engine/identity.py projections/people.py
FOLD := projections/position.py projections/machine.py projections/stepwise.py \
	$(wildcard projections/detectors/*.py)
DECIDER := consumers/briefs.py consumers/deciding.py consumers/page_decider.py
VALIDATION := engine/touchpoints.py
READ_COMPILED := engine/words.py engine/actions.py consumers/action_store.py
COMPILED := $(VENV)/.compiled

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(COMPILED): $(STAMP) $(IDENTITY) $(FOLD) $(DECIDER) $(VALIDATION) $(READ_COMPILED) \
		scripts/compile.py
	$(BIN)/python scripts/compile.py
	touch $@

demo: $(COMPILED)
	$(BIN)/journey demo

lint: $(COMPILED)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

# The generated-input tests with many more examples than `make test` runs.
fuzz: $(COMPILED)
	JOURNEY_FUZZ_EXAMPLES=20000 $(BIN)/pytest tests/unit/test_files_fuzz.py tests/unit/test_boundaries_fuzz.py
	# Each example goes through the API and a store (a few milliseconds): fewer of them.
	JOURNEY_FUZZ_EXAMPLES=2000 $(BIN)/pytest tests/contract/test_api_fuzz.py
	# Each example goes through the broker (about two seconds): fewer still.
	JOURNEY_FUZZ_EXAMPLES=500 $(BIN)/pytest tests/integration/test_kafka_fuzz.py

bench: $(COMPILED)
	$(BIN)/python bench/ingest_file.py
	$(BIN)/python bench/rebuild.py

# The image's dependencies, exact and hashed, for Linux and Python 3.11 whatever this machine
# runs: requirements.lock (pyproject.toml's dependencies) and requirements-build.lock (what
# compiles the fold and builds the project). Run after changing them; existing pins are kept
# where they still fit (`make lock UPGRADE=--upgrade` takes the newest of everything). uv
# rather than pip-compile: it resolves for the image's platform, where pip-compile resolves
# for the Python that runs it.
BUILD_TOOLS := mypy>=1.11 setuptools>=68
LOCKING := --python-version 3.11 --python-platform linux --generate-hashes --quiet \
	--custom-compile-command 'make lock' $(UPGRADE)

lock: $(STAMP)
	$(BIN)/pip install --quiet 'uv==0.13.8'
	$(BIN)/uv pip compile $(LOCKING) pyproject.toml -o requirements.lock
	printf '%s\n' $(foreach tool,$(BUILD_TOOLS),'$(tool)') \
		| $(BIN)/uv pip compile $(LOCKING) - -o requirements-build.lock

clean:
	rm -rf $(VENV) .journey .mypy_cache .ruff_cache .pytest_cache build \
		engine/*.so projections/*.so projections/detectors/*.so consumers/*.so
