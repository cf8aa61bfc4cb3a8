# Every target creates the project's own environment (.venv) first when it is missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

DESTINATION ?= duckdb
export DESTINATION
WAIT ?= 0
TEST_WORKERS ?= 2

# PROVIDER and PROVIDERS are one setting, taken by every target that acts on providers: a
# provider, provider.account, a comma list, or all (the default: every configured one)
ifneq ($(and $(PROVIDER),$(PROVIDERS)),)
ifneq ($(PROVIDER),$(PROVIDERS))
$(error PROVIDER=$(PROVIDER) and PROVIDERS=$(PROVIDERS) disagree; give one of them)
endif
endif
SELECTED := $(or $(PROVIDERS),$(PROVIDER))
WITH_PROVIDERS = $(if $(SELECTED),--providers "$(SELECTED)")
# the commands then word their hints as make variables (WAIT=, PROVIDERS=), not as options
USAGE_ELT := USAGE_ELT_VIA_MAKE=1 $(PY) -m pipelines

.PHONY: demo test bench nightly backfill models check status report simulators dagster clean

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@# the report's charts script, bundled once here so the first report is as quick as the next
	$(PY) -c "from pipelines.report import vega_javascript; vega_javascript()"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m pipelines demo

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(PY) -m pipelines bench $(BENCH_ARGS)

nightly: $(STAMP)
	$(USAGE_ELT) nightly --destination $(DESTINATION) $(WITH_PROVIDERS) --wait $(WAIT)

backfill: $(STAMP)
	$(USAGE_ELT) backfill --destination $(DESTINATION) $(WITH_PROVIDERS) --start "$(START)" --end "$(END)" --wait $(WAIT)

status: $(STAMP)
	$(USAGE_ELT) status --destination $(DESTINATION) $(WITH_PROVIDERS) --wait $(WAIT)

models: $(STAMP)
	$(USAGE_ELT) models --destination $(DESTINATION) $(WITH_PROVIDERS) $(if $(START),--start $(START)) $(if $(END),--end $(END)) --wait $(WAIT)

check: $(STAMP)
	$(USAGE_ELT) check --destination $(DESTINATION) $(WITH_PROVIDERS) --wait $(WAIT)

report: $(STAMP)
	$(USAGE_ELT) report --destination $(DESTINATION) $(if $(OUT),--out "$(OUT)") $(if $(DAYS),--days $(DAYS)) $(if $(START),--start $(START)) $(if $(END),--end $(END))

simulators: $(STAMP)
	$(PY) -m simulators

# Dagster's UI on loopback over the loads as daily-partitioned assets (pipelines/orchestration.py),
# with the project's instance settings (one run per warehouse at a time)
DAGSTER_HOME ?= $(CURDIR)/data/dagster
DAGSTER_PORT ?= 3000
dagster: $(STAMP)
	@mkdir -p "$(DAGSTER_HOME)"
	@cp deploy/dagster/dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"
	DAGSTER_HOME="$(DAGSTER_HOME)" $(VENV)/bin/dagster dev -m pipelines.orchestration --host 127.0.0.1 --port $(DAGSTER_PORT)

clean:
	rm -rf data/demo data/bench .pytest_cache
