"""Neon specifics: every end-of-paging signal, query strings, 60-day windows, 406 and 404
errors, the retired legacy endpoint, the simulator's faithfulness, and the pure flatten functions."""

from __future__ import annotations

import datetime as dt
import logging

import pyarrow as pa
import pytest
import requests

from pipelines.config import ConfigError
from pipelines.load import load_provider
from simulators.base import Fault
from simulators.neon import PAGING_ENDS, NeonSimulator, decode_cursor, encode_cursor
from sources import windows
from sources.http import ProviderClient, ProviderError
from sources.neon import settings
from sources.neon.helpers import (
    NeonCursorPaginator,
    end_of_paging,
    flatten_account_periods,
    flatten_projects,
    parse_metrics,
    project_params,
    to_table,
)
from tests.cases.neon import CASE, PROJECTS_PATH
from tests.conftest import assert_facts_equal, facts, query, yesterday
from tests.providers import truth_rows

KEY = "neon-test-key"
DAY = dt.timedelta(days=1)


@pytest.fixture
def start_sim(monkeypatch):
    """Starts a Neon simulator with the given switches and points the source at it."""
    started = []

    def start(**overrides) -> NeonSimulator:
        sim = CASE.make_simulator(api_key=KEY, seed=3, **overrides).start()
        started.append(sim)
        for name, value in sim.source_env().items():
            monkeypatch.setenv(name, value)
        return sim

    yield start
    for sim in started:
        sim.stop()


def last_days(n: int):
    last = yesterday()
    return last - (n - 1) * DAY, last


def backfill(first, last):
    result = load_provider("neon", "duckdb", start_date=first, end_date=last)
    assert result.status == "ok", result.error
    return result


# -- paging -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "paging_end, n_projects, expected_requests",
    [
        # a last page with fewer than 100 projects and a cursor is not the end: the empty page
        # after it (with a fresh cursor) is
        ("cursor", 150, 3),
        ("cursor", 200, 3),  # full last page with a cursor: the empty page after it (fresh cursor) stops
        ("empty", 150, 3),  # last page with a cursor, then an empty page without one
        ("empty", 200, 3),
        ("missing", 150, 2),  # last page without a cursor
        ("missing", 200, 2),
        ("repeat", 150, 2),  # last page echoing the cursor it was asked with
        ("repeat", 200, 2),
        ("missing", 7, 1),
        ("cursor", 7, 2),
    ],
)
def test_paging_stops_on_each_end_signal(start_sim, paging_end, n_projects, expected_requests):
    sim = start_sim(paging_end=paging_end, n_projects=n_projects)
    first, last = last_days(2)
    backfill(first, last)
    sent = sim.requests_to(PROJECTS_PATH)
    assert len(sent) == expected_requests
    assert sent[0].one("cursor") is None
    cursors = [r.one("cursor") for r in sent[1:]]
    assert all(cursors) and len(set(cursors)) == len(cursors), cursors
    assert len(sim.requests) == CASE.min_requests(sim, first, last)
    assert_facts_equal(facts("duckdb", CASE), truth_rows(sim, first, last))


@pytest.mark.parametrize(
    "paging_end, n_projects, pages, reason",
    [
        ("cursor", 7, 4, "empty page"),  # 3, 3, then 1 with a cursor: not the end
        ("cursor", 6, 3, "empty page"),
        ("missing", 7, 3, "no cursor"),
        ("empty", 6, 3, "empty page"),
        ("missing", 6, 2, "no cursor"),
        ("repeat", 6, 2, "cursor repeated"),
    ],
)
def test_paginator_names_the_signal_it_stopped_on(start_sim, paging_end, n_projects, pages, reason):
    sim = start_sim(paging_end=paging_end, n_projects=n_projects)
    client = ProviderClient("neon", sim.base_url + sim.base_path, {"Authorization": f"Bearer {KEY}"}, settings.KEY_SETTING)
    first, last = last_days(3)
    paginator = NeonCursorPaginator()
    params = project_params(sim.org_id, windows.Window(first, last), settings.METRICS, limit=3)
    projects = [p["project_id"] for page in client.paginate(settings.PROJECTS_PATH, params, paginator, "projects") for p in page]
    assert (paginator.pages, paginator.stop_reason) == (pages, reason)
    assert projects == [p.project_id for p in sim.projects]  # all of them, newest first, once each


def test_end_of_paging_rules():
    assert end_of_paging(0, "c2", "c1") == "empty page"
    assert end_of_paging(100, None, "c1") == "no cursor"
    assert end_of_paging(100, "", None) == "no cursor"
    assert end_of_paging(100, "c1", "c1") == "cursor repeated"
    assert end_of_paging(100, "c1", "c2", seen={"c1", "c2"}) == "cursor repeated"
    assert end_of_paging(100, "c3", "c2", seen={"c1", "c2"}) is None


def test_a_short_page_with_a_new_cursor_is_not_the_end():
    # a server may clamp `limit`: a page of 3 (or 99) projects with a fresh cursor is followed,
    # in the middle of the paging as at its end
    assert end_of_paging(3, "c2", "c1", seen={"c1"}) is None
    assert end_of_paging(99, "c2", None) is None
    assert end_of_paging(3, None, "c1") == "no cursor"
    assert end_of_paging(3, "c1", "c1") == "cursor repeated"


@pytest.mark.parametrize("paging_end", PAGING_ENDS)
@pytest.mark.parametrize("n_projects", [10, 9])  # the last page short, or full
def test_a_server_that_clamps_limit_still_loads_every_project(start_sim, paging_end, n_projects):
    """Asked for 100 projects a page, the server serves 3 with a cursor: every such short page is
    followed, each follow-up carrying the cursor the page before it answered."""
    sim = start_sim(paging_end=paging_end, n_projects=n_projects, max_page_size=3)
    first, last = last_days(2)
    backfill(first, last)
    sent = sim.requests_to(PROJECTS_PATH)
    assert all(r.one("limit") == "100" for r in sent)
    assert sent[0].one("cursor") is None
    real_pages = -(-n_projects // 3)
    # the cursors of the real pages point at offsets 3, 6, 9; past the last one, only the empty
    # page that ends paging ("cursor", "empty") is asked for
    offsets = [decode_cursor(r.one("cursor")) for r in sent[1:]]
    assert offsets[:real_pages - 1] == [3 * page for page in range(1, real_pages)], offsets
    assert len(sent) == real_pages + (paging_end in ("cursor", "empty"))
    assert len(sim.requests) == CASE.min_requests(sim, first, last)
    assert_facts_equal(facts("duckdb", CASE), truth_rows(sim, first, last))
    assert {row[0] for row in query("duckdb", "select distinct project_id from raw_neon.project_consumption")} \
        == {p.project_id for p in sim.projects if p.created_day <= last}


# -- query strings and windows ------------------------------------------------------------------
def test_query_strings(start_sim):
    sim = start_sim()
    first, last = last_days(3)
    backfill(first, last)
    # seven projects on one page with a cursor, then the empty page that ends paging
    first_page, after_it = sim.requests
    assert first_page.path == after_it.path == "/api/v2/consumption_history/v2/projects"
    window_query = {
        "org_id": [sim.org_id],
        "from": [f"{first.isoformat()}T00:00:00Z"],
        "to": [f"{(last + DAY).isoformat()}T00:00:00Z"],
        "granularity": ["daily"],
        "metrics": [",".join(settings.METRICS)],
        "limit": ["100"],
    }
    assert first_page.query == window_query
    assert after_it.query == {**window_query, "cursor": [encode_cursor(sim.n_projects)]}
    CASE.assert_requests(sim.requests, first, last)


def test_metrics_option_narrows_the_request(start_sim, monkeypatch):
    sim = start_sim()
    monkeypatch.setenv("SOURCES__NEON__METRICS", '["compute_unit_seconds", "public_network_transfer_bytes"]')
    first, last = last_days(2)
    backfill(first, last)
    assert sim.requests[0].one("metrics") == "compute_unit_seconds,public_network_transfer_bytes"
    (metrics,) = zip(*query("duckdb", "select distinct metric_name from raw_neon.project_consumption order by 1"))
    assert metrics == ("compute_unit_seconds", "public_network_transfer_bytes")


def test_long_backfill_is_cut_into_60_day_windows(start_sim):
    # an account whose API accepts 120 days back, so that 75 days need two windows
    sim = start_sim(daily_history_days=120)
    first, last = last_days(75)
    result = backfill(first, last)
    windows_sent = [(r.one("from"), r.one("to")) for r in sim.requests if r.one("cursor") is None]
    assert len(sim.requests) == CASE.min_requests(sim, first, last) == 4
    middle = first + 60 * DAY
    assert windows_sent == [
        (f"{first}T00:00:00Z", f"{middle}T00:00:00Z"),
        (f"{middle}T00:00:00Z", f"{last + DAY}T00:00:00Z"),
    ]
    CASE.assert_requests(sim.requests, first, last)
    assert_facts_equal(facts("duckdb", CASE), truth_rows(sim, first, last))
    assert result.first_day == first


def test_range_older_than_60_days_is_a_clear_error(start_sim):
    sim = start_sim()
    first, last = last_days(70)
    result = load_provider("neon", "duckdb", start_date=first, end_date=first + 9 * DAY)
    assert result.status == "failed"
    assert "HTTP 406" in result.error and "last 60 days" in result.error, result.error
    assert f"on or after {(windows.utc_today() - 60 * DAY).isoformat()}" in result.error
    assert f"window {first}..{first + 9 * DAY}" in result.error
    assert "\n" not in result.error
    assert len(sim.requests) == 1  # 406 is not retried
    too_early = load_provider("neon", "duckdb", start_date="2024-02-20", end_date="2024-02-28")
    assert too_early.status == "failed" and "HTTP 406" in too_early.error and "2024-03-01" in too_early.error


def test_unknown_org_names_the_setting(start_sim, monkeypatch):
    sim = start_sim()
    monkeypatch.setenv("SOURCES__NEON__ORG_ID", "org-somebody-else")
    result = load_provider("neon", "duckdb", start_date=last_days(2)[0])
    assert result.status == "failed"
    assert "HTTP 404" in result.error and settings.ORG_SETTING in result.error, result.error
    assert len(sim.requests) == 1


def test_malformed_org_fails_before_any_request(start_sim, monkeypatch):
    sim = start_sim()
    monkeypatch.setenv("SOURCES__NEON__ORG_ID", "Org_With_Capitals")
    with pytest.raises(ConfigError, match=settings.ORG_SETTING):  # a configuration error: exit 2
        load_provider("neon", "duckdb", start_date=last_days(2)[0])
    assert sim.requests == []


def test_rate_limit_answer_is_retried(start_sim):
    sim = start_sim()
    sim.inject(Fault(status=429, body={"request_id": "r", "code": "TOO_MANY_REQUESTS", "message": "slow down"}))
    first, last = last_days(2)
    backfill(first, last)
    assert len(sim.requests) == CASE.min_requests(sim, first, last) + 1  # the 429, asked again
    assert_facts_equal(facts("duckdb", CASE), truth_rows(sim, first, last))


# -- the legacy account endpoint -----------------------------------------------------------------
@pytest.mark.parametrize("legacy", ["gone", "not_found"])
def test_retired_legacy_endpoint_warns_once_and_the_load_goes_on(start_sim, monkeypatch, caplog, legacy):
    sim = start_sim(legacy=legacy, daily_history_days=120)
    monkeypatch.setenv("SOURCES__NEON__INCLUDE_LEGACY", "true")
    first, last = last_days(75)  # two windows: still one legacy request and one warning
    with caplog.at_level(logging.WARNING, logger="sources.neon"):
        backfill(first, last)
    warnings = [r for r in caplog.records if r.name == "sources.neon" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "/consumption_history/account" in warnings[0].getMessage()
    assert len(sim.requests_to("/consumption_history/account")) == 1
    assert_facts_equal(facts("duckdb", CASE), truth_rows(sim, first, last))


def test_legacy_endpoint_when_served(start_sim, monkeypatch):
    sim = start_sim(legacy="serve")
    monkeypatch.setenv("SOURCES__NEON__INCLUDE_LEGACY", "true")
    first, last = last_days(4)
    backfill(first, last)
    (legacy_request,) = sim.requests_to("/consumption_history/account")
    assert legacy_request.query == {
        "org_id": [sim.org_id],
        "from": [f"{first}T00:00:00Z"],
        "to": [f"{last + DAY}T00:00:00Z"],
        "granularity": ["daily"],
    }
    account_facts = query(
        "duckdb",
        "select usage_date, org_id, 'account', org_id, metric_name, value from raw_neon.account_consumption",
    )
    loaded = {row[:5]: float(row[5]) for row in account_facts}
    expected_legacy = {
        (r["usage_date"], r["account_id"], r["resource_type"], r["resource_id"], r["metric"]): r["quantity"]
        for r in sim.truth(first, last, include_legacy=True)
        if r["resource_type"] == "account"
    }
    assert loaded == expected_legacy and len(loaded) == 4 * len(settings.LEGACY_METRICS)
    assert_facts_equal(facts("duckdb", CASE), truth_rows(sim, first, last))


# -- the simulator is faithful -----------------------------------------------------------------
def sim_get(sim, path, params, key=KEY):
    return requests.get(sim.base_url + sim.base_path + path, params=params, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def good_params(sim, first, last, **extra):
    return {**project_params(sim.org_id, windows.Window(first, last), settings.METRICS), **extra}


def test_simulator_errors_use_neons_body(start_sim):
    sim = start_sim()
    first, last = last_days(3)
    cases = [
        (good_params(sim, first, last), "wrong-key", 401),
        (good_params(sim, first, last, limit=101), KEY, 400),
        (good_params(sim, first, last, limit=0), KEY, 400),
        (good_params(sim, first, last, org_id="Not Valid"), KEY, 400),
        (good_params(sim, first, last, org_id="org-other"), KEY, 404),
        ({k: v for k, v in good_params(sim, first, last).items() if k != "metrics"}, KEY, 400),
        (good_params(sim, first, last, metrics="cpu_seconds"), KEY, 400),
        (good_params(sim, first, last, granularity="weekly"), KEY, 400),
        (good_params(sim, first, last, cursor="not-a-cursor"), KEY, 400),
        (good_params(sim, last - 60 * DAY, last), KEY, 406),  # 61 days back
        ({**good_params(sim, first, last), "from": "2024-02-29T00:00:00Z"}, KEY, 406),
    ]
    for params, key, status in cases:
        response = sim_get(sim, settings.PROJECTS_PATH, params, key)
        assert response.status_code == status, (params, response.text)
        assert set(response.json()) == {"request_id", "code", "message"}
    assert sim_get(sim, settings.PROJECTS_PATH, good_params(sim, last - 59 * DAY, last)).status_code == 200  # 60 days
    assert sim_get(sim, settings.LEGACY_ACCOUNT_PATH, {}).status_code == 410
    sim.plan_eligible = False
    assert sim_get(sim, settings.PROJECTS_PATH, good_params(sim, first, last)).status_code == 403


def test_simulator_rate_limit_sends_no_retry_headers(start_sim):
    sim = start_sim(burst=2)
    first, last = last_days(1)
    statuses = [sim_get(sim, settings.PROJECTS_PATH, good_params(sim, first, last)) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert set(statuses[2].json()) == {"request_id", "code", "message"}
    assert not {h.lower() for h in statuses[2].headers} & {"retry-after", "ratelimit-reset", "ratelimit-remaining", "ratelimit-limit"}


def test_simulator_accepts_repeated_or_comma_metrics(start_sim):
    sim = start_sim()
    first, last = last_days(2)
    comma = sim_get(sim, settings.PROJECTS_PATH, good_params(sim, first, last)).json()
    repeated = sim_get(sim, settings.PROJECTS_PATH, good_params(sim, first, last, metrics=list(settings.METRICS))).json()
    assert comma == repeated


def test_simulator_projects_newest_first_and_nothing_before_creation(start_sim):
    sim = start_sim()
    first, last = last_days(10)
    body = sim_get(sim, settings.PROJECTS_PATH, good_params(sim, first, last)).json()
    created = {p.project_id: p.created_day for p in sim.projects}
    assert [p["project_id"] for p in body["projects"]] == sorted(created, key=lambda pid: created[pid], reverse=True)
    young = [pid for pid, day in created.items() if first < day <= last]
    unborn = [pid for pid, day in created.items() if day > last]
    assert young and unborn  # the defaults put a project inside the window and one after it
    for project in body["projects"]:
        frames = [f for period in project["periods"] for f in period["consumption"]]
        days = [dt.date.fromisoformat(f["timeframe_start"][:10]) for f in frames]
        assert days == sorted(days)  # oldest first
        assert all(day >= created[project["project_id"]] for day in days)
        if project["project_id"] in unborn:
            assert project["periods"] == []
        for frame in frames:
            assert all(isinstance(m["value"], int) for m in frame["metrics"])


def test_simulator_splits_billing_periods_at_month_start(start_sim):
    sim = start_sim(n_projects=1)
    month = windows.utc_today().replace(day=1)
    if month + 2 * DAY > windows.utc_today():
        month = (month - DAY).replace(day=1)
    first, last = month - 3 * DAY, month + DAY
    (project,) = sim_get(sim, settings.PROJECTS_PATH, good_params(sim, first, last)).json()["projects"]
    past, current = project["periods"]
    assert past["period_end"] == f"{month}T00:00:00Z" and past["period_id"] != current["period_id"]
    assert [f["timeframe_start"][:10] for f in past["consumption"]] == [str(first + i * DAY) for i in range(3)]
    assert current["period_start"] == f"{month}T00:00:00Z"
    assert ("period_end" in current) == (month.month != windows.utc_today().month)


# -- pure functions ------------------------------------------------------------------------------
PAGE = [
    {
        "project_id": "calm-lake-12345678",
        "periods": [
            {
                "period_id": "p-oct",
                "period_plan": "launch",
                "period_start": "2025-10-01T00:00:00Z",
                "period_end": "2025-11-01T00:00:00Z",
                "consumption": [
                    {
                        "timeframe_start": "2025-10-31T00:00:00Z",
                        "timeframe_end": "2025-11-01T00:00:00Z",
                        "metrics": [
                            {"metric_name": "compute_unit_seconds", "value": 100},
                            {"metric_name": "extra_branches_month", "value": 0},
                        ],
                    }
                ],
            },
            {
                "period_id": "p-nov",
                "period_plan": "scale",
                "period_start": "2025-11-01T00:00:00Z",
                "consumption": [
                    {
                        "timeframe_start": "2025-11-01T00:00:00Z",
                        "timeframe_end": "2025-11-02T00:00:00Z",
                        "metrics": [{"metric_name": "compute_unit_seconds", "value": 7.0}],
                    }
                ],
            },
        ],
    },
    {"project_id": "new-sun-00000001", "periods": []},
]


def test_flatten_projects_spans_two_periods():
    rows = flatten_projects("org-a", PAGE)
    assert [(r["project_id"], r["usage_date"], r["metric_name"], r["value"], r["period_id"], r["period_plan"]) for r in rows] == [
        ("calm-lake-12345678", dt.date(2025, 10, 31), "compute_unit_seconds", 100, "p-oct", "launch"),
        ("calm-lake-12345678", dt.date(2025, 10, 31), "extra_branches_month", 0, "p-oct", "launch"),
        ("calm-lake-12345678", dt.date(2025, 11, 1), "compute_unit_seconds", 7, "p-nov", "scale"),
    ]
    assert rows[0]["org_id"] == "org-a"
    assert rows[0]["timeframe_start"] == dt.datetime(2025, 10, 31, tzinfo=dt.timezone.utc)
    assert rows[2]["timeframe_end"] == dt.datetime(2025, 11, 2, tzinfo=dt.timezone.utc)


def test_flatten_projects_keeps_only_the_window():
    rows = flatten_projects("org-a", PAGE, windows.Window(dt.date(2025, 11, 1), dt.date(2025, 11, 30)))
    assert [r["usage_date"] for r in rows] == [dt.date(2025, 11, 1)]
    assert flatten_projects("org-a", []) == []


@pytest.mark.parametrize(
    "broken, field",
    [
        ({"periods": []}, "project_id"),
        ({"project_id": "x", "periods": [{"consumption": [{"metrics": []}]}]}, "timeframe_start"),
        ({"project_id": "x", "periods": [{"consumption": [{"timeframe_start": "2025-11-01T00:00:00Z", "metrics": [{"value": 1}]}]}]}, "metric_name"),
        ({"project_id": "x", "periods": [{"consumption": [{"timeframe_start": "2025-11-01T00:00:00Z", "metrics": [{"metric_name": "m"}]}]}]}, "value"),
        ({"project_id": "x", "periods": [{"consumption": [{"timeframe_start": "2025-11-01T00:00:00Z", "metrics": [{"metric_name": "m", "value": 1.5}]}]}]}, "value"),
        ({"project_id": "x", "periods": [{"consumption": [{"timeframe_start": "yesterday", "metrics": []}]}]}, "timeframe_start"),
    ],
)
def test_flatten_projects_names_the_broken_field(broken, field):
    with pytest.raises(ProviderError, match=f"neon: .*'{field}'.*consumption_history/v2/projects"):
        flatten_projects("org-a", [broken])


def test_flatten_account_periods_unpivots_flat_fields():
    periods = [
        {
            "period_id": "p1",
            "period_plan": "scale",
            "consumption": [
                {
                    "timeframe_start": "2025-11-03T00:00:00Z",
                    "timeframe_end": "2025-11-04T00:00:00Z",
                    "active_time_seconds": 3600,
                    "compute_time_seconds": 900,
                    "written_data_bytes": 10,
                    "synthetic_storage_size_bytes": 20,
                    "some_future_field": 5,
                }
            ],
        }
    ]
    rows = flatten_account_periods("org-a", periods)
    assert {r["metric_name"]: r["value"] for r in rows} == {
        "active_time_seconds": 3600,
        "compute_time_seconds": 900,
        "written_data_bytes": 10,
        "synthetic_storage_size_bytes": 20,
    }
    assert {(r["org_id"], r["usage_date"], r["period_id"]) for r in rows} == {("org-a", dt.date(2025, 11, 3), "p1")}


def test_tables_use_the_explicit_schema():
    table = to_table(flatten_projects("org-a", PAGE), settings.PROJECT_CONSUMPTION_SCHEMA)
    assert table.schema == settings.PROJECT_CONSUMPTION_SCHEMA
    assert table.column("usage_date").type == pa.date32() and table.column("value").type == pa.int64()
    assert table.num_rows == 3
    assert to_table([], settings.ACCOUNT_CONSUMPTION_SCHEMA).num_rows == 0


def test_parse_metrics():
    assert parse_metrics(None) == list(settings.METRICS)
    assert parse_metrics("compute_unit_seconds, extra_branches_month") == ["compute_unit_seconds", "extra_branches_month"]
    assert parse_metrics('["extra_branches_month"]') == ["extra_branches_month"]
    with pytest.raises(ProviderError, match="SOURCES__NEON__METRICS has unknown metric 'cpu'"):
        parse_metrics(["cpu"])
