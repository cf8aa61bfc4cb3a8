"""The same checks for every provider, against its simulator over real HTTP."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.load import load_provider
from tests.conftest import assert_facts_equal, facts, query, yesterday
from tests.providers import truth_rows

WINDOW_DAYS = 5


def window():
    last = yesterday()
    return last - dt.timedelta(days=WINDOW_DAYS - 1), last


def raw_snapshot(destination, provider_case):
    """Every raw table's rows without dlt's bookkeeping columns or per-run timestamps."""
    volatile = set(provider_case.extra.get("volatile_columns", ())) | {"_dlt_load_id", "_dlt_id"}
    snapshot = {}
    for table in provider_case.tables:
        columns = [
            name
            for (name,) in query(
                destination,
                "select column_name from information_schema.columns "
                f"where table_schema = 'raw_{provider_case.name}' and table_name = '{table}' order by column_name",
            )
            if name not in volatile
        ]
        column_list = ", ".join(f'"{c}"' for c in columns)
        snapshot[table] = sorted(
            query(destination, f"select {column_list} from raw_{provider_case.name}.{table}"), key=repr
        )
    return snapshot


def test_full_load_pages_to_the_end_and_equals_truth(provider_case, simulator, destination):
    first, last = window()
    result = load_provider(provider_case.name, destination, start_date=first)
    assert result.status == "ok", result.error
    provider_case.assert_requests(simulator.requests, first, last)
    assert_facts_equal(facts(destination, provider_case), truth_rows(simulator, first, last), provider_case.tolerance)
    assert result.rows > 0
    assert result.days == {first + dt.timedelta(days=i) for i in range(WINDOW_DAYS)}


def test_keys_are_unique_and_not_null(provider_case, simulator, destination):
    first, _ = window()
    assert load_provider(provider_case.name, destination, start_date=first).status == "ok"
    for table, key in provider_case.tables.items():
        dataset = f"raw_{provider_case.name}"
        (total, distinct_keys), = query(
            destination,
            f"select count(*), (select count(*) from (select distinct {', '.join(key)} from {dataset}.{table}) k) "
            f"from {dataset}.{table}",
        )
        assert total > 0, f"{table} is empty"
        assert total == distinct_keys, f"{table}: {total - distinct_keys} duplicate keys"
        nulls = " or ".join(f"{c} is null" for c in key)
        (null_rows,), = query(destination, f"select count(*) from {dataset}.{table} where {nulls}")
        assert null_rows == 0, f"{table}: {null_rows} rows with a null key"


def test_second_nightly_run_adds_nothing_and_changes_nothing(provider_case, simulator):
    first, last = window()
    assert load_provider(provider_case.name, start_date=first).status == "ok"
    before = facts("duckdb", provider_case)
    simulator.reset_log()
    second = load_provider(provider_case.name, start_date=first)
    assert second.status == "ok", second.error
    after = facts("duckdb", provider_case)
    assert_facts_equal(after, before, provider_case.tolerance)
    # the second run only re-read the lookback window, not the whole history
    assert second.days and min(second.days) >= last - dt.timedelta(days=2), sorted(second.days)


def test_same_window_loaded_twice_gives_identical_tables(provider_case, simulator):
    first, last = window()
    assert load_provider(provider_case.name, start_date=first, end_date=last).status == "ok"
    once = raw_snapshot("duckdb", provider_case)
    assert load_provider(provider_case.name, start_date=first, end_date=last).status == "ok"
    assert raw_snapshot("duckdb", provider_case) == once


def test_bad_credentials_fail_fast_with_a_clear_message(provider_case, simulator, monkeypatch):
    monkeypatch.setenv(provider_case.key_setting, "wrong-key-0000")
    simulator.reset_log()
    first, _ = window()
    result = load_provider(provider_case.name, start_date=first)
    assert result.status == "failed"
    assert provider_case.key_setting in result.error, result.error
    assert "\n" not in result.error and "wrong-key-0000" not in result.error
    assert len(simulator.requests) <= 2, f"{len(simulator.requests)} requests: a retry storm"
