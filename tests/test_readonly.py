"""A shared Postgres warehouse: `usage-elt grant-readonly ROLE` for analysts, who read while the
nightly loads, on the real server."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from typing import Dict, List, Set, Tuple

import psycopg2
import pytest

from pipelines import config
from pipelines.__main__ import main
from pipelines.nightly import run_nightly
from tests.conftest import assert_facts_equal, query, yesterday
from tests.providers import case, truth_rows
from tests.test_accounts import fct

START = yesterday() - dt.timedelta(days=5)
FIRST_LOAD_END = yesterday() - dt.timedelta(days=3)
"""A backfill brings START..here first; the nightly (no cursor yet) then loads every day."""
NIGHTLY_LIMIT_S = 90
"""Far more than the nightly takes: a nightly still running then waits for the analyst."""


@pytest.fixture
def role(postgres_url) -> str:
    """A role name of the test's own; roles belong to the whole server, so it is dropped after."""
    name = f"analysts_{uuid.uuid4().hex[:8]}"
    yield name
    con = psycopg2.connect(postgres_url)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f"select 1 from pg_roles where rolname = '{name}'")
        if cur.fetchone():
            cur.execute(f'drop owned by "{name}"')
            cur.execute(f'drop role "{name}"')
    con.close()


def as_role(postgres_url: str, role: str):
    """A session of the analysts' role (the server trusts loopback, as it trusts the tests' user)."""
    return psycopg2.connect(postgres_url.replace("postgres:postgres@", f"{role}@", 1), connect_timeout=5,
                            application_name="analyst")


def denied(con, statement: str) -> bool:
    with con.cursor() as cur:
        try:
            cur.execute(statement)
        except psycopg2.errors.InsufficientPrivilege:
            con.rollback()
            return True
    con.rollback()
    return False


def days_of(cur) -> Tuple[Tuple[dt.date, int, float], ...]:
    cur.execute("select usage_date, count(*), sum(quantity) from analytics.fct_daily_usage group by usage_date order by usage_date")
    return tuple(cur.fetchall())


def analytics_tables() -> List[str]:
    return [name for (name,) in query("postgres", "select table_name from information_schema.tables "
                                                  "where table_schema = 'analytics' order by table_name")]


def test_grant_readonly_on_duckdb_is_a_configuration_error(capsys):
    assert main(["grant-readonly", "analysts"]) == config.EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: grant-readonly makes a Postgres role, and the warehouse is duckdb") and "\n" not in err
    assert "--destination postgres" in err


def test_a_role_name_grant_readonly_does_not_make_is_refused(postgres_url, capsys):
    assert main(["grant-readonly", "Robert'); drop table x", "--destination", "postgres"]) == config.EXIT_CONFIG
    assert "is not a role name grant-readonly makes" in capsys.readouterr().err
    assert main(["grant-readonly", "postgres", "--destination", "postgres"]) == config.EXIT_CONFIG
    assert "is the warehouse's own user" in capsys.readouterr().err


def test_analysts_read_analytics_while_a_nightly_loads_and_nothing_else(postgres_url, role, monkeypatch, api_key, capsys):
    # each request takes a while, so the nightly's load step is long enough to query beside it
    sim = case("neon").make_simulator(api_key=api_key, seed=9, n_projects=3, latency_ms=400).start()
    try:
        for name, value in sim.source_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("SOURCES__NEON__START_DATE", START.isoformat())
        monkeypatch.setenv("DESTINATION", "postgres")

        # granted on an empty warehouse: every table the loads make later is readable too
        assert main(["grant-readonly", role]) == config.EXIT_OK
        assert capsys.readouterr().out.startswith(f"created role {role}: it reads the 0 tables and views of analytics")
        assert main(["backfill", "--start", START.isoformat(), "--end", FIRST_LOAD_END.isoformat()]) == config.EXIT_OK
        capsys.readouterr()
        analyst = as_role(postgres_url, role)
        tables = analytics_tables()
        assert "fct_daily_usage" in tables and "load_runs" in tables
        with analyst.cursor() as cur:
            for table in tables:
                cur.execute(f"select count(*) from analytics.{table}")
        analyst.rollback()

        # an analyst's long query: one repeatable-read transaction, open across the whole nightly
        long_read = as_role(postgres_url, role)
        long_read.set_session(isolation_level="REPEATABLE READ", readonly=True)
        long_cur = long_read.cursor()
        before = days_of(long_cur)
        long_cur.execute("select pg_sleep(0.2)")
        assert before and max(day for day, _, _ in before) == FIRST_LOAD_END

        sim.reset_log()
        outcome: Dict[str, object] = {}
        loader = threading.Thread(target=lambda: outcome.update(report=run_nightly(["neon"])))
        started = time.monotonic()
        loader.start()
        seen: Set[Tuple] = set()
        read_while_loading: List[str] = []
        poller = as_role(postgres_url, role)
        poller.autocommit = True
        with poller.cursor() as cur:
            while loader.is_alive() and time.monotonic() - started < NIGHTLY_LIMIT_S:
                seen.add(days_of(cur))  # each statement sees what is committed: a day whole, or not yet
                if not read_while_loading and sim.requests:  # a request in flight: the load step
                    for table in tables:
                        cur.execute(f"select count(*) from analytics.{table}")
                    read_while_loading = tables
                time.sleep(0.05)
        poller.close()
        blocked = loader.is_alive()
        assert days_of(long_cur) == before, "the long query saw the nightly's rows in its own snapshot"
        long_read.commit()  # only now does the long query end
        loader.join(NIGHTLY_LIMIT_S)
        assert not blocked, f"the nightly was still running after {NIGHTLY_LIMIT_S}s, behind the analyst's transaction"
        report = outcome["report"]
        assert report.exit_code == config.EXIT_OK, report.lines()
        assert read_while_loading == tables, "the analysts read every analytics table during the load step"

        with analyst.cursor() as cur:
            after = days_of(cur)
        analyst.rollback()
        assert seen <= {before, after}, f"a reader saw a state between before and after the nightly: {sorted(seen)[:2]}"
        assert max(day for day, _, _ in after) == yesterday()
        assert_facts_equal(fct("postgres", "neon"), truth_rows(sim, START, yesterday()))

        # nothing else: no raw table, no dlt state, no staging dataset, no write, no new table
        raw_tables = query("postgres", "select table_schema, table_name from information_schema.tables "
                                       "where table_schema like 'raw\\_%'")
        assert ("raw_neon", "_dlt_pipeline_state") in raw_tables
        for schema, table in raw_tables:
            assert denied(analyst, f"select count(*) from {schema}.{table}"), f"{schema}.{table} is readable"
        assert denied(analyst, "delete from analytics.fct_daily_usage")
        assert denied(analyst, "insert into analytics.load_runs (run_id) values ('x')")
        assert denied(analyst, "create table analytics.mine (x int)")
        assert denied(analyst, "create table public.mine (x int)")
        analyst.close()
        long_read.close()
    finally:
        sim.stop()

    # granted something more by hand, then run again: reading analytics is all it does
    admin = psycopg2.connect(postgres_url)
    with admin, admin.cursor() as cur:
        cur.execute(f'grant usage on schema raw_neon to "{role}"; grant select, insert on all tables in schema raw_neon to "{role}"; '
                    f'grant insert on analytics.fct_daily_usage to "{role}"')
    admin.close()
    assert main(["grant-readonly", role]) == config.EXIT_OK
    assert capsys.readouterr().out.startswith(f"updated role {role}: it reads the {len(analytics_tables())} tables")
    with as_role(postgres_url, role) as again:
        assert denied(again, "select count(*) from raw_neon.project_consumption")
        assert denied(again, "insert into analytics.fct_daily_usage (provider) values ('x')")
        with again.cursor() as cur:
            cur.execute("select count(*) from analytics.fct_daily_usage")
    again.close()

