# Every target creates the project's own environment (.venv) first when it is missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

DESTINATION ?= duckdb
export DESTINATION
PROVIDER ?= all
WAIT ?= 0

.PHONY: demo test bench nightly backfill models check status simulators clean

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m pipelines demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pipelines bench $(BENCH_ARGS)

nightly: $(STAMP)
	$(PY) -m pipelines nightly --destination $(DESTINATION) $(if $(PROVIDERS),--providers $(PROVIDERS)) --wait $(WAIT)

backfill: $(STAMP)
	$(PY) -m pipelines backfill --destination $(DESTINATION) --provider "$(PROVIDER)" --start "$(START)" --end "$(END)" --wait $(WAIT)

status: $(STAMP)
	$(PY) -m pipelines status --destination $(DESTINATION)

models: $(STAMP)
	$(PY) -m pipelines models --destination $(DESTINATION) $(if $(START),--start $(START)) $(if $(END),--end $(END)) --wait $(WAIT)

check: $(STAMP)
	$(PY) -m pipelines check --destination $(DESTINATION)

simulators: $(STAMP)
	$(PY) -m simulators

clean:
	rm -rf data/demo data/bench .pytest_cache
