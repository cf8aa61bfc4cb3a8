"""The demo as a user runs it, and the analysts' example queries against its data."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from pipelines import models
from tests.conftest import query

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "docs" / "queries"


@pytest.fixture(scope="module")
def demo_warehouse(tmp_path_factory):
    """`python -m pipelines demo` into a directory of its own, as `make demo` runs it."""
    directory = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION"))}
    done = subprocess.run([sys.executable, "-m", "pipelines", "demo"], cwd=ROOT, capture_output=True, text=True,
                          env={**env, "DEMO_DIR": str(directory)}, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return directory / "warehouse.duckdb", done.stdout


def test_demo_prints_every_provider_and_the_fact_summary(demo_warehouse):
    _, out = demo_warehouse
    for provider in ("neon", "adverity", "rafay", "bronto"):
        assert any(line.startswith(f"{provider} ") and " ok " in line for line in out.splitlines()), out
    assert "analytics.fct_daily_usage" in out and "compute_unit_seconds" in out and "ingestion_bytes" in out


def test_status_after_the_demo_shows_every_provider(demo_warehouse):
    path, _ = demo_warehouse
    done = subprocess.run([sys.executable, "-m", "pipelines", "status"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "DESTINATION__DUCKDB__CREDENTIALS": str(path)})
    assert done.returncode == 0, done.stderr
    yesterday = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()
    for provider in ("neon", "adverity", "rafay", "bronto"):
        line = next(l for l in done.stdout.splitlines() if l.startswith(f"{provider} "))
        assert yesterday in line, line
    assert "nightly" in done.stdout


def run_query(path: Path, name: str):
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        return con.execute((QUERIES / name).read_text()).fetchall()


def facts(path: Path):
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            "select usage_date, provider, account_id, resource_type, resource_id, metric, quantity from analytics.fct_daily_usage"
        ).fetchall()


def last_7_days():
    today = dt.datetime.now(dt.timezone.utc).date()
    return today - dt.timedelta(days=7), today


def test_month_to_date_by_account(demo_warehouse):
    path, _ = demo_warehouse
    today = dt.datetime.now(dt.timezone.utc).date()
    expected = defaultdict(float)
    for usage_date, provider, account_id, _, _, metric, quantity in facts(path):
        if today.replace(day=1) <= usage_date < today:
            expected[(provider, account_id, metric)] += quantity
    rows = run_query(path, "month_to_date_by_account.sql")
    assert {(r[0], r[1], r[3]): r[5] for r in rows} == pytest.approx(dict(expected))


def test_top_resources_last_7_days(demo_warehouse):
    path, _ = demo_warehouse
    first, today = last_7_days()
    totals = defaultdict(float)
    for usage_date, provider, _, resource_type, resource_id, metric, quantity in facts(path):
        if first <= usage_date < today:
            totals[(provider, metric, resource_type, resource_id)] += quantity
    rows = run_query(path, "top_resources_last_7_days.sql")
    assert rows
    for provider, metric, unit, rank, resource_type, resource_id, _, quantity, _ in rows:
        assert quantity == pytest.approx(totals[(provider, metric, resource_type, resource_id)])
        bigger = [q for (p, m, _, _), q in totals.items() if p == provider and m == metric and q > quantity]
        assert len(bigger) < rank, f"{provider} {metric}: rank {rank} but {len(bigger)} larger"


def test_daily_cost_drivers(demo_warehouse):
    path, _ = demo_warehouse
    first, today = last_7_days()
    per_day = defaultdict(lambda: defaultdict(float))
    for usage_date, provider, _, resource_type, resource_id, metric, quantity in facts(path):
        if first <= usage_date < today:  # a profile spans tenant orgs: the query sums them
            per_day[(usage_date, provider, metric)][(resource_type, resource_id)] += quantity
    rows = run_query(path, "daily_cost_drivers.sql")
    by_group = defaultdict(list)
    for usage_date, provider, metric, _, rank, resource_type, resource_id, _, quantity, share in rows:
        by_group[(usage_date, provider, metric)].append((rank, resource_type, resource_id, quantity, share))
    assert set(by_group) == set(per_day)
    for key, drivers in by_group.items():
        day = per_day[key]
        top = sorted(day.values(), reverse=True)[: len(drivers)]
        assert [d[3] for d in sorted(drivers)] == pytest.approx(top)
        total = sum(day.values())
        for _, _, _, quantity, share in drivers:
            if total:
                assert float(share) == pytest.approx(100 * quantity / total, abs=0.051)


def test_example_queries_run_on_postgres(postgres_url, monkeypatch, demo_warehouse):
    """The same files on Postgres, against the demo's facts copied over."""
    import psycopg2

    path, _ = demo_warehouse
    rows = facts(path)
    con = psycopg2.connect(postgres_url)
    try:
        with con, con.cursor() as cur:
            cur.execute("set time zone 'UTC'")
            cur.execute("create schema analytics")
            cur.execute(
                "create table analytics.fct_daily_usage (usage_date date, provider text, account_id text, "
                "account_name text, resource_type text, resource_id text, resource_name text, metric text, "
                "quantity double precision, unit text)"
            )
            cur.executemany(
                "insert into analytics.fct_daily_usage values (%s, %s, %s, null, %s, %s, null, %s, %s, 'u')", rows
            )
            for name in ("daily_cost_drivers.sql", "top_resources_last_7_days.sql", "month_to_date_by_account.sql"):
                cur.execute((QUERIES / name).read_text())
                duck = run_query(path, name)
                assert len(cur.fetchall()) == len(duck), name
    finally:
        con.close()
