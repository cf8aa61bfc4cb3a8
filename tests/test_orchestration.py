"""The Dagster definitions (pipelines/orchestration.py), run in process against the simulators.

Each account's job is run the way Dagster runs it: a partition range (a backfill of those
days) or the account's nightly schedule's request, then the models and the asset checks.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import dagster as dg
import pytest

from pipelines import config, orchestration
from pipelines.load import pipeline_for, saved_cursor
from pipelines.lock import warehouse_lock
from tests.conftest import assert_facts_equal, execute, query, yesterday
from tests.providers import case, truth_rows
from tests.test_accounts import fct
from tests.test_faults import FAST_RETRIES, SMALL
from tests.test_scheduling import make

ROOT = Path(__file__).resolve().parent.parent
START = yesterday() - dt.timedelta(days=5)
RANGE = (START + dt.timedelta(days=1), START + dt.timedelta(days=3))
"""Three days in the middle of the account's partitions."""


@pytest.fixture
def sims(monkeypatch, api_key, destination):
    """Neon and Adverity simulators (small), the sources pointed at them, START_DATE five days
    back, the test's warehouse chosen."""
    started = {}
    for provider, overrides in (("neon", {"n_projects": 3}), ("adverity", SMALL["adverity"])):
        sim = case(provider).make_simulator(api_key=f"{api_key}-{provider}", seed=5, **overrides).start()
        started[provider] = sim
        for name, value in sim.source_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(f"SOURCES__{provider.upper()}__START_DATE", START.isoformat())
    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DESTINATION", destination)
    yield started
    for sim in started.values():
        sim.stop()


@pytest.fixture(autouse=True)
def instance() -> Iterator[dg.DagsterInstance]:
    """A Dagster instance of the test's own (run and event storage in a temporary folder)."""
    global INSTANCE
    with dg.instance_for_test() as INSTANCE:
        yield INSTANCE


INSTANCE: Optional[dg.DagsterInstance] = None


def run_job(defs: dg.Definitions, job: str, tags: Dict[str, str]) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(instance=INSTANCE, tags=tags, raise_on_error=False)


def backfill(defs: dg.Definitions, job: str, first: dt.date, last: dt.date) -> dg.ExecuteInProcessResult:
    return run_job(defs, job, {orchestration.RANGE_START: first.isoformat(), orchestration.RANGE_END: last.isoformat()})


def nightly(defs: dg.Definitions, schedule: str) -> dg.ExecuteInProcessResult:
    """What the account's schedule asks for tonight, run."""
    definition = defs.resolve_schedule_def(schedule)
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime.now(dt.timezone.utc))
    request = definition.evaluate_tick(context).run_requests[0]
    return run_job(defs, definition.job_name, dict(request.tags))


def checks_of(result: dg.ExecuteInProcessResult) -> Dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}


def cursor(label: str) -> dt.date:
    return saved_cursor(pipeline_for(label, config.destination()))


def test_a_partition_range_is_a_backfill_the_schedule_the_nightly_and_checks_fail_on_a_lost_day(sims):
    neon = sims["neon"]
    defs = orchestration.build_definitions(["neon"])
    destination = os.environ["DESTINATION"]

    done = backfill(defs, "load_raw_neon", *RANGE)
    assert done.success, [event.message for event in done.all_events if event.is_failure]
    assert_facts_equal(fct(destination, "neon"), truth_rows(neon, *RANGE))
    assert checks_of(done)["grain"] and checks_of(done)["reconciliation"]
    assert not checks_of(done)["completeness"], "the days around the range are not loaded yet"
    materialized = done.asset_materializations_for_node("raw_neon")
    assert sorted(m.partition for m in materialized) == [day.isoformat() for day in (RANGE[0], RANGE[0] + dt.timedelta(days=1), RANGE[1])]
    metadata = {name: value.value for name, value in materialized[0].metadata.items()}
    (raw_rows,), = query(destination, "select count(*) from raw_neon.project_consumption")
    assert (metadata["rows"], metadata["days"], metadata["requests"]) == (raw_rows, 3, len(neon.requests))
    assert cursor("neon") is None, "a backfill leaves the nightly cursor alone"

    # the schedule's run: the nightly path, from the cursor (the first: from START_DATE)
    neon.reset_log()
    night = nightly(defs, "nightly_raw_neon")
    assert night.success, [event.message for event in night.all_events if event.is_failure]
    assert checks_of(night) == {"completeness": True, "grain": True, "reconciliation": True}
    assert_facts_equal(fct(destination, "neon"), truth_rows(neon, START, yesterday()))
    lookback = config.check_provider("neon").lookback_days
    scheduled = sorted(m.partition for m in night.asset_materializations_for_node("raw_neon"))
    assert scheduled[-1 - lookback:] == [(yesterday() - dt.timedelta(days=n)).isoformat() for n in range(lookback, -1, -1)]
    assert START.isoformat() in scheduled, "the days the night caught up on are materialized too"
    after_night = cursor("neon")
    assert after_night == yesterday()
    facts = fct(destination, "neon")

    # the same range again: identical facts, the cursor where the night left it
    again = backfill(defs, "load_raw_neon", *RANGE)
    assert again.success and all(checks_of(again).values()), checks_of(again)
    assert fct(destination, "neon") == facts
    assert cursor("neon") == after_night
    runs = query(destination, "select command, status, days from analytics.load_runs order by started_at")
    assert runs == [("backfill", "ok", 3), ("nightly", "ok", len(truth_days(neon))), ("backfill", "ok", 3)]

    # a day lost from the warehouse: the models' completeness check fails and names it
    gone = START + dt.timedelta(days=2)
    execute(destination, f"delete from raw_neon.project_consumption where usage_date = date '{gone}'")
    checked = run_job(defs, "models", {})
    assert checked.success, "a failing check does not fail the run: the asset is built, its check says what is wrong"
    evaluation = next(e for e in checked.get_asset_check_evaluations() if e.check_name == "completeness")
    assert not evaluation.passed and f"{gone}" in evaluation.description, evaluation.description


def truth_days(sim) -> List[dt.date]:
    return sorted({key[0] for key in truth_rows(sim, START, yesterday())})


def test_a_provider_down_fails_its_asset_only(sims):
    neon, adverity = sims["neon"], sims["adverity"]
    defs = orchestration.build_definitions(["neon", "adverity"])
    destination = os.environ["DESTINATION"]
    adverity.stop()  # down tonight

    down = nightly(defs, "nightly_raw_adverity")
    assert not down.success
    failed = [event for event in down.all_events if event.event_type_value == "STEP_FAILURE"]
    assert [event.step_key for event in failed] == ["raw_adverity"]
    assert "adverity: cannot reach" in failed[0].event_specific_data.error.message
    up = nightly(defs, "nightly_raw_neon")
    assert up.success
    assert checks_of(up) == {"completeness": False, "grain": True, "reconciliation": True}  # adverity's days are missing
    assert_facts_equal(fct(destination, "neon"), truth_rows(neon, START, yesterday()))
    assert set(query(destination, "select provider, status from analytics.load_runs")) == {("adverity", "failed"), ("neon", "ok")}


@pytest.mark.parametrize("destination", ["duckdb"])
def test_a_load_cut_short_is_finished_by_the_next_run(sims):
    """dlt's working folder is the project's (no helper wipes it before a run): the package a
    crashed run left is loaded by the next materialization, whatever days that one asks for."""
    neon = sims["neon"]
    defs = orchestration.build_definitions(["neon"])
    assert backfill(defs, "load_raw_neon", *RANGE).success
    dest = config.destination()
    pipeline = pipeline_for("neon", dest)
    pipeline.extract(config.source_function("neon")(start_date=START, end_date=START, lookback_days=0),
                     loader_file_format=dest.loader_file_format)
    pipeline.normalize()  # and the run ended here, its package not loaded
    assert pipeline.has_pending_data

    after = RANGE[1] + dt.timedelta(days=1)
    done = backfill(defs, "load_raw_neon", after, after)
    assert done.success and checks_of(done)["grain"]
    assert_facts_equal(fct("duckdb", "neon"), truth_rows(neon, START, after))
    assert not pipeline_for("neon", dest).has_pending_data


@pytest.mark.parametrize("destination", ["duckdb"])
def test_a_run_waits_for_the_warehouse_lock_and_loads_nothing_beside_another(sims):
    defs = orchestration.build_definitions(["neon"])
    with warehouse_lock(config.destination(), "nightly"):
        busy = backfill(defs, "load_raw_neon", *RANGE)
    assert not busy.success
    failed = [event for event in busy.all_events if event.event_type_value == "STEP_FAILURE"]
    assert [event.step_key for event in failed] == ["raw_neon"]
    assert "is busy: `nightly` (pid" in failed[0].event_specific_data.error.message
    assert sims["neon"].requests == []
    tags = defs.resolve_job_def("load_raw_neon").tags
    assert tags[orchestration.WAREHOUSE_TAG] == orchestration.warehouse_tag()


@pytest.mark.parametrize("destination", ["duckdb"])
def test_dagster_definitions_validate(sims):
    done = subprocess.run([str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-m",
                           "pipelines.orchestration"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "All code locations passed validation" in done.stderr + done.stdout


def test_the_instance_lets_one_run_per_warehouse_go_at_a_time(tmp_path, monkeypatch):
    """`make dagster`'s instance settings (deploy/dagster/dagster.yaml): runs tagged with the
    same warehouse queue behind each other."""
    (tmp_path / "dagster.yaml").write_text((ROOT / "deploy" / "dagster" / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert limits == [{"key": orchestration.WAREHOUSE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]


def test_make_dagster_serves_the_definitions_on_loopback():
    done = make("-n", "dagster")
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if "dagster dev" in line]
    assert "-m pipelines.orchestration --host 127.0.0.1 " in line, line
    assert "deploy/dagster/dagster.yaml" in done.stdout, "the instance settings that queue one run per warehouse"
