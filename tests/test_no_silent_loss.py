"""No silent loss: every missing or wrong day is repaired by the next run or reported.

Each test replays an operator's bad week on a moving clock (`USAGE_NOW`, which the simulators
follow) and ends with the warehouse equal to the simulators' truth after the next run or, where
an API no longer serves a day, with exit 1 naming the days.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

import pytest

from pipelines import checks, config, models
from pipelines.nightly import run_nightly
from simulators.base import FOREVER, Fault, Simulator
from sources import windows
from tests.conftest import query, yesterday
from tests.providers import case
from tests.test_faults import FAST_RETRIES, SMALL
from tests.test_faults_cli import models_equal_truth, night, raw_equals_truth

ROOT = Path(__file__).resolve().parent.parent
TODAY = yesterday() + dt.timedelta(days=1)


@pytest.fixture
def sims(monkeypatch, api_key):
    """start(providers, first_day=None): simulators on the moving clock, sources pointed at
    them; `first_day` sets START_DATE (None: the default start, as the shipped workflow runs)."""
    started: Dict[str, Simulator] = {}
    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(name, value)

    def start(providers: Sequence[str], first_day: Optional[dt.date] = None, **overrides) -> Dict[str, Simulator]:
        for provider in providers:
            provider_case = case(provider)
            sim = provider_case.make_simulator(
                api_key=f"{api_key}-{provider}", seed=5, clock=windows.utc_now,
                **{**SMALL.get(provider, {}), **overrides.get(provider, {})},
            ).start()
            started[provider] = sim
            for name, value in provider_case.env(sim).items():
                if name != "USAGE_NOW":  # the test's clock, not the case's
                    monkeypatch.setenv(name, value)
            if first_day is not None:
                monkeypatch.setenv(config.env_name(provider, "start_date"), first_day.isoformat())
        return started

    yield start
    for sim in started.values():
        sim.stop()


def cli(*args: str, harness: Optional[str] = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", harness] if harness else [sys.executable, "-m", "pipelines"]
    return subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True, env=dict(os.environ), timeout=300)


def all_equal_truth(started: Dict[str, Simulator], first: dt.date, last: dt.date, destination: str = "duckdb") -> None:
    for provider, sim in started.items():
        raw_equals_truth(provider, sim, first, last, destination)
        models_equal_truth(provider, sim, first, last, destination)


def completeness_rows(destination: str = "duckdb") -> Dict[tuple, str]:
    rows = query(destination, "select provider, account_id, usage_date, status from analytics.usage_completeness")
    return {(provider, account, day): status for provider, account, day, status in rows}


# -- 1. the default start floors the cursor -------------------------------------------------------
def test_an_outage_longer_than_the_default_week_is_caught_up(monkeypatch, sims):
    """No START_DATE: the first night loads the last week; every provider is down for 12
    nights; the next healthy night loads every day in between."""
    first_night = TODAY - dt.timedelta(days=13)
    night(monkeypatch, first_night)
    started = sims(config.provider_names())
    assert run_nightly().exit_code == config.EXIT_OK
    first_day = windows.default_start_date(windows.utc_now())

    night(monkeypatch, first_night + dt.timedelta(days=5))
    outages = [sim.inject(Fault(status=503, body={"error": "down"}, times=FOREVER)) for sim in started.values()]
    down = run_nightly()
    assert down.exit_code == config.EXIT_FAILED and len(down.failed) == len(config.provider_names()), down.lines()
    assert all(outage.served for outage in outages)
    for sim in started.values():
        sim.clear_faults()

    night(monkeypatch, TODAY)
    healthy = run_nightly()
    assert healthy.exit_code == config.EXIT_OK, healthy.lines()
    all_equal_truth(started, first_day, yesterday())
    assert checks.run_checks(config.destination("duckdb"), list(config.provider_names())) == []
    assert set(completeness_rows().values()) == {"loaded"}


# -- 2. a model build that never committed ----------------------------------------------------------
SIGTERM_IN_MODELS = r"""
import os, signal, sys, time
sys.path.insert(0, os.getcwd())
from pipelines import models, stop

# the build has all the time it needs to reach a safe point after the stop: whatever it
# still publishes then is published by a run that says it stopped
stop.GRACE_S = 60.0


def stopped_at(build):
    def terminated(*args, **kwargs):
        # the first provider's facts are being built: the scheduler stops the job once, and
        # the build goes on when the run knows it (the signal is handled on the main thread)
        if stop.requested() is None:
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 10
            while stop.requested() is None and time.monotonic() < deadline:
                time.sleep(0.01)
        return build(*args, **kwargs)
    return terminated

# the step that writes the fact table (named so in every version of the runner)
for name in ("_build_provider", "_build_table"):
    if hasattr(models, name):
        setattr(models, name, stopped_at(getattr(models, name)))
from pipelines.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_days_whose_model_build_was_stopped_are_rebuilt_by_the_next_run(destination, request, monkeypatch, sims):
    if destination == "postgres":
        request.getfixturevalue("postgres_url")
    monkeypatch.setenv("DESTINATION", destination)
    first_night = TODAY - dt.timedelta(days=6)
    first_day = first_night - dt.timedelta(days=3)
    night(monkeypatch, first_night)
    started = sims(("adverity", "rafay"), first_day)
    assert run_nightly().exit_code == config.EXIT_OK

    # a night that loads four new days and is stopped while it builds their facts
    night(monkeypatch, TODAY - dt.timedelta(days=1))
    stopped = cli("nightly", harness=SIGTERM_IN_MODELS)
    assert stopped.returncode == 143, stopped.stdout + stopped.stderr
    assert "interrupted by SIGTERM in the models step" in stopped.stderr
    loaded_days = {day for (day,) in query(destination, "select distinct usage_date from raw_adverity.usage")}
    built_days = {day for (day,) in query(destination, "select distinct usage_date from analytics.fct_daily_usage")}
    assert loaded_days - built_days, "the stopped night loaded days it did not build"

    # the next night's own window does not reach back to all of them: only the record of what
    # was modelled brings them back
    night(monkeypatch, TODAY)
    done = cli("nightly")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    all_equal_truth(started, first_day, yesterday(), destination)
    assert cli("check").returncode == config.EXIT_OK


# -- 3. one provider's bad data -------------------------------------------------------------------
def negative_first_value(body):
    body["projects"][0]["periods"][0]["consumption"][-1]["metrics"][0]["value"] = -5
    return body


def test_one_providers_bad_rows_do_not_hold_back_the_others(monkeypatch, sims):
    first_night = TODAY - dt.timedelta(days=1)
    first_day = first_night - dt.timedelta(days=4)
    night(monkeypatch, first_night)
    started = sims(("neon", "adverity"), first_day)
    assert run_nightly().exit_code == config.EXIT_OK
    neon_before = query("duckdb", "select * from analytics.fct_daily_usage where provider = 'neon' order by all")

    night(monkeypatch, TODAY)
    bad = started["neon"].inject(Fault(kind="mutate", mutate=negative_first_value, path_contains="projects"))
    report = run_nightly()
    assert bad.served == 1
    assert report.exit_code == config.EXIT_FAILED
    assert [r.status for r in report.results] == ["ok", "ok"], "both loaded: the bad figure is a model test failure"
    (error,) = report.model_errors
    assert "fct_daily_usage" in error and "neon" in error and "quantity_not_negative" in error and "-5" in error
    assert any(line == f"FAILED {error}" for line in report.lines())
    # neon keeps its previous facts; adverity's new day is published
    assert query("duckdb", "select * from analytics.fct_daily_usage where provider = 'neon' order by all") == neon_before
    models_equal_truth("adverity", started["adverity"], first_day, yesterday())
    statuses = {day: status for (provider, _, day), status in completeness_rows().items() if provider == "neon"}
    assert statuses[yesterday()] == "missing"
    assert checks.run_checks(config.destination("duckdb"), ["neon", "adverity"]), "check must not pass"

    # the provider answers right again: the lookback re-reads the day and every fact is rebuilt
    night(monkeypatch, TODAY + dt.timedelta(days=1))
    healthy = run_nightly()
    assert healthy.exit_code == config.EXIT_OK, healthy.lines()
    all_equal_truth(started, first_day, TODAY)


# -- 4. non-finite quantities ---------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_model_tests_reject_non_finite_quantities(bad, monkeypatch, sims):
    night(monkeypatch, TODAY)
    started = sims(("bronto", "adverity"), yesterday() - dt.timedelta(days=2))
    assert run_nightly().exit_code == config.EXIT_OK
    before = query("duckdb", "select * from analytics.fct_daily_usage where provider = 'bronto' order by all")
    import duckdb

    dest = config.destination("duckdb")
    with duckdb.connect(dest.location) as con:  # a figure no source would let through, put in raw by hand
        con.execute(f"update raw_bronto.daily_usage set day_bytes = cast('{bad}' as double) where usage_date = ?", [yesterday()])
    report = models.build(dest)
    assert list(report.failed) == ["bronto"] and "quantity_finite" in report.failed["bronto"]
    assert query("duckdb", "select * from analytics.fct_daily_usage where provider = 'bronto' order by all") == before
    models_equal_truth("adverity", started["adverity"], yesterday() - dt.timedelta(days=2), yesterday())


# -- 6. one warehouse, one state ------------------------------------------------------------------
def nights_on_two_warehouses(monkeypatch, setting: str, main: str, other: str) -> None:
    """The main warehouse loads two nights, warehouse C one, the main one two more, then C
    again: the shared folder's state is newer than C's own by then."""
    for warehouse, days_ago in ((main, 9), (main, 8), (other, 7), (main, 2), (main, 1), (other, 0)):
        monkeypatch.setenv(setting, warehouse)
        night(monkeypatch, TODAY - dt.timedelta(days=days_ago))
        report = run_nightly()
        assert report.exit_code == config.EXIT_OK, report.lines()


def test_two_warehouses_never_share_a_cursor(monkeypatch, sims, tmp_path):
    first_day = TODAY - dt.timedelta(days=10)
    started = sims(("neon", "rafay"), first_day)
    other = tmp_path / "c.duckdb"
    nights_on_two_warehouses(monkeypatch, "DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "main.duckdb"), str(other))
    all_equal_truth(started, first_day, yesterday())


def test_the_warehouse_state_wins_over_a_newer_local_one(monkeypatch, sims, tmp_path):
    """The warehouse is restored from last week's copy: its state is older than the working
    folder's, and the next night loads every day since the copy."""
    warehouse = Path(os.environ["DESTINATION__DUCKDB__CREDENTIALS"])
    first_night = TODAY - dt.timedelta(days=6)
    first_day = first_night - dt.timedelta(days=2)
    started = sims(("adverity", "bronto"), first_day)
    night(monkeypatch, first_night)
    assert run_nightly().exit_code == config.EXIT_OK
    shutil.copy(warehouse, tmp_path / "backup.duckdb")
    night(monkeypatch, TODAY - dt.timedelta(days=1))
    assert run_nightly().exit_code == config.EXIT_OK
    shutil.copy(tmp_path / "backup.duckdb", warehouse)  # the restore
    night(monkeypatch, TODAY)
    assert run_nightly().exit_code == config.EXIT_OK
    all_equal_truth(started, first_day, yesterday())


@pytest.mark.parametrize("destination", ["postgres"])
def test_two_postgres_databases_never_share_a_cursor(destination, monkeypatch, sims, postgres_url):
    import psycopg2

    other_name = postgres_url.rsplit("/", 1)[1] + "_c"
    admin = psycopg2.connect(postgres_url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    admin.cursor().execute(f'create database "{other_name}"')
    try:
        other = postgres_url.rsplit("/", 1)[0] + f"/{other_name}"
        monkeypatch.setenv("DESTINATION", "postgres")
        first_day = TODAY - dt.timedelta(days=10)
        started = sims(("neon",), first_day)
        nights_on_two_warehouses(monkeypatch, "DESTINATION__POSTGRES__CREDENTIALS", postgres_url, other)
        all_equal_truth(started, first_day, yesterday(), "postgres")
    finally:
        admin.cursor().execute(f'drop database if exists "{other_name}" with (force)')
        admin.close()


# -- 7. holes are looked for, repaired, or reported -----------------------------------------------
def test_lost_raw_days_are_read_again_by_the_next_nightly(monkeypatch, sims):
    night(monkeypatch, TODAY - dt.timedelta(days=1))
    first_day = TODAY - dt.timedelta(days=9)
    started = sims(("neon", "rafay"), first_day)
    assert run_nightly().exit_code == config.EXIT_OK
    import duckdb

    lost = [first_day + dt.timedelta(days=1), first_day + dt.timedelta(days=2)]
    with duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"]) as con:  # two days gone from the warehouse
        con.execute("delete from raw_neon.project_consumption where usage_date in (?, ?)", lost)
    problems = checks.run_checks(config.destination("duckdb"), ["neon", "rafay"])
    assert problems == [
        f"completeness: neon (account default) is missing {lost[0]}..{lost[1]} in raw_neon; "
        "the next nightly reads them again (or run a backfill for them)"
    ]
    assert cli("check").returncode == config.EXIT_FAILED
    marked = completeness_rows()
    assert [day for (provider, _, day), status in sorted(marked.items()) if status == "missing"] == lost
    assert all(marked[("neon", "default", day)] == "missing" for day in lost)
    status = cli("status")
    assert f"{lost[0]}..{lost[1]} (not in raw)" in status.stdout, status.stdout

    night(monkeypatch, TODAY)
    started["neon"].reset_log()
    report = run_nightly()
    assert report.exit_code == config.EXIT_OK, report.lines()
    assert f"neon: read missing days again: {lost[0]}..{lost[1]}" in report.lines()
    windows_asked = [(r.one("from"), r.one("to")) for r in started["neon"].requests]
    assert (windows.rfc3339(windows.midnight(lost[0])), windows.rfc3339(windows.midnight(lost[1] + dt.timedelta(days=1)))) in windows_asked
    all_equal_truth(started, first_day, yesterday())
    assert set(completeness_rows().values()) == {"loaded"}


def test_days_the_api_no_longer_serves_fail_the_night_naming_them(monkeypatch, sims):
    """START_DATE older than Neon's 60 days of history: the servable days load, the rest is
    reported every night (exit 1) until the start is moved."""
    night(monkeypatch, TODAY)
    first_day = TODAY - dt.timedelta(days=64)
    started = sims(("neon",), first_day, neon={"n_projects": 2})
    report = run_nightly()
    oldest = TODAY - dt.timedelta(days=60)
    assert [r.status for r in report.results] == ["ok"]
    assert report.exit_code == config.EXIT_FAILED
    expected = (
        f"completeness: neon (account default) is missing {first_day}..{oldest - dt.timedelta(days=1)} in raw_neon, "
        f"which the API no longer serves (oldest day it serves: {oldest}); they cannot be recovered: "
        f"set SOURCES__NEON__START_DATE={oldest} to accept the gap"
    )
    assert report.problems == [expected]
    assert f"CHECK FAILED {expected}" in report.lines()
    raw_equals_truth("neon", started["neon"], oldest, yesterday())
    rows = completeness_rows()
    assert [day for (_, _, day), status in sorted(rows.items()) if status == "missing"] == list(
        windows.days(first_day, oldest - dt.timedelta(days=1))
    )
    done = cli("check")
    assert done.returncode == config.EXIT_FAILED and expected in done.stdout
    monkeypatch.setenv("SOURCES__NEON__START_DATE", oldest.isoformat())
    assert cli("check").returncode == config.EXIT_OK
