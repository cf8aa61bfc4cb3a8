"""The tables analysts read, against the simulators' truth: facts that can be summed, the
resource dimension, Rafay's profile rollups reconciled with their instances, and the
warehouse's own manners (keys, indexes, comments, no clutter)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from pipelines import config, models
from pipelines.load import load_provider
from tests.conftest import assert_facts_equal, query, yesterday

ROOT = Path(__file__).resolve().parent.parent
WINDOW_DAYS = 4
RESOURCE_KEY = ("provider", "account_id", "resource_type", "resource_id")
ATTRIBUTES = ("account_name", "resource_name", "project_id", "project_name", "profile_id", "profile_name", "plan")


def window():
    last = yesterday()
    return last - dt.timedelta(days=WINDOW_DAYS - 1), last


def load_and_build(provider: str, destination: str):
    first, last = window()
    assert load_provider(provider, destination, start_date=first).status == "ok"
    report = models.build(config.destination(destination))
    assert not report.errors, report.errors
    return first, last


def cli(destination: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "DESTINATION": destination}, timeout=300)


# -- leaf-only facts ----------------------------------------------------------------------------
def test_summing_each_metric_over_the_whole_fact_table_gives_the_truths_total(provider_case, simulator, destination):
    """No row is a rollup of others: the whole table's sum of a metric is the usage's total."""
    first, last = load_and_build(provider_case.name, destination)
    truth = defaultdict(float)
    for row in simulator.truth(first, last):
        truth[row["metric"]] += float(row["quantity"])
    totals = dict(query(destination, "select metric, sum(quantity) from analytics.fct_daily_usage group by metric"))
    assert set(totals) == set(truth)
    wrong = {metric: (float(totals[metric]), truth[metric]) for metric in truth
             if abs(float(totals[metric]) - truth[metric]) > 1e-6 * max(abs(truth[metric]), 1.0)}
    assert not wrong, wrong


def test_fact_names_are_the_apis(provider_case, simulator, destination):
    """`account_name`/`resource_name` in the facts wherever the API gives one."""
    first, last = load_and_build(provider_case.name, destination)
    expected = {}
    for row in simulator.truth(first, last):
        key = (row["usage_date"], row["account_id"], row["resource_type"], row["resource_id"], row["metric"])
        expected[key] = (row.get("account_name"), row.get("resource_name"))
    rows = query(destination, "select usage_date, account_id, resource_type, resource_id, metric, account_name, "
                              "resource_name from analytics.fct_daily_usage")
    wrong = []
    for *key, account_name, resource_name in rows:
        want_account, want_resource = expected[tuple(key)]
        if want_account is not None and account_name != want_account or want_resource is not None and resource_name != want_resource:
            wrong.append((key, (account_name, resource_name), (want_account, want_resource)))
    assert not wrong, wrong[:3]


# -- the resource dimension ---------------------------------------------------------------------
def test_dim_resource_has_one_row_per_fact_resource_with_the_apis_attributes(provider_case, simulator, destination):
    first, last = load_and_build(provider_case.name, destination)
    columns = ", ".join(RESOURCE_KEY + ATTRIBUTES + ("first_usage_date", "last_usage_date"))
    dim = query(destination, f"select {columns} from analytics.dim_resource")
    keys = [tuple(row[:4]) for row in dim]
    assert len(keys) == len(set(keys)), "dim_resource repeats a resource"
    fact_keys = set(query(destination, f"select distinct {', '.join(RESOURCE_KEY)} from analytics.fct_daily_usage"))
    assert set(keys) == fact_keys
    by_key = {tuple(row[:4]): dict(zip(ATTRIBUTES + ("first_usage_date", "last_usage_date"), row[4:])) for row in dim}
    seen = defaultdict(set)
    wrong = []
    for row in simulator.truth(first, last):
        key = (provider_case.name, row["account_id"], row["resource_type"], row["resource_id"])
        seen[key].add(row["usage_date"])
        for attribute in ATTRIBUTES:
            if row.get(attribute) is not None and by_key[key][attribute] != row[attribute]:
                wrong.append((key, attribute, by_key[key][attribute], row[attribute]))
    assert not wrong, wrong[:3]
    for key, days in seen.items():
        assert (by_key[key]["first_usage_date"], by_key[key]["last_usage_date"]) == (min(days), max(days)), key


# -- Rafay's profiles ---------------------------------------------------------------------------
@pytest.mark.parametrize("provider_case", ["rafay"], indirect=True)
def test_rafay_profile_usage_equals_the_profile_endpoints(provider_case, simulator, destination):
    first, last = load_and_build("rafay", destination)
    rows = query(destination, "select usage_date, account_id, resource_type, resource_id, metric, quantity, "
                              "resource_name from analytics.rafay_profile_usage")
    actual = {tuple(row[:5]): float(row[5]) for row in rows}
    expected = simulator.profile_truth(first, last)
    assert_facts_equal(actual, {(r["usage_date"], r["account_id"], r["resource_type"], r["resource_id"], r["metric"]):
                                float(r["quantity"]) for r in expected})
    names = {tuple(row[:4]): row[6] for row in rows}
    assert all(names[(r["usage_date"], r["account_id"], r["resource_type"], r["resource_id"])] == r["resource_name"]
               for r in expected)
    facts = query(destination, "select count(*) from analytics.fct_daily_usage where resource_type like '%profile'")
    assert facts == [(0,)], "profile rollups in the facts"


@pytest.mark.parametrize("provider_case", ["rafay"], indirect=True)
def test_check_fails_naming_a_profile_whose_instances_do_not_add_up(provider_case, simulator, destination):
    first, last = load_and_build("rafay", destination)
    done = cli(destination, "check")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    day = first + dt.timedelta(days=1)
    tenant, profile, instance = query(
        destination,
        "select instance_organization_id, profile_id, instance_id from raw_rafay.compute_instance_usage "
        f"where usage_date = date '{day.isoformat()}' and raw_usage > 1 order by instance_id limit 1")[0]
    before = query(destination, "select quantity from analytics.rafay_profile_usage where resource_id = "
                                f"'{profile}' and account_id = '{tenant}' and usage_date = date '{day.isoformat()}' "
                                "and metric = 'usage_hours'")[0][0]
    statement = ("update raw_rafay.compute_instance_usage set raw_usage = raw_usage + 0.5 "
                 f"where instance_id = '{instance}' and usage_date = date '{day.isoformat()}'")
    if destination == "duckdb":
        import duckdb

        with duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"]) as con:
            con.execute(statement)
    else:
        import psycopg2

        with psycopg2.connect(os.environ["DESTINATION__POSTGRES__CREDENTIALS"]) as con, con.cursor() as cur:
            cur.execute(statement)
    models.build(config.destination(destination), day, day)
    done = cli(destination, "check")
    assert done.returncode == config.EXIT_FAILED, done.stdout + done.stderr
    line = next(line for line in done.stdout.splitlines() if "rafay_profiles_match_their_instances" in line)
    for part in (f"tenant={tenant}", f"profile_id={profile}", f"usage_date={day.isoformat()}", "metric=usage_hours",
                 f"profile_quantity={before}", f"instances_quantity={before + 0.5}"):
        assert part in line, (part, line)
    assert line.count("usage_hours") == 1 and "Traceback" not in done.stderr


# -- the warehouse's manners --------------------------------------------------------------------
KEYED = {
    "fct_daily_usage": ["usage_date", "provider", "account_id", "resource_type", "resource_id", "metric"],
    "rafay_profile_usage": ["usage_date", "account_id", "resource_type", "resource_id", "metric"],
    "dim_resource": ["provider", "account_id", "resource_type", "resource_id"],
    "focus": ["chargeperiodstart", "x_provider", "subaccountid", "resourcetype", "resourceid", "x_metric"],
}


@pytest.mark.parametrize("provider_case", ["adverity"], indirect=True)
def test_tables_have_their_grain_as_primary_key_comments_and_no_staging_clutter(provider_case, simulator, destination):
    load_and_build("adverity", destination)
    for table, grain in KEYED.items():
        keys = query(destination, "select kcu.column_name from information_schema.table_constraints tc "
                                  "join information_schema.key_column_usage kcu on kcu.constraint_name = tc.constraint_name "
                                  "and kcu.table_schema = tc.table_schema and kcu.table_name = tc.table_name "
                                  f"where tc.table_schema = 'analytics' and lower(tc.table_name) = '{table}' "
                                  "and tc.constraint_type = 'PRIMARY KEY' order by kcu.ordinal_position")
        # DuckDB holds a key's index in memory: there only the small tables built whole have one
        # (not focus, a row per priced fact row)
        keyed = destination == "postgres" or table == "dim_resource"
        assert [name.lower() for (name,) in keys] == (grain if keyed else []), table
        nullable = query(destination, "select column_name, is_nullable from information_schema.columns "
                                      f"where table_schema = 'analytics' and lower(table_name) = '{table}'")
        assert {name.lower() for name, is_nullable in nullable if is_nullable == "NO"} == set(grain), table
    if destination == "postgres":
        import psycopg2

        with psycopg2.connect(os.environ["DESTINATION__POSTGRES__CREDENTIALS"]) as con, con.cursor() as cur:
            with pytest.raises(psycopg2.errors.UniqueViolation):
                cur.execute("insert into analytics.fct_daily_usage select * from analytics.fct_daily_usage limit 1")
        indexes = query(destination, "select indexdef from pg_indexes where schemaname = 'analytics' "
                                     "and tablename = 'fct_daily_usage'")
        assert any(definition.endswith("(usage_date)") for (definition,) in indexes), indexes
        comments = dict(query(destination, "select a.attname, col_description(a.attrelid, a.attnum) from pg_attribute a "
                                           "where a.attrelid = 'analytics.fct_daily_usage'::regclass and a.attnum > 0"))
    else:
        comments = dict(query(destination, "select column_name, comment from duckdb_columns() "
                                           "where schema_name = 'analytics' and table_name = 'fct_daily_usage'"))
    dictionary = models.dictionary()["fct_daily_usage"]
    assert comments == {column: dictionary[column] for column in models.FACT_COLUMNS}
    schemas = {name for (name,) in query(destination, "select schema_name from information_schema.schemata")}
    assert "raw_adverity" in schemas and not [name for name in schemas if name.endswith("_staging")], schemas


def test_every_analytics_table_is_in_the_data_dictionary():
    dictionary = models.dictionary()
    for model in models.discover():
        if model.kind == "table":
            assert model.name in dictionary, f"docs/data_dictionary.md has no section for analytics.{model.name}"


@pytest.mark.parametrize("provider_case", ["rafay"], indirect=True)
def test_a_changed_definition_remakes_the_table_from_the_raw_data(provider_case, simulator, destination):
    """A warehouse built by an earlier definition (here: the facts that held Rafay's profile
    rollups) is made again whole by the next build, aside, and swapped in."""
    first, last = load_and_build("rafay", destination)
    expected = query(destination, "select * from analytics.fct_daily_usage order by 1, 2, 3, 4, 5, 6")
    statement = [
        "insert into analytics.fct_daily_usage select usage_date, provider, account_id, account_name, resource_type, "
        "resource_id, resource_name, metric, quantity, unit from analytics.rafay_profile_usage",
        "update analytics.model_versions set digest = 'earlier' where model = 'fct_daily_usage'",
    ]
    if destination == "duckdb":
        import duckdb

        with duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"]) as con:
            for sql in statement:
                con.execute(sql)
    else:
        import psycopg2

        with psycopg2.connect(os.environ["DESTINATION__POSTGRES__CREDENTIALS"]) as con, con.cursor() as cur:
            for sql in statement:
                cur.execute(sql)
    report = models.build_pending(config.destination(destination))
    assert report.remade == ["fct_daily_usage"] and not report.errors
    assert query(destination, "select * from analytics.fct_daily_usage order by 1, 2, 3, 4, 5, 6") == expected
    assert models.build_pending(config.destination(destination)).remade == []


# -- Adverity's months --------------------------------------------------------------------------
@pytest.mark.parametrize("provider_case", ["adverity"], indirect=True)
def test_adverity_monthly_usage_holds_the_apis_month_figures(provider_case, simulator, destination):
    """Every month the loaded days touch, as the API counts it (unique rows over the month, not
    the sum of its days), through the last day it covers."""
    first, last = load_and_build("adverity", destination)
    rows = query(destination, "select usage_month, account_id, resource_id, metric, quantity, through_date, unit "
                              "from analytics.adverity_monthly_usage")
    actual = {tuple(row[:4]): (float(row[4]), row[5]) for row in rows}
    expected = {}
    for month in simulator.monthly_truth(first, last):
        for metric in ("unique_rows", "total_rows"):
            key = (month["usage_month"], month["workspace_id"], month["datastream_key"], metric)
            expected[key] = (float(month[metric]), month["through_date"])
    assert actual == expected
    assert {row[6] for row in rows} == {"rows"}
