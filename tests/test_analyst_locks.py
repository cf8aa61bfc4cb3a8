"""An analyst idle in a transaction on Postgres, holding a view or a table the models replace.

Postgres keeps the locks a transaction took until it ends: an analyst who read a staging view
or a mart and left the session open holds it, and the statement that replaces it would wait for
ever, with everything queued behind it. Here the real command runs in a subprocess while such a
session stays open: it either ends as usual (nothing it had to replace was held) or ends within
a bound, with exit 3 and one line naming the session and the fix, its previous tables intact.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import time
from pathlib import Path

import psycopg2
import pytest

from pipelines import config, models
from pipelines.load import load_provider
from tests.conftest import query, yesterday
from tests.test_cli import ROOT, one_line_error, run
from tests.test_signals import last_run, next_nightly_equals_truth, sims  # noqa: F401

LOCK_TIMEOUT_S = 1
HANG_S = 120.0
"""Longer than any of these runs takes, waits included: a run still going then is hung."""
ANALYST = "analyst notebook"
STAGING_VIEW = "analytics.stg_neon__project_consumption"
QUANTITY = "cast(value as double precision) as quantity"


@pytest.fixture
def on_postgres(postgres_url, monkeypatch):
    monkeypatch.setenv("DESTINATION", "postgres")
    monkeypatch.setenv("DESTINATION__POSTGRES__LOCK_TIMEOUT", str(LOCK_TIMEOUT_S))
    return postgres_url


class Analyst:
    """A session that reads `relation` in a transaction and leaves it open (idle in transaction)."""

    def __init__(self, url: str, relation: str):
        self.con = psycopg2.connect(url, application_name=ANALYST)
        with self.con.cursor() as cur:
            cur.execute(f"select count(*) from {relation}")
            cur.fetchall()
            cur.execute("select pg_backend_pid()")
            (self.pid,) = cur.fetchone()

    def state(self) -> str:
        ((state,),) = query("postgres", f"select state from pg_stat_activity where pid = {self.pid}")
        return state

    def leave(self) -> None:
        self.con.rollback()
        self.con.close()


def within_bound(*args: str, env=None) -> subprocess.CompletedProcess:
    started = time.monotonic()
    try:
        done = run(*args, env=env, timeout=HANG_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(args)}` still ran after {HANG_S:.0f} s: it waits for the analyst's session for ever")
    print(f"{' '.join(args)}: exit {done.returncode} after {time.monotonic() - started:.1f} s",
          *[line for line in done.stderr.splitlines() if line.startswith("error:")])
    return done


def assert_names_the_analyst(line: str, analyst: Analyst, relation: str) -> None:
    assert line.startswith("error: the warehouse is busy: "), line
    assert f"pid {analyst.pid} " in line and "user postgres" in line and f"application '{ANALYST}'" in line, line
    assert re.search(r"idle in transaction since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line), line
    assert relation in line, line
    assert f"pg_terminate_backend({analyst.pid})" in line and "commit" in line, line


def revised_sql(tmp_path: Path) -> Path:
    """The models with Neon's staging view revised (its quantities doubled, same columns)."""
    revised = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", revised)
    view = revised / "staging" / "stg_neon__project_consumption.sql"
    assert QUANTITY in view.read_text()
    view.write_text(view.read_text().replace(QUANTITY, "cast(value * 2 as double precision) as quantity"))
    return revised


def view_factor(destination: str = "postgres") -> float:
    """How the staging view's quantities compare to the raw values: 1 as written, 2 revised."""
    ((view,),) = query(destination, f"select sum(quantity) from {STAGING_VIEW}")
    ((raw,),) = query(destination, "select sum(value) from raw_neon.project_consumption")
    return round(float(view) / float(raw), 6)


@pytest.mark.parametrize("relation", [STAGING_VIEW, "analytics.load_runs"])
def test_a_nightly_beside_an_analyst_idle_on_what_it_only_reads_or_adds_to_ends_as_usual(
        relation, sims, on_postgres, fault_report):
    """The staging views are current, so nothing replaces them, and the runs are added to
    load_runs: the analyst's session holds nothing the nightly must change, and the night
    ends equal to the ground truth."""
    first = yesterday() - dt.timedelta(days=4)
    started = sims(["neon"], first)
    assert run("nightly").returncode == config.EXIT_OK
    analyst = Analyst(on_postgres, relation)
    try:
        done = within_bound("nightly")
        assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
        assert analyst.state() == "idle in transaction", "the analyst's session was ended"
    finally:
        analyst.leave()
    assert last_run("postgres") == {"neon": ("nightly", "ok", None)}
    next_nightly_equals_truth(started, first, "postgres")
    fault_report(f"analyst idle in transaction on {'a staging view' if relation == STAGING_VIEW else relation}", 1)


def test_a_view_replaced_while_an_analyst_reads_it_fails_in_bounded_time_naming_the_session(
        sims, on_postgres, tmp_path, fault_report):
    first = yesterday() - dt.timedelta(days=4)
    sims(["neon"], first)
    assert run("nightly").returncode == config.EXIT_OK
    facts = query("postgres", "select * from analytics.fct_daily_usage order by 1, 2, 3, 4, 5, 6, 7, 8")
    analyst = Analyst(on_postgres, STAGING_VIEW)
    revised = {"USAGE_SQL_DIR": str(revised_sql(tmp_path))}
    try:
        done = within_bound("models", env=revised)
        assert done.returncode == config.EXIT_LOCKED, done.stdout + done.stderr
        assert_names_the_analyst(one_line_error(done), analyst, STAGING_VIEW)
        assert view_factor() == 1, "the view was replaced"
        assert query("postgres", "select * from analytics.fct_daily_usage order by 1, 2, 3, 4, 5, 6, 7, 8") == facts
    finally:
        analyst.leave()
    done = within_bound("models", env=revised)
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    assert view_factor() == 2, "the revised view was not created"
    fault_report("analyst idle in transaction on a view to replace", 1, outcome="exit 3 naming the session, views and facts as before")


def test_a_table_rebuilt_while_an_analyst_holds_it_fails_the_nightly_naming_the_session(sims, on_postgres, fault_report):
    """dim_resource is built whole on every night that changed facts, and swapped in: the
    analyst's session makes that swap wait, then the night fails with exit 3, recorded in
    load_runs, the previous table intact; once the analyst is gone the next night catches up."""
    first = yesterday() - dt.timedelta(days=4)
    started = sims(["neon"], first)
    assert run("nightly").returncode == config.EXIT_OK
    resources = query("postgres", "select * from analytics.dim_resource order by 1, 2, 3, 4")
    assert resources
    analyst = Analyst(on_postgres, "analytics.dim_resource")
    try:
        done = within_bound("nightly")
        # the loads ran: the models step failed, a FAILED line of the summary (exit 1)
        assert done.returncode == config.EXIT_FAILED, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        (line,) = [line for line in done.stdout.splitlines() if line.startswith("FAILED ")]
        assert line.startswith("FAILED models step failed: ")
        assert_names_the_analyst("error: " + line[len("FAILED models step failed: "):], analyst, "analytics.dim_resource")
        ((command, status, error),) = last_run("postgres").values()
        assert (command, status) == ("nightly", "failed"), error
        assert error.startswith("models step failed: the warehouse is busy: ") and f"pid {analyst.pid} " in error, error
        assert query("postgres", "select * from analytics.dim_resource order by 1, 2, 3, 4") == resources
        assert analyst.state() == "idle in transaction"
    finally:
        analyst.leave()
    next_nightly_equals_truth(started, first, "postgres")
    fault_report("analyst idle in transaction on a table to rebuild", 1,
                 outcome="exit 1, its FAILED line naming the session, load_runs failed, then equal to the ground truth")


@pytest.mark.parametrize("provider_case", ["neon"], indirect=True)
def test_a_revised_view_is_replaced_and_an_unchanged_one_kept(provider_case, simulator, destination, tmp_path, monkeypatch):
    assert load_provider("neon", destination, start_date=yesterday() - dt.timedelta(days=3)).status == "ok"
    dest = config.destination(destination)
    assert not models.build(dest).errors
    assert view_factor(destination) == 1
    assert not models.build(dest).errors
    assert view_factor(destination) == 1
    monkeypatch.setenv("USAGE_SQL_DIR", str(revised_sql(tmp_path)))
    assert not models.build(dest).errors
    assert view_factor(destination) == 2


@pytest.mark.parametrize("setting, value", [("LOCK_TIMEOUT", "soon"), ("LOCK_TIMEOUT", "0"), ("LOCK_ATTEMPTS", "1.5")])
def test_a_lock_wait_that_is_not_a_positive_number_is_a_configuration_error(on_postgres, setting, value):
    done = run("models", env={f"DESTINATION__POSTGRES__{setting}": value, "SOURCES__RAFAY__API_KEY": "rafay-key",
                              "SOURCES__RAFAY__BASE_URL": "http://127.0.0.1:9"})
    assert done.returncode == config.EXIT_CONFIG, done.stdout + done.stderr
    line = one_line_error(done)
    assert f"DESTINATION__POSTGRES__{setting}={value!r} is not a " in line, line
    assert not query("postgres", "select 1 from information_schema.schemata where schema_name = 'analytics'")
