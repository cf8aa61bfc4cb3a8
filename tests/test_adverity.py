"""Adverity's quirks: paging stopped by `count`, today never asked for, Token or Bearer keys,
null datastreams kept, `next`/`previous` links optional, one call at a time; the monthly figures
of every month a run's days touch, each month read whole and replaced whole."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import threading
from typing import Any, Dict, List, Optional

import dlt
import duckdb
import pyarrow as pa
import pytest
import requests

from pipelines import config, models
from pipelines.load import load_provider, pipeline_for
from simulators.adverity import AdveritySimulator
from simulators.base import Fault
from sources import windows
from sources.adverity import BATCH_ROWS, adverity_source, helpers, one_call_at_a_time, settings
from sources.http import ProviderClient, ProviderError
from tests.cases.adverity import CASE, FACTS_SQL, daily, monthly
from tests.conftest import query
from tests.providers import truth_rows

ONE_DAY = dt.timedelta(days=1)


# -- helpers ----------------------------------------------------------------------------------
@pytest.fixture
def sim():
    """A simulator big enough for several pages of 100 rows over a week, with a little latency
    so that overlapping calls would show in `max_concurrency`."""
    simulator = AdveritySimulator(api_key="adv-key-1234", seed=3, latency_ms=2, n_workspaces=5, datastreams_per_workspace=9)
    with simulator:
        yield simulator


def configure(monkeypatch, simulator: AdveritySimulator, **settings_env: str) -> None:
    monkeypatch.setenv(settings.API_KEY_SETTING, simulator.api_key)
    monkeypatch.setenv(settings.BASE_URL_SETTING, simulator.base_url)
    for name, value in settings_env.items():
        monkeypatch.setenv(f"SOURCES__ADVERITY__{name.upper()}", value)


def run(**source_args: Any):
    pipeline = dlt.pipeline(pipeline_name="adverity_usage", destination="duckdb", dataset_name="raw_adverity")
    return pipeline.run(adverity_source(**source_args), loader_file_format="parquet")


def warehouse(sql: str) -> List[tuple]:
    with duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"], read_only=True) as con:
        return con.execute(sql).fetchall()


def loaded_facts() -> Dict[tuple, float]:
    return {
        (day, account, rtype, rid, metric): float(quantity)
        for day, account, rtype, rid, metric, quantity in warehouse(FACTS_SQL.format(dataset="raw_adverity"))
    }


def last_week():
    last = windows.last_complete_day()
    return last - dt.timedelta(days=6), last


def item(**fields: Any) -> Dict[str, Any]:
    row = {
        "date": "2026-03-02",
        "workspace_id": "ws-1",
        "workspace_name": "Acme",
        "datastream_id": "ds-1",
        "unique_rows": 7,
        "total_rows": 10,
    }
    row.update(fields)
    return row


class FakeResponse:
    def __init__(self, body: Dict[str, Any]):
        self.body = body

    def json(self) -> Dict[str, Any]:
        return self.body


# -- pure: flattening ---------------------------------------------------------------------------
def test_flatten_keeps_null_datastream_and_adds_a_non_null_key():
    rows = helpers.flatten_usage_page([item(), item(datastream_id=None, unique_rows=0, total_rows=3)])
    assert rows == [
        {
            "usage_date": dt.date(2026, 3, 2),
            "workspace_id": "ws-1",
            "workspace_name": "Acme",
            "datastream_id": "ds-1",
            "datastream_key": "ds-1",
            "datastream_name": None,
            "unique_rows": 7,
            "total_rows": 10,
        },
        {
            "usage_date": dt.date(2026, 3, 2),
            "workspace_id": "ws-1",
            "workspace_name": "Acme",
            "datastream_id": None,
            "datastream_key": "unattributed",
            "datastream_name": None,
            "unique_rows": 0,
            "total_rows": 3,
        },
    ]


def test_flatten_ignores_new_fields_and_tolerates_a_missing_name_and_numeric_strings():
    (row,) = helpers.flatten_usage_page(
        [{k: v for k, v in item(connector="facebook", total_rows="12", unique_rows=5.0).items() if k != "workspace_name"}]
    )
    assert row["workspace_name"] is None
    assert (row["unique_rows"], row["total_rows"]) == (5, 12)
    assert "connector" not in row


def test_flatten_keeps_a_datastream_name_should_the_api_send_one():
    (row,) = helpers.flatten_usage_page([item(datastream_name="Facebook Ads")])
    assert row["datastream_name"] == "Facebook Ads"


def test_flatten_of_an_empty_page_is_empty():
    assert helpers.flatten_usage_page([]) == []
    assert helpers.usage_table([]).num_rows == 0


@pytest.mark.parametrize("field", ["date", "workspace_id", "datastream_id", "unique_rows", "total_rows"])
def test_flatten_names_a_missing_required_field(field):
    broken = {k: v for k, v in item().items() if k != field}
    with pytest.raises(ProviderError) as failure:
        helpers.flatten_usage_page([broken])
    message = str(failure.value)
    assert field in message and "adverity" in message and settings.USAGE_PATH in message
    assert "\n" not in message


@pytest.mark.parametrize("bad", [{"total_rows": None}, {"unique_rows": 1.5}, {"date": "March 2nd"}, {"workspace_id": None}])
def test_flatten_rejects_malformed_values(bad):
    with pytest.raises(ProviderError):
        helpers.flatten_usage_page([item(**bad)])


def test_usage_table_has_the_explicit_schema():
    table = helpers.usage_table(helpers.flatten_usage_page([item(), item(datastream_id=None)]))
    assert table.schema == settings.USAGE_SCHEMA
    assert table.schema.field("usage_date").type == pa.date32()
    for column in settings.USAGE_PRIMARY_KEY:
        assert not table.schema.field(column).nullable
        assert table.column(column).null_count == 0
    assert table.column("datastream_id").null_count == 1


# -- pure: request parameters and auth -------------------------------------------------------
def test_params_never_ask_for_today_even_when_the_window_reaches_it():
    now = dt.datetime(2026, 3, 10, 23, 59, 59, tzinfo=dt.timezone.utc)
    params = helpers.usage_params(windows.Window(dt.date(2026, 3, 1), dt.date(2026, 3, 12)), now)
    assert params == {"granularity": "daily", "date_from": "2026-03-01", "date_to": "2026-03-09", "page_size": 100}


D = dt.date


@pytest.mark.parametrize(
    "first, last, today, months",
    [
        (D(2026, 3, 14), D(2026, 3, 16), D(2026, 3, 17), (D(2026, 3, 1), D(2026, 3, 16))),  # month to date
        (D(2026, 2, 25), D(2026, 3, 2), D(2026, 3, 3), (D(2026, 2, 1), D(2026, 3, 2))),  # across a boundary
        (D(2026, 1, 10), D(2026, 2, 10), D(2026, 3, 20), (D(2026, 1, 1), D(2026, 2, 28))),  # past months whole
        (D(2028, 2, 3), D(2028, 2, 3), D(2028, 3, 5), (D(2028, 2, 1), D(2028, 2, 29))),  # a leap February
        (D(2026, 12, 30), D(2026, 12, 31), D(2027, 1, 1), (D(2026, 12, 1), D(2026, 12, 31))),
    ],
)
def test_the_monthly_range_covers_every_month_the_days_touch_whole(first, last, today, months):
    now = dt.datetime.combine(today, dt.time(0, 5), tzinfo=dt.timezone.utc)
    assert helpers.months_of(windows.Window(first, last), now) == windows.Window(*months)
    assert helpers.monthly_params(windows.Window(*months)) == {
        "granularity": "monthly", "date_from": months[0].isoformat(), "date_to": months[1].isoformat(), "page_size": 100,
    }


def test_flatten_monthly_page_gives_each_month_its_through_date():
    months = windows.Window(D(2026, 2, 1), D(2026, 3, 16))
    fetched_at = dt.datetime(2026, 3, 17, 6, tzinfo=dt.timezone.utc)
    rows = helpers.flatten_monthly_page(
        [
            item(date="2026-02-01", unique_rows=40, total_rows=90),
            item(date="2026-03", datastream_id=None, granularity="monthly"),  # the month alone, a new field
            item(date="2026-01-01"),  # a month not asked for
        ],
        months,
        fetched_at,
    )
    assert rows == [
        {"usage_month": D(2026, 2, 1), "workspace_id": "ws-1", "workspace_name": "Acme", "datastream_id": "ds-1",
         "datastream_key": "ds-1", "unique_rows": 40, "total_rows": 90, "through_date": D(2026, 2, 28),
         "fetched_at": fetched_at},
        {"usage_month": D(2026, 3, 1), "workspace_id": "ws-1", "workspace_name": "Acme", "datastream_id": None,
         "datastream_key": "unattributed", "unique_rows": 7, "total_rows": 10, "through_date": D(2026, 3, 16),
         "fetched_at": fetched_at},
    ]
    table = helpers.usage_table(rows, settings.MONTHLY_SCHEMA)
    assert table.schema == settings.MONTHLY_SCHEMA and "usage_date" not in table.column_names
    with pytest.raises(ProviderError, match="'total_rows'"):
        helpers.flatten_monthly_page([item(date="2026-03-01", total_rows=None)], months, fetched_at)


@pytest.mark.parametrize("scheme,expected", [("Token", "Token"), ("Bearer", "Bearer"), ("bearer", "Bearer"), (" token ", "Token")])
def test_auth_header_per_scheme(scheme, expected):
    assert helpers.auth_header("k", scheme) == {"Authorization": f"{expected} k"}


@pytest.mark.parametrize("scheme", ["Basic", "", "Api-Key"])
def test_unknown_auth_scheme_names_the_setting(scheme):
    with pytest.raises(ProviderError) as failure:
        helpers.auth_header("secret-key", scheme)
    assert settings.AUTH_SCHEME_SETTING in str(failure.value)
    assert "secret-key" not in str(failure.value)


# -- pure: the paginator -----------------------------------------------------------------------
def walk(paginator: helpers.CountPaginator, bodies: List[Dict[str, Any]]) -> List[int]:
    """The page numbers the paginator asks for, fed one body per page."""
    request = requests.Request("GET", "http://x", params={})
    paginator.init_request(request)
    asked = []
    for body in bodies:
        asked.append(request.params["page"])
        paginator.update_state(FakeResponse(body), body["items"])
        paginator.update_request(request)
        if not paginator.has_next_page:
            break
    return asked


def test_paginator_stops_by_count_not_by_links():
    full = [{}] * 100
    # a `next` link on the last page (by count) is not followed
    bodies = [
        {"count": 250, "next": "http://x?page=2", "items": full},
        {"count": 250, "next": None, "items": full},  # no link, but count says there is more
        {"count": 250, "next": "http://x?page=4", "items": [{}] * 50},
        {"count": 250, "items": full},
    ]
    assert walk(helpers.CountPaginator(100), bodies) == [1, 2, 3]


def test_paginator_stops_on_an_exact_multiple_and_on_an_empty_page():
    assert walk(helpers.CountPaginator(100), [{"count": 200, "items": [{}] * 100}] * 3) == [1, 2]
    assert walk(helpers.CountPaginator(100), [{"count": 0, "items": []}, {"count": 0, "items": []}]) == [1]
    # count claims more than the API delivers: the empty page ends it
    assert walk(helpers.CountPaginator(100), [{"count": 500, "items": [{}] * 100}, {"count": 500, "items": []}]) == [1, 2]


def test_paginator_follows_short_pages_of_an_instance_that_caps_page_size():
    # asked for 100 a page, served 40: only `count` (or an empty page) ends the paging
    capped = [{"count": 100, "items": [{}] * 40}, {"count": 100, "items": [{}] * 40}, {"count": 100, "items": [{}] * 20}]
    assert walk(helpers.CountPaginator(100), capped + [{"count": 100, "items": []}]) == [1, 2, 3]


@pytest.mark.parametrize("body", [{"items": []}, {"count": "many", "items": []}, {"count": 3}])
def test_paginator_rejects_a_page_without_count_or_items(body):
    with pytest.raises(ProviderError) as failure:
        walk(helpers.CountPaginator(100), [{"items": None, **body}])
    assert "count" in str(failure.value) or "items" in str(failure.value)


# -- over HTTP ------------------------------------------------------------------------------
def test_paging_reaches_the_last_row_and_stops_by_count(sim, monkeypatch):
    first, last = last_week()
    count = len(sim.rows(first, last))
    assert count > 2 * settings.PAGE_SIZE, "the fixture must span several pages"
    configure(monkeypatch, sim)
    run(start_date=first, end_date=last)

    pages = [int(r.one("page")) for r in daily(sim.requests)]
    assert pages == list(range(1, math.ceil(count / settings.PAGE_SIZE) + 1))
    assert all(r.one("page_size") == "100" for r in sim.requests)
    assert all((r.one("date_from"), r.one("date_to")) == (first.isoformat(), last.isoformat()) for r in daily(sim.requests))
    assert warehouse("select count(*) from raw_adverity.usage") == [(count,)]
    assert loaded_facts() == truth_rows(sim, first, last)
    CASE.assert_requests(sim.requests, first, last)
    assert len(sim.requests) == CASE.min_requests(sim, first, last)


def test_one_call_at_a_time(sim, monkeypatch):
    configure(monkeypatch, sim)
    run(start_date=last_week()[0])
    assert len(sim.requests) > 1
    assert sim.max_concurrency == 1


def test_a_long_range_is_one_window_paged_to_the_end(monkeypatch):
    with AdveritySimulator(api_key="k", n_workspaces=2, datastreams_per_workspace=3) as sim:
        configure(monkeypatch, sim)
        last = windows.last_complete_day()
        first = last - dt.timedelta(days=69)
        run(start_date=first, end_date=last)
        CASE.assert_requests(sim.requests, first, last)
        # cut into pieces, each piece could end on a short page: one window is the fewest requests
        assert {(r.one("date_from"), r.one("date_to")) for r in daily(sim.requests)} == {(str(first), str(last))}
        assert len(daily(sim.requests)) > 1
        # and the three months or more the 70 days touch are one monthly range too
        assert {(r.one("date_from"), r.one("date_to")) for r in monthly(sim.requests)} == {(str(first.replace(day=1)), str(last))}
        assert len(sim.requests) == CASE.min_requests(sim, first, last)
        assert loaded_facts() == truth_rows(sim, first, last)


def test_an_instance_with_smaller_pages_still_loads_every_row(monkeypatch):
    with AdveritySimulator(api_key="k", n_workspaces=4, datastreams_per_workspace=8, max_page_size=40) as sim:
        configure(monkeypatch, sim)
        first, last = last_week()
        run(start_date=first, end_date=last)
        count = len(sim.rows(first, last))
        assert len(daily(sim.requests)) == math.ceil(count / 40)
        assert len(monthly(sim.requests)) == math.ceil(len(sim.monthly_rows(first.replace(day=1), last)) / 40)
        assert len(sim.requests) == CASE.min_requests(sim, first, last)
        assert all(r.one("page_size") == "100" for r in sim.requests)
        assert loaded_facts() == truth_rows(sim, first, last)


def test_never_asks_for_today(sim, monkeypatch):
    today = windows.utc_today()
    yesterday = today - ONE_DAY
    configure(monkeypatch, sim)
    # a backfill that names today, then two nightly runs (the second re-reads the lookback days)
    run(start_date=yesterday - dt.timedelta(days=3), end_date=today)
    run(start_date=yesterday - dt.timedelta(days=3))
    run(start_date=yesterday - dt.timedelta(days=3))
    assert len(sim.requests) >= 3
    assert all(dt.date.fromisoformat(r.one("date_to")) <= yesterday for r in sim.requests)
    assert warehouse("select max(usage_date) from raw_adverity.usage") == [(yesterday,)]

    # a first run starting today has no complete day to load: it asks nothing at all
    sim.reset_log()
    pipeline = dlt.pipeline(pipeline_name="adverity_today", destination="duckdb", dataset_name="raw_adverity_today")
    pipeline.run(adverity_source(start_date=today), loader_file_format="parquet")
    assert sim.requests == []


@pytest.mark.parametrize("scheme", [None, "Token", "Bearer"])
def test_auth_header_follows_the_configured_scheme(sim, monkeypatch, scheme):
    configure(monkeypatch, sim, **({"auth_scheme": scheme} if scheme else {}))
    run(start_date=windows.last_complete_day())
    assert sim.auth_schemes and set(sim.auth_schemes) == {scheme or "Token"}
    assert all(r.authorized for r in sim.requests)


def test_an_unknown_auth_scheme_fails_before_any_request(sim, monkeypatch):
    configure(monkeypatch, sim, auth_scheme="Basic")
    with pytest.raises(ProviderError) as failure:
        adverity_source()
    assert settings.AUTH_SCHEME_SETTING in str(failure.value)
    assert sim.requests == []


def test_a_missing_base_url_names_the_setting(monkeypatch):
    monkeypatch.setenv(settings.API_KEY_SETTING, "k")
    with pytest.raises(ProviderError) as failure:
        adverity_source()
    assert settings.BASE_URL_SETTING in str(failure.value)
    assert settings.REQUIRED_SETTINGS == ("api_key", "base_url")
    assert settings.DEFAULT_BASE_URL is None


def test_a_wrong_key_fails_at_once_and_names_the_setting(sim, monkeypatch):
    configure(monkeypatch, sim)
    monkeypatch.setenv(settings.API_KEY_SETTING, "wrong-key-0000")
    with pytest.raises(Exception) as failure:
        run(start_date=windows.last_complete_day())
    assert settings.API_KEY_SETTING in str(failure.value)
    assert "wrong-key-0000" not in str(failure.value)
    assert len(sim.requests) == 1


def test_null_datastream_is_kept_with_the_unattributed_key(sim, monkeypatch):
    first, last = last_week()
    expected = sum(1 for row in sim.rows(first, last) if row["datastream_id"] is None)
    assert expected > 0
    configure(monkeypatch, sim)
    run(start_date=first, end_date=last)
    assert warehouse(
        "select count(*) from raw_adverity.usage where datastream_id is null and datastream_key = 'unattributed'"
    ) == [(expected,)]
    assert warehouse("select count(*) from raw_adverity.usage where datastream_key is null") == [(0,)]
    assert warehouse(
        "select count(*) from raw_adverity.usage where datastream_id is not null and datastream_key <> datastream_id"
    ) == [(0,)]


@pytest.mark.parametrize("links", [True, False])
def test_next_and_previous_links_present_or_absent(monkeypatch, links):
    with AdveritySimulator(api_key="k", n_workspaces=4, datastreams_per_workspace=8, links=links) as sim:
        first, last = last_week()
        body = requests.get(
            sim.base_url + settings.USAGE_PATH,
            params={"date_from": first.isoformat(), "date_to": last.isoformat(), "page": 2, "page_size": 100},
            headers={"Authorization": "Token k"},
        ).json()
        assert ("next" in body and "previous" in body) is links
        configure(monkeypatch, sim)
        run(start_date=first, end_date=last)
        # the request above sent no granularity: only the source's own are daily
        assert len(daily(sim.requests)) == math.ceil(len(sim.rows(first, last)) / 100)
        assert loaded_facts() == truth_rows(sim, first, last)


def test_a_page_without_count_is_a_clear_error(sim, monkeypatch):
    configure(monkeypatch, sim)
    sim.inject(Fault(kind="raw", raw=json.dumps({"items": []}).encode()))
    with pytest.raises(Exception) as failure:
        run(start_date=windows.last_complete_day())
    assert "adverity" in str(failure.value) and "'count'" in str(failure.value)


# -- the monthly figures, over HTTP into both warehouses ------------------------------------------
MONTHLY_FIELDS = ("usage_month", "workspace_id", "workspace_name", "datastream_id", "datastream_key",
                  "unique_rows", "total_rows", "through_date")
MONTHLY_SIZE = {"n_workspaces": 10, "datastreams_per_workspace": 12}
"""About 125 items a month: a three-month range takes four monthly pages."""


class Clock:
    """One settable "now" for the simulator and the pipeline (`USAGE_NOW`): the tests choose
    where in a month a run falls."""

    def __init__(self, monkeypatch, today: dt.date):
        self.monkeypatch = monkeypatch
        self.set(today)

    def set(self, today: dt.date) -> None:
        self.now = dt.datetime.combine(today, dt.time(6), tzinfo=dt.timezone.utc)
        self.monkeypatch.setenv("USAGE_NOW", self.now.isoformat())

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clocked(monkeypatch):
    """`clocked(today, **sizes)`: a started simulator and the pipeline pointed at it, both at
    `today`; returns (simulator, clock)."""
    started = []

    def start(today: dt.date, **sizes: Any):
        clock = Clock(monkeypatch, today)
        simulator = AdveritySimulator(api_key="adv-key-5678", seed=7, clock=clock, **{**MONTHLY_SIZE, **sizes}).start()
        started.append(simulator)
        configure(monkeypatch, simulator)
        return simulator, clock

    yield start
    for simulator in started:
        simulator.stop()


def monthly_keyed(rows) -> Dict[tuple, tuple]:
    """{(month, workspace, datastream key): the row's fields}, checking the key is unique."""
    out: Dict[tuple, tuple] = {}
    for row in rows:
        values = tuple(row[field] for field in MONTHLY_FIELDS) if isinstance(row, dict) else tuple(row)
        key = (values[0], values[1], values[4])
        assert key not in out, f"duplicate monthly row {key}"
        out[key] = values
    return out


def monthly_loaded(destination: str, where: str = "1 = 1") -> Dict[tuple, tuple]:
    return monthly_keyed(query(destination, f"select {', '.join(MONTHLY_FIELDS)} from raw_adverity.monthly_usage where {where}"))


def fetched_at(destination: str) -> Dict[dt.date, set]:
    rows = query(destination, "select usage_month, fetched_at from raw_adverity.monthly_usage")
    out: Dict[dt.date, set] = {}
    for month, at in rows:
        out.setdefault(month, set()).add(at)
    return out


def cursors() -> Dict[str, Any]:
    """The saved `usage_date` cursor of each resource of the DuckDB pipeline."""
    state = pipeline_for("adverity", config.destination("duckdb")).state
    resources = state.get("sources", {}).get("adverity", {}).get("resources", {})
    return {name: (r.get("incremental") or {}).get("usage_date", {}).get("last_value") for name, r in resources.items()}


SCENARIOS = {
    # name: (today, first day, last day of a backfill or None for a nightly, the monthly request's range)
    "nightly of 3 days, month to date": (D(2026, 3, 17), D(2026, 3, 14), None, ("2026-03-01", "2026-03-16")),
    "nightly across a month boundary": (D(2026, 3, 3), D(2026, 2, 28), None, ("2026-02-01", "2026-03-02")),
    "60-day backfill": (D(2026, 3, 20), D(2026, 1, 10), D(2026, 3, 10), ("2026-01-01", "2026-03-19")),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_monthly_rows_equal_the_apis_monthly_figures(clocked, destination, scenario):
    today, first, end, (date_from, date_to) = SCENARIOS[scenario]
    sim, _ = clocked(today)
    last = end or today - ONE_DAY
    result = load_provider("adverity", destination, start_date=first, end_date=end)
    assert result.status == "ok", result.error

    # the queries: the days once, then every month they touch in one range, paged to the end
    CASE.assert_requests(sim.requests, first, last)
    assert {(r.one("date_from"), r.one("date_to")) for r in monthly(sim.requests)} == {(date_from, date_to)}
    assert [int(r.one("page")) for r in monthly(sim.requests)] == list(range(1, len(monthly(sim.requests)) + 1))
    assert len(sim.requests) == CASE.min_requests(sim, first, last) == result.requests
    assert sim.max_concurrency == 1

    expected = monthly_keyed(sim.monthly_truth(D.fromisoformat(date_from), D.fromisoformat(date_to)))
    assert monthly_loaded(destination) == expected
    months = sorted({key[0] for key in expected})
    assert months[0] == D.fromisoformat(date_from) and months[-1] == D.fromisoformat(date_to).replace(day=1)
    # each month's figure covers it whole, the current one up to yesterday
    assert {values[0]: values[7] for values in expected.values()} == {
        month: min(helpers.month_end(month), today - ONE_DAY) for month in months}
    # the daily facts are as ever, and the months are no days of the load
    assert loaded_facts_in(destination) == truth_rows(sim, first, last)
    assert result.days == set(windows.days(first, last))
    # unique rows are counted per month: not the sum of the days
    daily_unique: Dict[tuple, int] = {}
    for row in sim.rows(D.fromisoformat(date_from), D.fromisoformat(date_to)):
        key = (D.fromisoformat(row["date"]).replace(day=1), row["workspace_id"], row["datastream_id"] or "unattributed")
        daily_unique[key] = daily_unique.get(key, 0) + row["unique_rows"]
    assert any(values[5] != daily_unique[key] for key, values in expected.items())


def loaded_facts_in(destination: str) -> Dict[tuple, float]:
    return {
        (day, account, rtype, rid, metric): float(quantity)
        for day, account, rtype, rid, metric, quantity in query(destination, FACTS_SQL.format(dataset="raw_adverity"))
    }


def dropping_a_datastream(datastream_id: str):
    """A mutation of monthly answers only (their items say `granularity: monthly`): one
    datastream's items gone, as if the API no longer reported it, `count` to match."""

    def mutate(body: Dict[str, Any]) -> Dict[str, Any]:
        items = body.get("items") or []
        if not items or items[0].get("granularity") != "monthly":
            return body
        kept = [i for i in items if i["datastream_id"] != datastream_id]
        return {**body, "count": body["count"] - (len(items) - len(kept)), "items": kept}

    return mutate


def test_a_month_read_again_replaces_its_rows_whole(clocked, destination):
    sim, clock = clocked(D(2026, 3, 10), n_workspaces=2, datastreams_per_workspace=3)
    assert load_provider("adverity", destination, start_date=D(2026, 2, 26)).status == "ok"
    assert monthly_loaded(destination) == monthly_keyed(sim.monthly_truth(D(2026, 2, 1), D(2026, 3, 1)))
    before = fetched_at(destination)
    assert {key[0] for key in monthly_loaded(destination)} == {D(2026, 2, 1), D(2026, 3, 1)}

    # ten days later the March figure has grown, and one datastream is no longer reported
    clock.set(D(2026, 3, 20))
    gone = sim.workspaces[0].datastream_ids[0]
    sim.inject(Fault(kind="mutate", mutate=dropping_a_datastream(gone), times=1_000))
    sim.reset_log()
    result = load_provider("adverity", destination)
    assert result.status == "ok", result.error
    # the nightly re-read its lookback days, Mar 7..19, so March only, whole
    assert {(r.one("date_from"), r.one("date_to")) for r in daily(sim.requests)} == {("2026-03-07", "2026-03-19")}
    assert {(r.one("date_from"), r.one("date_to")) for r in monthly(sim.requests)} == {("2026-03-01", "2026-03-19")}

    march = monthly_keyed(row for row in sim.monthly_truth(D(2026, 3, 1), D(2026, 3, 1)) if row["datastream_id"] != gone)
    assert monthly_loaded(destination, "usage_month = date '2026-03-01'") == march
    assert {values[7] for values in march.values()} == {D(2026, 3, 19)}
    # February was not touched: the same rows, fetched the first time
    assert monthly_loaded(destination, "usage_month = date '2026-02-01'") == monthly_keyed(sim.monthly_truth(D(2026, 2, 1), D(2026, 2, 1)))
    after = fetched_at(destination)
    assert after[D(2026, 2, 1)] == before[D(2026, 2, 1)]
    assert len(after[D(2026, 3, 1)]) == 1 and after[D(2026, 3, 1)] != before[D(2026, 3, 1)]


def test_the_monthly_cursor_moves_with_the_daily_one_and_a_backfill_moves_neither(clocked):
    sim, clock = clocked(D(2026, 3, 10), n_workspaces=2, datastreams_per_workspace=3)
    assert load_provider("adverity", start_date=D(2026, 3, 2)).status == "ok"
    assert cursors() == {settings.USAGE_TABLE: D(2026, 3, 9), settings.MONTHLY_WINDOW: D(2026, 3, 9)}

    sim.reset_log()
    assert load_provider("adverity", start_date=D(2026, 1, 5), end_date=D(2026, 1, 12)).status == "ok"
    assert cursors() == {settings.USAGE_TABLE: D(2026, 3, 9), settings.MONTHLY_WINDOW: D(2026, 3, 9)}
    assert {(r.one("date_from"), r.one("date_to")) for r in monthly(sim.requests)} == {("2026-01-01", "2026-01-31")}
    assert {key[0] for key in monthly_loaded("duckdb")} == {D(2026, 1, 1), D(2026, 3, 1)}

    # the next nightly: both re-read the same lookback days
    clock.set(D(2026, 3, 12))
    sim.reset_log()
    assert load_provider("adverity").status == "ok"
    assert {(r.one("date_from"), r.one("date_to")) for r in daily(sim.requests)} == {("2026-03-07", "2026-03-11")}
    assert {(r.one("date_from"), r.one("date_to")) for r in monthly(sim.requests)} == {("2026-03-01", "2026-03-11")}
    assert cursors() == {settings.USAGE_TABLE: D(2026, 3, 11), settings.MONTHLY_WINDOW: D(2026, 3, 11)}


def test_one_call_at_a_time_while_both_resources_run(monkeypatch):
    """Enough daily rows for the daily resource to hand dlt a table twice while its next pages
    are read ahead: dlt takes turns between resources, so the monthly one runs in between, and
    its calls wait for the daily call in flight."""
    with AdveritySimulator(api_key="k", latency_ms=5, n_workspaces=30, datastreams_per_workspace=20) as sim:
        configure(monkeypatch, sim)
        last = windows.last_complete_day()
        first = last - dt.timedelta(days=39)
        assert len(sim.rows(first, last)) > 2 * BATCH_ROWS
        run(start_date=first, end_date=last)
        kinds = [r.one("granularity") for r in sim.requests]
        assert kinds.index("monthly") < len(kinds) - 1 - kinds[::-1].index("daily"), "the monthly calls came after the daily ones: nothing to wait for"
        assert sim.max_concurrency == 1
        assert len(sim.requests) == CASE.min_requests(sim, first, last)


def test_the_shared_client_makes_concurrent_calls_wait_for_each_other():
    with AdveritySimulator(api_key="k", latency_ms=30, n_workspaces=1, datastreams_per_workspace=1) as sim:
        client = one_call_at_a_time(ProviderClient(helpers.PROVIDER, sim.base_url, helpers.auth_header("k", "Token"),
                                                   key_setting=settings.API_KEY_SETTING))
        callers = [threading.Thread(target=client.get_json, args=(settings.USAGE_PATH, {"page_size": 100})) for _ in range(4)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        assert len(sim.requests) == 4 and sim.max_concurrency == 1


def test_a_failing_monthly_call_fails_the_load_and_moves_no_cursor(clocked, monkeypatch):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.01")
    sim, _ = clocked(D(2026, 3, 10), n_workspaces=2, datastreams_per_workspace=3)
    first = D(2026, 2, 27)
    n_daily = math.ceil(len(sim.rows(first, D(2026, 3, 9))) / settings.PAGE_SIZE)
    sim.inject(Fault(status=503, body={"detail": "down"}, times=1_000, after=n_daily))
    result = load_provider("adverity", start_date=first)
    assert result.status == "failed"
    assert "HTTP 503" in result.error and "window 2026-02-01..2026-03-09 (monthly)" in result.error, result.error
    assert monthly(sim.requests) and cursors() == {}
    sim.clear_faults()
    assert load_provider("adverity", start_date=first).status == "ok"
    assert monthly_loaded("duckdb") == monthly_keyed(sim.monthly_truth(D(2026, 2, 1), D(2026, 3, 1)))


def naming_datastreams_and_forgetting_a_workspace(workspace_id: str):
    """A mutation of daily answers: every item gains a `datastream_name`, and one workspace's
    items lose their `workspace_name`."""

    def mutate(body: Dict[str, Any]) -> Dict[str, Any]:
        items = body.get("items") or []
        if not items or items[0].get("granularity") != "daily":
            return body
        named = []
        for entry in items:
            entry = dict(entry, datastream_name=f"stream {(entry['datastream_id'] or 'none')[:8]}")
            if entry["workspace_id"] == workspace_id:
                entry.pop("workspace_name")
            named.append(entry)
        return {**body, "items": named}

    return mutate


def test_models_give_the_monthly_figures_and_every_resource_with_its_names(clocked, destination):
    sim, clock = clocked(D(2026, 3, 3), n_workspaces=3, datastreams_per_workspace=3)
    assert load_provider("adverity", destination, start_date=D(2026, 2, 25)).status == "ok"
    dest = config.destination(destination)
    report = models.build(dest)
    assert "adverity" not in report.failed, report.failed["adverity"]
    assert {"stg_adverity__monthly_usage", "int_adverity__resources"} <= set(report.models)

    staged = query(destination, "select usage_month, account_id, account_name, datastream_id, datastream_key, "
                                "unique_rows, total_rows, through_date from analytics.stg_adverity__monthly_usage")
    assert monthly_keyed(staged) == monthly_keyed(sim.monthly_truth(D(2026, 2, 1), D(2026, 3, 1)))
    names = {w.id: w.name for w in sim.workspaces}
    resources = query(destination, f"select {', '.join(models.RESOURCE_COLUMNS)} from analytics.int_adverity__resources")
    expected = {(row["workspace_id"], row["datastream_id"] or "unattributed") for row in sim.rows(D(2026, 2, 25), D(2026, 3, 2))}
    assert {(row[1], row[4]) for row in resources} == expected and len(resources) == len(expected)
    for provider, account_id, account_name, resource_type, _, resource_name, *attributes in resources:
        assert (provider, account_name, resource_type, resource_name) == ("adverity", names[account_id], "datastream", None)
        assert attributes == [None] * 5

    # two days later: datastream names appear, and one workspace's rows come without its name
    clock.set(D(2026, 3, 5))
    nameless = sim.workspaces[1].id
    sim.inject(Fault(kind="mutate", mutate=naming_datastreams_and_forgetting_a_workspace(nameless), times=1_000))
    assert load_provider("adverity", destination).status == "ok"
    assert "adverity" not in models.build(dest).failed
    assert query(destination, f"select count(*) from raw_adverity.usage where workspace_id = '{nameless}' "
                              "and workspace_name is null") != [(0,)]
    facts = query(destination, "select usage_date, account_id, account_name, resource_id, resource_name "
                               "from analytics.fct_daily_usage where provider = 'adverity'")
    assert facts and all(account_name == names[account_id] for _, account_id, account_name, _, _ in facts)
    for day, _, _, resource_id, resource_name in facts:
        # the days read again (Feb 28..Mar 4) carry the names, the days before do not
        assert resource_name == (f"stream {resource_id[:8]}" if day >= D(2026, 2, 28) and resource_id != "unattributed"
                                 else "stream none" if day >= D(2026, 2, 28) else None), (day, resource_id, resource_name)
    resources = query(destination, "select account_id, account_name, resource_id, resource_name from analytics.int_adverity__resources")
    for account_id, account_name, resource_id, resource_name in resources:
        assert account_name == names[account_id]
        assert resource_name == (f"stream {resource_id[:8]}" if resource_id != "unattributed" else "stream none")


# -- the simulator is faithful ------------------------------------------------------------------
def get(sim: AdveritySimulator, auth: Optional[str] = "Token k", **params: Any) -> requests.Response:
    headers = {"Authorization": auth} if auth else {}
    return requests.get(sim.base_url + settings.USAGE_PATH, params=params, headers=headers)


def test_simulator_auth_and_errors():
    with AdveritySimulator(api_key="k") as sim:
        assert get(sim, auth=None).status_code == 401
        wrong = get(sim, auth="Token nope")
        assert (wrong.status_code, wrong.json()) == (401, {"detail": "Invalid token."})
        assert get(sim, auth="Bearer k").status_code == 200
        assert get(sim, auth="Basic k").status_code == 401
        assert requests.get(sim.base_url + "/api/v1/usage", headers={"Authorization": "Token k"}).status_code == 200
        assert get(sim, granularity="hourly").status_code == 400
        assert get(sim, date_from="03/01/2026").status_code == 400
        yesterday = sim.today() - ONE_DAY
        beyond = get(sim, date_from=yesterday.isoformat(), page=99)
        assert (beyond.status_code, beyond.json()) == (404, {"detail": "Invalid page."})
        assert get(sim, page="abc").status_code == 404


def test_simulator_caps_date_to_and_page_size_and_defaults_like_the_docs():
    with AdveritySimulator(api_key="k", n_workspaces=4, datastreams_per_workspace=8) as sim:
        today = sim.today()
        first = today - dt.timedelta(days=10)
        body = get(sim, date_from=first.isoformat(), date_to=today.isoformat(), page_size=500).json()
        assert len(body["items"]) == 100  # page_size above the maximum is capped to 100
        assert body["count"] == len(sim.rows(first, today - ONE_DAY))
        every = [get(sim, date_from=first.isoformat(), date_to=today.isoformat(), page=p, page_size=100).json()["items"]
                 for p in range(1, math.ceil(body["count"] / 100) + 1)]
        assert max(i["date"] for page in every for i in page) == (today - ONE_DAY).isoformat()
        default = get(sim).json()
        assert len(default["items"]) == min(50, default["count"])
        if default["items"]:
            assert min(i["date"] for i in default["items"]) == today.replace(day=1).isoformat()
        empty = get(sim, date_from=today.isoformat())
        assert (empty.status_code, empty.json()["count"], empty.json()["items"]) == (200, 0, [])


def test_simulator_filters_ignore_unknown_ids_and_scope_covers_the_subtree():
    with AdveritySimulator(api_key="k", n_workspaces=4, datastreams_per_workspace=2) as sim:
        day = (sim.today() - ONE_DAY).isoformat()
        everything = get(sim, date_from=day, page_size=100).json()
        assert {i["workspace_id"] for i in everything["items"]} == {w.id for w in sim.workspaces}
        child = sim.workspaces[1]
        one = get(sim, date_from=day, workspace_id=[child.id, "00000000-0000-0000-0000-000000000000"]).json()
        assert {i["workspace_id"] for i in one["items"]} == {child.id}
        assert get(sim, date_from=day, workspace_id="unknown").json()["count"] == everything["count"]
        stream = child.datastream_ids[0]
        by_stream = get(sim, date_from=day, datastream_id=stream).json()["items"]
        assert {i["datastream_id"] for i in by_stream} <= {stream}
        monthly = get(sim, granularity="monthly", date_from=day).json()["items"]
        assert all(i["date"].endswith("-01") for i in monthly)
    with AdveritySimulator(api_key="k", n_workspaces=4, scope_workspace=None) as sim:
        tree = {w.id: w.parent_id for w in sim.workspaces}
        assert sum(parent is None for parent in tree.values()) == 1
        # a key scoped to a child sees that child and its descendants only
        child = sim.workspaces[1]
        scoped = AdveritySimulator(api_key="k", n_workspaces=4, scope_workspace=child.id)
        seen = {w.id for w in scoped.visible_workspaces()}
        assert child.id in seen and sim.workspaces[0].id not in seen


def test_simulator_truth_is_a_pure_function_of_the_day():
    sim = AdveritySimulator(api_key="k", seed=5)
    last = sim.today() - ONE_DAY
    week = truth_rows(sim, last - dt.timedelta(days=6), last)
    day = truth_rows(sim, last, last)
    assert all(week[key] == value for key, value in day.items())
    assert {key[2] for key in week} == {"datastream"}
    assert {key[4] for key in week} == {"unique_rows", "total_rows"}
    assert "unattributed" in {key[3] for key in week}
    assert AdveritySimulator(api_key="k", seed=6).truth(last, last) != sim.truth(last, last)


def test_simulator_monthly_figures_roll_up_the_days_and_count_unique_rows_per_month():
    clock = lambda: dt.datetime(2026, 3, 17, 6, tzinfo=dt.timezone.utc)  # noqa: E731
    with AdveritySimulator(api_key="k", clock=clock, n_workspaces=6, datastreams_per_workspace=9) as sim:
        pages, page = [], 1
        while True:
            body = get(sim, granularity="monthly", date_from="2026-02-01", date_to="2026-03-31", page=page, page_size=100).json()
            pages += body["items"]
            if page * 100 >= body["count"]:
                break
            page += 1
        assert len(pages) == body["count"] == len(sim.monthly_rows(D(2026, 2, 1), D(2026, 3, 31))) > 100
        assert {i["date"] for i in pages} == {"2026-02-01", "2026-03-01"}
        days: Dict[tuple, List[Dict[str, Any]]] = {}
        for row in sim.rows(D(2026, 2, 1), D(2026, 3, 31)):  # March up to yesterday, the 16th
            days.setdefault((row["date"][:8] + "01", row["workspace_id"], row["datastream_id"]), []).append(row)
        assert max(row["date"] for rows in days.values() for row in rows) == "2026-03-16"
        assert len(pages) == len(days)
        for entry in pages:
            rows = days[(entry["date"], entry["workspace_id"], entry["datastream_id"])]
            assert entry["total_rows"] == sum(row["total_rows"] for row in rows)
            assert max(row["unique_rows"] for row in rows) <= entry["unique_rows"] <= sum(row["unique_rows"] for row in rows)
            assert entry["workspace_name"] == rows[0]["workspace_name"]
        assert any(entry["unique_rows"] != sum(r["unique_rows"] for r in days[(entry["date"], entry["workspace_id"], entry["datastream_id"])])
                   for entry in pages)
        # monthly_truth is the API's answer, each month whole, the current one through yesterday
        truth = monthly_keyed(sim.monthly_truth(D(2026, 2, 1), D(2026, 4, 1)))
        assert truth == monthly_keyed(
            {"usage_month": D.fromisoformat(i["date"]), "workspace_id": i["workspace_id"], "workspace_name": i["workspace_name"],
             "datastream_id": i["datastream_id"], "datastream_key": i["datastream_id"] or "unattributed",
             "unique_rows": i["unique_rows"], "total_rows": i["total_rows"],
             "through_date": D(2026, 2, 28) if i["date"] == "2026-02-01" else D(2026, 3, 16)}
            for i in pages
        )
