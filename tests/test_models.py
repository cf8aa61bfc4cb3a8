"""The SQL models: fct_daily_usage exact against the simulators, incremental by day, safe to fail."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import checks, config, models
from pipelines.load import load_provider
from tests.conftest import assert_facts_equal, query, yesterday
from tests.providers import truth_rows

ROOT = Path(__file__).resolve().parent.parent
WINDOW_DAYS = 4
FACT_GRAIN = "usage_date, provider, account_id, resource_type, resource_id, metric"


def window():
    last = yesterday()
    return last - dt.timedelta(days=WINDOW_DAYS - 1), last


def fct(destination, where="1 = 1"):
    rows = query(
        destination,
        f"select usage_date, provider, account_id, resource_type, resource_id, metric, quantity, unit "
        f"from analytics.fct_daily_usage where {where} order by {FACT_GRAIN}",
    )
    return [tuple(row) for row in rows]


def test_fact_table_equals_truth(provider_case, simulator, destination):
    first, last = window()
    assert load_provider(provider_case.name, destination, start_date=first).status == "ok"
    report = models.build(config.destination(destination))
    assert "fct_daily_usage" in report.models
    actual = {}
    for usage_date, provider, account_id, resource_type, resource_id, metric, quantity, unit in fct(destination):
        assert provider == provider_case.name
        assert unit, f"{metric} has no unit"
        actual[(usage_date, account_id, resource_type, resource_id, metric)] = float(quantity)
    assert_facts_equal(actual, truth_rows(simulator, first, last), provider_case.tolerance)


@pytest.fixture
def loaded(simulator, provider_case):
    """One provider loaded into DuckDB and the models built."""
    first, last = window()
    assert load_provider(provider_case.name, start_date=first).status == "ok"
    models.build(config.destination("duckdb"))
    return first, last


@pytest.mark.parametrize("provider_case", ["adverity"], indirect=True)
def test_rebuilding_a_range_twice_gives_identical_tables(loaded):
    first, last = loaded
    full = fct("duckdb")
    dest = config.destination("duckdb")
    models.build(dest, first + dt.timedelta(days=1), last)
    once = fct("duckdb")
    models.build(dest, first + dt.timedelta(days=1), last)
    assert fct("duckdb") == once == full


@pytest.mark.parametrize("provider_case", ["adverity"], indirect=True)
def test_rebuilding_one_day_leaves_every_other_day_untouched(loaded):
    import duckdb

    first, last = loaded
    day = first + dt.timedelta(days=1)
    before = fct("duckdb")
    path = config.destination("duckdb").location
    with duckdb.connect(path) as con:  # the provider revised two days; only one is rebuilt
        con.execute("update raw_adverity.usage set total_rows = total_rows + 1000 where usage_date in (?, ?)", [day, last])
    models.build(config.destination("duckdb"), day, day)
    after = fct("duckdb")
    rebuilt = [r for r in after if r[0] == day]
    assert rebuilt and all(
        new[6] == old[6] + 1000 for new, old in zip(rebuilt, [r for r in before if r[0] == day]) if new[5] == "total_rows"
    )
    assert [r for r in after if r[0] != day] == [r for r in before if r[0] != day]


@pytest.mark.parametrize("provider_case", ["adverity"], indirect=True)
def test_a_failing_model_leaves_the_previous_table_intact(loaded, tmp_path, monkeypatch):
    before = fct("duckdb")
    broken = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", broken)
    stg = broken / "staging" / "stg_adverity__usage.sql"
    stg.write_text(stg.read_text().replace("total_rows", "total_rowz", 1))
    report = models.build(config.destination("duckdb"), models=models.discover(broken))
    assert list(report.failed) == ["adverity"] and "stg_adverity__usage" in report.failed["adverity"]
    assert fct("duckdb") == before
    # and the command says so: non-zero exit naming the model, no traceback
    monkeypatch.setenv("USAGE_SQL_DIR", str(broken))
    done = subprocess.run([sys.executable, "-m", "pipelines", "models"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == config.EXIT_FAILED
    assert "stg_adverity__usage" in done.stderr and "Traceback" not in done.stderr
    assert fct("duckdb") == before


@pytest.mark.parametrize("provider_case", ["adverity"], indirect=True)
@pytest.mark.parametrize(
    "corruption, test_name",
    [
        ("insert into analytics.fct_daily_usage select * from analytics.fct_daily_usage limit 1", "grain_unique"),
        ("update analytics.fct_daily_usage set quantity = -1 where rowid = (select min(rowid) from analytics.fct_daily_usage)", "quantity_not_negative"),
        ("update analytics.fct_daily_usage set unit = null where rowid = (select min(rowid) from analytics.fct_daily_usage)", "unit_present"),
        ("update analytics.fct_daily_usage set quantity = 'NaN' where rowid = (select min(rowid) from analytics.fct_daily_usage)", "quantity_finite"),
        ("update analytics.fct_daily_usage set quantity = 'Infinity' where rowid = (select min(rowid) from analytics.fct_daily_usage)", "quantity_finite"),
    ],
)
def test_model_tests_catch_bad_rows(loaded, corruption, test_name):
    import duckdb

    dest = config.destination("duckdb")
    assert models.test_all(dest) == []
    with duckdb.connect(dest.location) as con:
        con.execute(corruption)
    failures = models.test_all(dest)
    assert any(test_name in failure for failure in failures), failures
    done = subprocess.run([sys.executable, "-m", "pipelines", "check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == config.EXIT_FAILED and test_name in done.stdout


@pytest.mark.parametrize("provider_case", ["adverity"], indirect=True)
@pytest.mark.parametrize("corruption", [
    "update analytics.fct_daily_usage set resource_id = null where rowid = (select min(rowid) from analytics.fct_daily_usage)",
    "insert into analytics.dim_resource select * from analytics.dim_resource limit 1",
])
def test_the_warehouse_refuses_rows_that_break_a_grain(loaded, corruption):
    """The grain is NOT NULL, and the primary key of the tables built whole: a null in it, or a
    second dimension row of one key, never gets in, whoever writes. (A second fact row of one
    key is the grain test's: see test_model_tests_catch_bad_rows.)"""
    import duckdb

    dest = config.destination("duckdb")
    with duckdb.connect(dest.location) as con:
        before = con.execute("select count(*) from analytics.fct_daily_usage").fetchone()
        with pytest.raises(duckdb.ConstraintException):
            con.execute(corruption)
        assert con.execute("select count(*) from analytics.fct_daily_usage").fetchone() == before


@pytest.mark.parametrize("provider_case", ["adverity"], indirect=True)
def test_check_reports_a_provider_never_loaded(loaded, monkeypatch):
    dest = config.destination("duckdb")
    assert checks.run_checks(dest, ["adverity"]) == []
    monkeypatch.setenv("SOURCES__NEON__API_KEY", "configured-but-never-run")
    monkeypatch.setenv("SOURCES__NEON__ORG_ID", "org-never-run")
    problems = checks.run_checks(dest, ["adverity", "neon"])
    assert problems == ["completeness: neon has never been loaded into this warehouse; run `make nightly`"]


@pytest.mark.parametrize("provider_case", ["adverity"], indirect=True)
@pytest.mark.parametrize("view", ["staging/stg_adverity__usage", "intermediate/int_adverity__usage"])
def test_a_view_failing_its_tests_keeps_its_providers_facts(loaded, tmp_path, monkeypatch, view):
    before = fct("duckdb")
    broken = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", broken)
    tests = broken / f"{view}.tests.sql"
    tests.write_text(tests.read_text().replace("having count(*) > 1", "having count(*) > 0"))
    name = view.split("/")[1]
    report = models.build(config.destination("duckdb"), models=models.discover(broken))
    assert list(report.failed) == ["adverity"] and f"{name} failed" in report.failed["adverity"]
    assert "key_unique" in report.failed["adverity"] or "grain_unique" in report.failed["adverity"]
    assert name not in report.models
    assert fct("duckdb") == before
    monkeypatch.setenv("USAGE_SQL_DIR", str(broken))
    done = subprocess.run([sys.executable, "-m", "pipelines", "models"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == config.EXIT_FAILED and name in done.stderr
    assert fct("duckdb") == before


@pytest.mark.parametrize("provider_case", ["adverity"], indirect=True)
def test_a_staging_view_whose_columns_change_rebuilds_the_views_over_it(provider_case, simulator, destination, tmp_path):
    first, _ = window()
    assert load_provider("adverity", destination, start_date=first).status == "ok"
    dest = config.destination(destination)
    assert not models.build(dest).failed
    before = fct(destination)
    changed = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", changed)
    stg = changed / "staging" / "stg_adverity__usage.sql"
    stg.write_text(stg.read_text().replace("    select\n", "    select\n        cast(1 as integer) as schema_version,\n", 1))
    report = models.build(dest, models=models.discover(changed))
    assert not report.failed and {"stg_adverity__usage", "int_adverity__usage", "fct_daily_usage"} <= set(report.models)
    assert fct(destination) == before


def test_dependencies_and_providers_come_from_the_sql(tmp_path):
    for folder, name, sql in [
        ("staging", "stg_a__x", "select cast(x as integer) as x from raw_a.x"),
        ("staging", "stg_b__y", "select cast(y as integer) as y from raw_b.y"),
        ("intermediate", "int_ab", "select x from analytics.stg_a__x union all select y from analytics.stg_b__y"),
        ("marts", "fct_ab", "select x from analytics.int_ab"),
    ]:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / f"{name}.sql").write_text(sql)
    found = models.discover(tmp_path)
    assert [model.name for model in found] == ["stg_a__x", "stg_b__y", "int_ab", "fct_ab"]
    assert [(model.kind, model.providers) for model in found][2:] == [("view", ["a", "b"]), ("table", ["a", "b"])]
    assert found[3].depends_on == ["int_ab"]
    (tmp_path / "intermediate" / "int_ba.sql").write_text("select x from analytics.int_ab")
    (tmp_path / "intermediate" / "int_ab.sql").write_text("select x from analytics.int_ba")
    with pytest.raises(models.ModelError, match="circular reference"):
        models.discover(tmp_path)
