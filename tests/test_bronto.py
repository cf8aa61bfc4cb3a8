"""Bronto's quirks: per-log days from absolute midnight-to-midnight windows, exact; the
organization's relative windows that end "now" (slices split into UTC days) only where a day
lists more logs than the endpoint can; numbers sent as strings, a list or an object body; the
organization id kept between runs; one level per day whatever was loaded before; and warehouses
of the versions that loaded only the organization's slices."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
from collections import Counter, defaultdict
from typing import Any, Dict, List, Optional

import dlt
import duckdb
import pytest
import requests

from pipelines import config, models
from pipelines.load import load_provider, pipeline_for
from simulators.base import FOREVER, Fault
from simulators.bronto import MAX_LOG_LIMIT, BrontoSimulator
from sources import windows
from sources.bronto import helpers, settings
from sources.merge import row_key_hints
from tests.cases.bronto import CASE, FACTS_SQL
from tests.conftest import query
from tests.providers import truth_rows

ONE_DAY = dt.timedelta(days=1)
UTC = dt.timezone.utc
KEY = "bronto-key-5678"
TODAY = windows.midnight(dt.datetime.now(UTC).date())
ODD_NOW = TODAY + dt.timedelta(hours=7, minutes=13, seconds=27, milliseconds=481)
YESTERDAY = ODD_NOW.date() - ONE_DAY
# at 05:57:30 a /usage window of yesterday is `Last 1800 minutes` in 720 slices of 150 s, and it
# starts exactly 150 s before yesterday's midnight: every slice lies inside one day
ALIGNED_NOW = TODAY + dt.timedelta(hours=5, minutes=57, seconds=30)
EXACT = 1e-9
"""Relative difference allowed for a day read per log: float formatting only."""


# -- helpers ----------------------------------------------------------------------------------
def set_now(monkeypatch, instant: dt.datetime) -> None:
    """Move both clocks: the source's (USAGE_NOW) and the simulator's, which follows it."""
    monkeypatch.setenv("USAGE_NOW", instant.isoformat())


@pytest.fixture
def sim(monkeypatch):
    simulator = BrontoSimulator(api_key=KEY, seed=5, clock=windows.utc_now)
    with simulator:
        set_now(monkeypatch, ODD_NOW)
        configure(monkeypatch, simulator)
        yield simulator


@pytest.fixture
def start_sim(monkeypatch):
    """start_sim(**overrides): a simulator (seed 5, following USAGE_NOW), started, the source pointed at it."""
    started: List[BrontoSimulator] = []

    def start(**overrides: Any) -> BrontoSimulator:
        simulator = BrontoSimulator(api_key=KEY, seed=5, clock=windows.utc_now, **overrides).start()
        started.append(simulator)
        set_now(monkeypatch, ODD_NOW)
        configure(monkeypatch, simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.stop()


def configure(monkeypatch, simulator: BrontoSimulator) -> None:
    monkeypatch.setenv(settings.API_KEY_SETTING, simulator.api_key)
    monkeypatch.setenv("SOURCES__BRONTO__BASE_URL", simulator.base_url)


def load(destination: str = "duckdb", **kwargs: Any):
    result = load_provider("bronto", destination, **kwargs)
    assert result.status == "ok", result.error
    return result


def warehouse(sql: str) -> List[tuple]:
    with duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"], read_only=True) as con:
        return con.execute(sql).fetchall()


def loaded_facts(destination: str = "duckdb") -> Dict[tuple, float]:
    return {
        (day, account, rtype, rid, metric): float(quantity)
        for day, account, rtype, rid, metric, quantity in query(destination, FACTS_SQL.format(dataset="raw_bronto"))
    }


ROW_COLUMNS = ("usage_type", "usage_date", "resource_type", "resource_id", "resource_name", "start_us", "end_us",
               "slice_bytes", "day_bytes", "fetched_us")


def stored_rows() -> List[Dict[str, Any]]:
    rows = warehouse(
        "select usage_type, usage_date, resource_type, resource_id, resource_name, epoch_us(slice_start), "
        "epoch_us(slice_end), slice_bytes, day_bytes, epoch_us(fetched_at) "
        f"from raw_bronto.{settings.USAGE_TABLE} order by usage_type, usage_date, resource_type, resource_id, slice_start"
    )
    return [dict(zip(ROW_COLUMNS, row)) for row in rows]


def levels() -> Dict[tuple, set]:
    """Per (usage type, day), the levels its raw rows have."""
    out = defaultdict(set)
    for row in stored_rows():
        out[(row["usage_type"], row["usage_date"])].add(row["resource_type"])
    return dict(out)


def from_us(us_: int) -> dt.datetime:
    return helpers.EPOCH + dt.timedelta(microseconds=us_)


def us(instant: dt.datetime) -> int:
    return (instant - helpers.EPOCH) // dt.timedelta(microseconds=1)


def ms(day: dt.date) -> int:
    return us(windows.midnight(day)) // 1000


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def logs_requests(simulator: BrontoSimulator):
    return [r for r in simulator.requests if r.path == settings.LOGS_USAGE_PATH]


def usage_requests(simulator: BrontoSimulator):
    return [r for r in simulator.requests if r.path == settings.USAGE_PATH]


def asked_days(request) -> tuple:
    """(first, last) day of a logs request, checking its window is whole UTC days, one slice each."""
    start, end = int(request.one("from_ts")), int(request.one("to_ts"))
    assert start % helpers.MS_PER_DAY == 0 and end % helpers.MS_PER_DAY == 0, request.query
    days = (end - start) // helpers.MS_PER_DAY
    assert request.one("num_of_slices") == str(days) and request.one("limit") == str(settings.LOGS_LIMIT), request.query
    assert "time_range" not in request.query
    first = helpers.from_ms(start).date()
    return first, first + (days - 1) * ONE_DAY


def assert_per_log_and_exact(simulator: BrontoSimulator, first: dt.date, last: dt.date, destination: str = "duckdb") -> None:
    """Every day of first..last equals the truth: per log, to the byte."""
    expected = truth_rows(simulator, first, last)
    facts = {key: value for key, value in loaded_facts(destination).items() if first <= key[0] <= last}
    assert facts.keys() == expected.keys()
    assert all(rel(value, expected[key]) < EXACT for key, value in facts.items()), [
        (key, value, expected[key]) for key, value in facts.items() if rel(value, expected[key]) >= EXACT][:3]


def straddle_bound(simulator: BrontoSimulator, usage_type: str, day: dt.date, pieces: List[Dict[str, Any]]) -> float:
    """The most the proportional split can miss on `day`: for each slice across a midnight m,
    (m - start)(end - m) / width x the rate difference of the two days."""
    bound = 0.0
    for midnight in (windows.midnight(day), windows.midnight(day + ONE_DAY)):
        m = us(midnight)
        for p in pieces:
            if p["start_us"] < m < p["end_us"]:
                seconds = (m - p["start_us"]) * (p["end_us"] - m) / (p["end_us"] - p["start_us"]) / 1e6
                before = simulator.byte_rate(usage_type, midnight.date() - ONE_DAY)
                after = simulator.byte_rate(usage_type, midnight.date())
                bound += seconds * abs(before - after)
    return bound


def assert_organization_days_close_to_truth(simulator: BrontoSimulator, rows: List[Dict[str, Any]]) -> None:
    """Each organization day's slices tile the day once, each whole slice equals the exact bytes
    of its interval, and the day's bytes equal the truth but for the shares of slices across
    midnight, within the bound those shares allow."""
    by_day = defaultdict(list)
    for row in rows:
        if row["resource_type"] != settings.ORGANIZATION:
            continue
        by_day[(row["usage_type"], row["usage_date"])].append(row)
        exact = simulator.bytes_between(row["usage_type"], from_us(row["start_us"]), from_us(row["end_us"]))
        assert rel(row["slice_bytes"], exact) < 1e-9, row
    assert by_day, "no organization day"
    org = simulator.org_id
    for (usage_type, day), pieces in by_day.items():
        low, high = us(windows.midnight(day)), us(windows.midnight(day + ONE_DAY))
        parts = sorted((max(p["start_us"], low), min(p["end_us"], high)) for p in pieces)
        assert parts[0][0] == low and parts[-1][1] == high, (usage_type, day)
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:])), f"overlap or gap in {usage_type} {day}"
        expected = truth_rows(simulator, day, day)[(day, org, settings.ORGANIZATION, org, f"{usage_type}_bytes")]
        loaded = sum(p["day_bytes"] for p in pieces)
        bound = straddle_bound(simulator, usage_type, day, pieces)
        assert abs(loaded - expected) <= bound + 1e-9 * expected, (usage_type, day, loaded, expected, bound)
        assert bound < 0.01 * expected


def get(simulator: BrontoSimulator, path: str, key: Optional[str] = KEY, **params: Any) -> requests.Response:
    headers = {settings.API_KEY_HEADER: key} if key else {}
    return requests.get(simulator.base_url + path, params=params, headers=headers, timeout=10)


def warehouse_has_rows() -> bool:
    try:
        return bool(warehouse(f"select count(*) from raw_bronto.{settings.USAGE_TABLE}")[0][0])
    except Exception:  # noqa: BLE001 - no table: nothing was loaded
        return False


# -- pure functions ---------------------------------------------------------------------------
def test_window_reaches_just_past_the_first_midnight():
    first = ODD_NOW.date() - 3 * ONE_DAY
    minutes = helpers.window_minutes(ODD_NOW, first)
    start = ODD_NOW - dt.timedelta(minutes=minutes)
    assert windows.midnight(first) - dt.timedelta(minutes=3) < start < windows.midnight(first) - dt.timedelta(minutes=2)
    params = helpers.usage_params("search", minutes)
    assert params == {"time_range": f"Last {minutes} minutes", "num_of_slices": 720, "usage_type": "search"}
    assert helpers.usage_params("export", 500)["num_of_slices"] == 500  # 1-minute slices when they fit
    assert helpers.relative_range(1) == "Last 1 minute" and helpers.relative_range(2) == "Last 2 minutes"


def series_entry(ms: int, count: Any, value: Any) -> Dict[str, Any]:
    return {"@time": "ignored", "@timestamp": ms, "count": count, "value": value, "quantiles": {}}


def test_strings_are_coerced_and_each_slice_ends_where_the_next_starts():
    usage = {"id": "org-1#ingestion-org_usage", "series": [
        series_entry("1772323320000", "7", "300.5"),  # out of order on purpose
        series_entry("1772323200000", "546", "1274155.0"),
        series_entry(1772323260000, 3, 12.0),  # numbers, as the schema says, work too
    ]}
    slices = helpers.series_slices(usage, range_ms=180_000, num_of_slices=3)
    assert slices == [
        helpers.Slice(1772323200000, 1772323260000, 1274155.0, 546),
        helpers.Slice(1772323260000, 1772323320000, 12.0, 3),
        helpers.Slice(1772323320000, 1772323380000, 300.5, 7),  # the last: start + range / n
    ]


def test_list_or_object_bodies_are_accepted():
    objects = [{"id": f"org-1#{t}-org_usage", "name": f"{t}_org_usage", "series": []} for t in settings.USAGE_TYPES]
    assert helpers.select_usage(objects, "search") is objects[1]
    assert helpers.select_usage(objects[2], "export") is objects[2]
    assert helpers.select_usage([objects[0]], "ingestion") is objects[0]
    with pytest.raises(helpers.BodyError, match="export"):
        helpers.select_usage(objects[:2], "export")
    with pytest.raises(helpers.BodyError, match="'search' usage"):
        helpers.select_usage(objects[1], "ingestion")


def test_body_errors_name_the_field():
    with pytest.raises(helpers.BodyError, match="'id'"):
        helpers.organization_id({"name": "ingestion_org_usage"})
    with pytest.raises(helpers.BodyError, match=r"series\[\]\.value"):
        helpers.series_slices({"series": [{"@timestamp": "1", "count": "1"}]}, 60_000, 1)
    with pytest.raises(helpers.BodyError, match="not a finite number"):
        helpers.series_slices({"series": [series_entry("1", "many", "1.0")]}, 60_000, 1)
    with pytest.raises(helpers.BodyError, match="'series'"):
        helpers.series_slices({"id": "o#search-org_usage"}, 60_000, 1)


def slices_from(start: dt.datetime, width_minutes: int, byte_values: List[float]) -> List[helpers.Slice]:
    begin, width = helpers.to_ms(start), width_minutes * 60_000
    return [helpers.Slice(begin + i * width, begin + (i + 1) * width, value, int(value))
            for i, value in enumerate(byte_values)]


def test_a_slice_across_midnight_is_shared_in_proportion_to_time():
    day = dt.date(2026, 3, 1)
    # 6 h slices from 18:00 the day before: 18-24 | 00-06 ... 18-24 | 00-06; then one from 03:00
    slices = slices_from(windows.midnight(day) - dt.timedelta(hours=6), 360, [600.0, 100.0, 200.0, 300.0, 400.0, 500.0])
    rows = helpers.day_rows(slices, day, day)
    assert [(r["slice_bytes"], r["day_bytes"]) for r in rows] == [(100.0, 100.0), (200.0, 200.0), (300.0, 300.0), (400.0, 400.0)]
    shifted = slices_from(windows.midnight(day) - dt.timedelta(hours=2), 360, [60.0, 120.0, 180.0, 240.0, 300.0])
    rows = helpers.day_rows(shifted, day, day + ONE_DAY)  # the next day is not covered
    assert [r["usage_date"] for r in rows] == [day] * 5
    assert [r["day_bytes"] for r in rows] == [60.0 * 4 / 6, 120.0, 180.0, 240.0, 300.0 * 2 / 6]
    assert rows[0]["slice_start"] == windows.midnight(day) - dt.timedelta(hours=2)
    assert rows[-1]["slice_end"] == windows.midnight(day + ONE_DAY) + dt.timedelta(hours=4)
    assert rows[-1]["day_count"] == 300 * 2 / 6 and rows[-1]["slice_count"] == 300


def test_the_shares_of_a_slice_add_up_to_the_slice():
    first = dt.date(2026, 3, 1)
    # 7-minute slices never line up with midnight
    slices = slices_from(windows.midnight(first) - dt.timedelta(minutes=5), 7, [float(i + 1) for i in range(615)])
    rows = helpers.day_rows(slices, first, first + 2 * ONE_DAY)
    assert sorted({r["usage_date"] for r in rows}) == [first, first + ONE_DAY]  # the third is cut short
    shares = defaultdict(float)
    for row in rows:
        shares[row["slice_start"]] += row["day_bytes"]
    whole = {helpers.from_ms(s.start_ms): s.bytes for s in slices}
    inner = [start for start in shares if windows.midnight(first) <= start < windows.midnight(first + 2 * ONE_DAY) - dt.timedelta(minutes=7)]
    assert all(math.isclose(shares[start], whole[start], rel_tol=1e-12) for start in inner)


def test_days_not_fully_covered_are_left_out():
    day = dt.date(2026, 3, 1)
    late = slices_from(windows.midnight(day) + dt.timedelta(minutes=1), 60, [1.0] * 48)
    assert helpers.covered_days(late, day, day + ONE_DAY) == [day + ONE_DAY]
    assert helpers.day_rows([], day, day) == []
    short = slices_from(windows.midnight(day), 60, [1.0] * 23)
    assert helpers.day_rows(short, day, day) == []


LOG_SLICE = r"groups_series\[\]\.timeseries\[\]"


def log_group(key: Any, name: Any, entries: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"key": key, "name": name, "count": "0", "value": "0", "series_resolution_ms": helpers.MS_PER_DAY,
            "timeseries": entries}


def test_logs_are_asked_from_midnight_to_midnight_one_slice_a_day_at_the_largest_limit():
    first, last = dt.date(2026, 3, 1), dt.date(2026, 3, 3)
    assert helpers.logs_params("search", first, last) == {
        "from_ts": 1772323200000, "to_ts": 1772582400000, "usage_type": "search", "num_of_slices": 3, "limit": 500,
    }
    assert helpers.logs_params("export", first, first)["num_of_slices"] == 1


def test_each_log_day_is_one_exact_row_with_the_log_id_and_name():
    first = dt.date(2026, 3, 1)
    day1, day2 = ms(first), ms(first + ONE_DAY)
    body = {"name": "search_logs_usage", "is_exact": True, "groups_series": [
        log_group("log-a", "api-gateway", [series_entry(str(day1), "7", "1274155.0"), series_entry(day2, 3, 12.5)]),
        # a listed log without usage on a day has no row that day; a missing slice is no usage either
        log_group("log-b", "audit", [series_entry(day1, "0", "0.0")]),
        log_group("log-c", None, [series_entry(day2, "1", "0")]),
    ]}
    answer = helpers.flatten_logs_usage(body, "org-1", "search", first, first + ONE_DAY, ODD_NOW)
    assert answer.listed == 3 and not answer.cut
    assert [(r["usage_date"], r["resource_id"], r["resource_name"], r["day_bytes"], r["day_count"]) for r in answer.rows] == [
        (first, "log-a", "api-gateway", 1274155.0, 7.0),
        (first + ONE_DAY, "log-a", "api-gateway", 12.5, 3.0),
        (first + ONE_DAY, "log-c", None, 0.0, 1.0),
    ]
    row = answer.rows[0]
    assert (row["organization_id"], row["usage_type"], row["resource_type"], row["is_exact"]) == ("org-1", "search", "log", True)
    assert (row["slice_start"], row["slice_end"]) == (windows.midnight(first), windows.midnight(first + ONE_DAY))
    assert row["slice_bytes"] == row["day_bytes"] and row["slice_count"] == 7 and row["fetched_at"] == ODD_NOW
    assert helpers.usage_table(answer.rows).schema == settings.USAGE_SCHEMA


@pytest.mark.parametrize("listed, cut", [(0, False), (settings.LOGS_LIMIT - 1, False), (settings.LOGS_LIMIT, True)])
def test_an_answer_listing_the_limit_of_logs_may_be_cut(listed, cut):
    day = dt.date(2026, 3, 1)
    body = {"groups_series": [log_group(f"log-{i}", None, [series_entry(ms(day), 1, 1.0)]) for i in range(listed)]}
    answer = helpers.flatten_logs_usage(body, "org", "ingestion", day, day, ODD_NOW)
    assert answer.listed == listed and answer.cut is cut and len(answer.rows) == listed


@pytest.mark.parametrize("groups, field, says", [
    ([log_group("a", "x", [series_entry(1772323200001, 1, 5)])], rf"{LOG_SLICE}\.@timestamp", "is not a UTC midnight"),
    ([log_group("a", "x", [series_entry(1772323200000, 1, 5)] * 2)], rf"{LOG_SLICE}\.@timestamp", "repeats"),
    ([log_group(None, "x", [])], r"groups_series\[\]\.key", "is not a log id"),
    ([log_group(7, "x", [])], r"groups_series\[\]\.key", "is not a log id"),
    ([log_group("a", "x", []), log_group("a", "y", [])], r"groups_series\[\]\.key", "lists log 'a' twice"),
    ([{"key": "a", "name": "x"}], r"groups_series\[\]\.timeseries", "is missing"),
    ([log_group("a", "x", ["1772323200000"])], LOG_SLICE, "is not an object"),
    (["a"], r"groups_series\[\]\.key", "is not a log id"),
])
def test_a_log_body_that_cannot_be_read_is_a_body_error_naming_the_field(groups, field, says):
    day = dt.date(2026, 3, 1)
    with pytest.raises(helpers.BodyError, match=rf"'{field}' {says}"):
        helpers.flatten_logs_usage({"groups_series": groups}, "org", "ingestion", day, day, ODD_NOW)
    for body in ({"name": "x"}, [], "text"):
        with pytest.raises(helpers.BodyError, match="'groups_series'"):
            helpers.flatten_logs_usage(body, "org", "ingestion", day, day, ODD_NOW)


def test_organization_rows_are_the_organization_level():
    day = dt.date(2026, 3, 1)
    usage = {"id": "org-1#export-org_usage", "is_exact": True,
             "series": [series_entry(str(ms(day) + i * 3_600_000), "1", "10.0") for i in range(24)]}
    rows = helpers.flatten_usage(usage, "export", 24 * 3_600_000, 24, day, day, ODD_NOW)
    assert len(rows) == 24 and sum(r["day_bytes"] for r in rows) == 240.0
    assert {(r["resource_type"], r["resource_id"], r["resource_name"], r["organization_id"]) for r in rows} == {
        ("organization", "org-1", None, "org-1")}
    assert helpers.usage_table(rows).num_rows == 24


def test_the_key_fingerprint_tells_keys_and_hosts_apart_and_never_shows_the_key():
    one = helpers.key_fingerprint("https://api.eu.bronto.io", KEY)
    assert one == helpers.key_fingerprint("https://api.eu.bronto.io/", KEY)
    assert one != helpers.key_fingerprint("https://api.eu.bronto.io", KEY + "x")
    assert one != helpers.key_fingerprint("https://api.us.bronto.io", KEY)
    assert re.fullmatch(r"[0-9a-f]{16}", one) and KEY not in one


# -- the simulator --------------------------------------------------------------------------------
def test_usage_accepts_only_relative_ranges_and_720_slices(sim):
    for bad in ("Last 2 day", "Last 1 days", "Last 0 minutes", "yesterday", "2026-03-01..2026-03-02", ""):
        response = get(sim, "/usage", time_range=bad, usage_type="ingestion")
        assert response.status_code == 400, bad
        assert set(response.json()) == {"code", "type", "correlation_id", "details"}
    assert get(sim, "/usage", usage_type="ingestion").status_code == 400  # no range at all
    assert get(sim, "/usage", time_range="Last 1 hour", num_of_slices=721).status_code == 400
    assert get(sim, "/usage", time_range="Last 1 hour", num_of_slices=720, usage_type="search").status_code == 200
    assert get(sim, "/usage", time_range="Last 1 hour", from_ts=1, to_ts=2).status_code == 400
    assert get(sim, "/usage", time_range="Last 1 hour", usage_type="storage").status_code == 400
    assert get(sim, "/usage", timeRange="Last 2 days", usage_type="export").status_code == 200


def test_slices_follow_the_request_time_with_documented_defaults(sim):
    now_ms = helpers.to_ms(ODD_NOW)
    body = get(sim, "/usage", time_range="Last 90 minutes", usage_type="ingestion").json()
    assert body["id"] == f"{sim.org_id}#ingestion-org_usage" and body["name"] == "ingestion_org_usage"
    assert (body["stat"], body["key"], body["is_exact"], body["groups_series"], body["delta"]) == ("SUM", "bytes_total", True, [], {})
    series = body["series"]
    assert len(series) == 90  # 1-minute slices up to 12 hours
    assert int(series[0]["@timestamp"]) == now_ms - 90 * 60_000  # not a minute or midnight boundary
    assert all(isinstance(s[k], str) for s in series for k in ("@timestamp", "count", "value"))
    first = from_us(int(series[0]["@timestamp"]) * 1000)
    assert series[0]["@time"] == first.strftime("%a %b %d %H:%M:%S UTC %Y")
    assert float(series[0]["value"]) == pytest.approx(sim.bytes_between("ingestion", first, first + dt.timedelta(minutes=1)), rel=1e-12)
    assert body["total_count"] == sum(int(s["count"]) for s in series)
    assert len(get(sim, "/usage", time_range="Last 2 days", usage_type="search").json()["series"]) == 144  # 20 minutes
    assert len(get(sim, "/usage", time_range="Last 30 days", usage_type="search").json()["series"]) == 720  # capped
    everything = get(sim, "/usage", time_range="Last 3 hours").json()
    assert isinstance(everything, list) and [o["name"] for o in everything] == [f"{t}_org_usage" for t in settings.USAGE_TYPES]


def test_daily_rates_differ_and_stay_constant_within_a_day(sim):
    day = ODD_NOW.date() - ONE_DAY
    rates = {(t, d): sim.byte_rate(t, d) for t in settings.USAGE_TYPES for d in (day, day - ONE_DAY)}
    assert len(set(rates.values())) == len(rates)
    half = sim.bytes_between("search", windows.midnight(day), windows.midnight(day) + dt.timedelta(hours=12))
    logs = [row["quantity"] for row in sim.truth(day, day) if row["metric"] == "search_bytes"]
    assert len(logs) == sim.n_logs and half * 2 == pytest.approx(sum(logs), rel=1e-12)


def test_errors_have_the_vendor_shape(sim):
    missing, wrong = get(sim, "/usage", key=None, time_range="Last 1 hour"), get(sim, "/usage", key="nope", time_range="Last 1 hour")
    assert missing.status_code == wrong.status_code == 401
    assert wrong.json()["code"] == 401 and wrong.json()["type"] == "Unauthorized" and wrong.json()["correlation_id"]
    limited = BrontoSimulator(api_key=KEY, unprivileged_key="read-only", clock=windows.utc_now)
    with limited:
        forbidden = get(limited, "/usage", key="read-only", time_range="Last 1 hour")
        assert forbidden.status_code == 403 and forbidden.json()["type"] == "Forbidden"


def test_rate_limit_headers_and_a_429_without_retry_after(monkeypatch):
    set_now(monkeypatch, ODD_NOW)
    simulator = BrontoSimulator(api_key=KEY, rate_limit=3, clock=windows.utc_now)
    with simulator:
        answers = [get(simulator, "/usage", time_range="Last 1 hour", usage_type="export") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["RateLimit-Limit"] == "3" for a in answers)
    refused = answers[-1]
    assert "Retry-After" not in refused.headers
    assert int(refused.headers["RateLimit-Reset"]) == 100  # 3 per 300 s: one back every 100 s
    assert refused.json()["code"] == 429 and refused.json()["type"] == "Too Many Requests"


def test_per_log_usage_takes_an_absolute_window_and_its_slices_add_up_to_the_truth(sim):
    day = YESTERDAY - ONE_DAY
    from_ts, to_ts = ms(day), ms(day + 2 * ONE_DAY)
    body = get(sim, settings.LOGS_USAGE_PATH, from_ts=from_ts, to_ts=to_ts, usage_type="search", num_of_slices=48).json()
    groups = body["groups_series"]
    assert len(groups) == sim.n_logs and all(len(g["timeseries"]) == 48 and g["series_resolution_ms"] == 3_600_000 for g in groups)
    assert [float(g["value"]) for g in groups] == sorted((float(g["value"]) for g in groups), reverse=True)
    truth = truth_rows(sim, day, day + ONE_DAY)
    for group in groups:
        assert truth[(day, sim.org_id, "log", group["key"], "search_bytes")] > 0
        for offset, hours in ((0, group["timeseries"][:24]), (1, group["timeseries"][24:])):
            assert int(hours[0]["@timestamp"]) == ms(day + offset * ONE_DAY)
            expected = truth[(day + offset * ONE_DAY, sim.org_id, "log", group["key"], "search_bytes")]
            assert math.fsum(float(s["value"]) for s in hours) == pytest.approx(expected, rel=1e-12)
    # one slice a day: each slice is exactly the truth, and the logs add up to the organization
    daily = get(sim, settings.LOGS_USAGE_PATH, from_ts=from_ts, to_ts=to_ts, usage_type="search", num_of_slices=2).json()
    for group in daily["groups_series"]:
        for offset, entry in enumerate(group["timeseries"]):
            assert float(entry["value"]) == truth[(day + offset * ONE_DAY, sim.org_id, "log", group["key"], "search_bytes")]
    assert sum(float(g["timeseries"][1]["value"]) for g in daily["groups_series"]) == pytest.approx(
        sim.bytes_between("search", windows.midnight(day + ONE_DAY), windows.midnight(day + 2 * ONE_DAY)), rel=1e-12)
    names = {row["resource_id"]: row["resource_name"] for row in sim.truth(day, day)}
    assert {g["key"]: g["name"] for g in daily["groups_series"]} == names
    assert len(get(sim, settings.LOGS_USAGE_PATH, from_ts=from_ts, to_ts=to_ts, limit=2).json()["groups_series"]) == 2
    for bad in ({"limit": 501}, {"limit": 0}, {"num_of_slices": 1441}, {"time_range": "Last 1 day"}, {"to_ts": from_ts}):
        assert get(sim, settings.LOGS_USAGE_PATH, **{"from_ts": from_ts, "to_ts": to_ts, **bad}).status_code == 400, bad
    assert get(sim, settings.LOGS_USAGE_PATH, time_range="Last 1 day").status_code == 400


def test_a_crowded_day_has_more_logs_than_the_endpoint_lists(start_sim):
    crowded = YESTERDAY - ONE_DAY
    simulator = start_sim(crowded_days=[crowded], crowded_usage_types=("search",))
    assert simulator.logs_listed("search", crowded, crowded) == MAX_LOG_LIMIT == settings.LOGS_LIMIT
    assert len(simulator.logs_writing("search", crowded)) == simulator.n_logs + MAX_LOG_LIMIT
    assert simulator.logs_listed("search", YESTERDAY, YESTERDAY) == simulator.n_logs
    assert simulator.logs_listed("ingestion", crowded, crowded) == simulator.n_logs

    def listed(first: dt.date, last: dt.date, usage_type: str = "search") -> List[Dict[str, Any]]:
        return get(simulator, settings.LOGS_USAGE_PATH, from_ts=ms(first), to_ts=ms(last + ONE_DAY), usage_type=usage_type,
                   num_of_slices=(last - first).days + 1, limit=settings.LOGS_LIMIT).json()["groups_series"]

    assert len(listed(crowded, crowded)) == settings.LOGS_LIMIT
    window = listed(crowded - ONE_DAY, YESTERDAY)  # a window with the crowded day lists the limit too
    assert len(window) == settings.LOGS_LIMIT
    regular = {log["key"] for log in simulator.logs}
    assert regular <= {g["key"] for g in window}  # the regular logs write more: they are listed first
    burst = next(g for g in window if g["key"] not in regular)
    assert [float(s["value"]) > 0 for s in burst["timeseries"]] == [False, True, False]
    assert len(listed(YESTERDAY, YESTERDAY)) == len(listed(crowded, crowded, "ingestion")) == simulator.n_logs
    # the crowd takes its share of the day: all the day's logs add up to the organization
    every_log = simulator.logs_writing("search", crowded)
    assert math.fsum(simulator.log_bytes(log, "search", crowded) for log in every_log) == pytest.approx(
        simulator.byte_rate("search", crowded) * 86_400, rel=1e-12)
    # the truth: a day that cannot be had per log is the organization's
    truth = truth_rows(simulator, crowded, YESTERDAY)
    org = simulator.org_id
    assert truth[(crowded, org, "organization", org, "search_bytes")] == simulator.byte_rate("search", crowded) * 86_400
    assert not [key for key in truth if key[0] == crowded and key[4] == "search_bytes" and key[2] == "log"]
    assert {key[2] for key in truth if key[4] != "search_bytes" or key[0] != crowded} == {"log"}


def test_the_simulator_says_whether_it_named_the_organization(sim):
    day = YESTERDAY
    get(sim, settings.LOGS_USAGE_PATH, from_ts=ms(day), to_ts=ms(day + ONE_DAY))
    get(sim, settings.USAGE_PATH, key="wrong", time_range="Last 1 minute")
    assert not sim.organization_named
    get(sim, settings.USAGE_PATH, time_range="Last 1 minute", usage_type="export")
    assert sim.organization_named
    sim.reset_log()
    assert sim.organization_named  # a client keeps what it learnt


# -- the source against the simulator -----------------------------------------------------------
def test_a_first_nightly_names_the_organization_once_and_loads_each_log_exactly(sim):
    first = YESTERDAY - 6 * ONE_DAY
    result = load(start_date=first)
    assert result.days == set(windows.days(first, YESTERDAY))
    CASE.assert_requests(sim.requests, first, YESTERDAY)
    assert result.requests == len(sim.requests) == 4
    rows = stored_rows()
    assert {r["resource_type"] for r in rows} == {"log"}
    assert all(from_us(r["end_us"]) - from_us(r["start_us"]) == ONE_DAY and r["day_bytes"] == r["slice_bytes"] for r in rows)
    assert all(r["fetched_us"] == us(ODD_NOW) for r in rows)
    names = {log["key"]: log["name"] for log in sim.logs}
    assert {(r["resource_id"], r["resource_name"]) for r in rows} == set(names.items())
    assert len(rows) == 7 * len(settings.USAGE_TYPES) * sim.n_logs
    assert_per_log_and_exact(sim, first, YESTERDAY)


def test_later_runs_take_the_organization_from_the_state(sim):
    first = YESTERDAY - 4 * ONE_DAY
    assert helpers.min_requests(sim, first, YESTERDAY) == 4 and helpers.longest_chain(sim, first, YESTERDAY) == 2
    load(start_date=first)
    pipeline = pipeline_for("bronto", config.destination("duckdb"))
    resource = pipeline.state["sources"]["bronto"]["resources"][settings.USAGE_RESOURCE]
    kept = resource[settings.ORGANIZATION_STATE_KEY]
    assert kept == {"id": sim.org_id, "fingerprint": helpers.key_fingerprint(sim.base_url, KEY)}
    assert KEY not in json.dumps(pipeline.state, default=str)
    sim.reset_log()
    second = load(start_date=first)  # nightly: the lookback window only, no /usage
    lookback = YESTERDAY - 2 * ONE_DAY
    assert [r.path for r in sim.requests] == [settings.LOGS_USAGE_PATH] * 3
    assert {asked_days(r) for r in sim.requests} == {(lookback, YESTERDAY)}
    assert second.requests == 3 == helpers.min_requests(sim, lookback, YESTERDAY)
    assert helpers.longest_chain(sim, lookback, YESTERDAY) == 2  # the first one alone, then two at once
    assert_per_log_and_exact(sim, first, YESTERDAY)


def test_another_key_asks_for_the_organization_again(sim, monkeypatch):
    load(start_date=YESTERDAY)
    sim.api_key = "bronto-key-rotated"
    monkeypatch.setenv(settings.API_KEY_SETTING, sim.api_key)
    sim.reset_log()
    load(start_date=YESTERDAY)
    assert [r.path for r in sim.requests] == [settings.USAGE_PATH] + [settings.LOGS_USAGE_PATH] * 3


def test_a_backfill_of_old_days_is_one_request_per_usage_type(sim):
    last = YESTERDAY - 40 * ONE_DAY
    first = last - 49 * ONE_DAY
    assert helpers.min_requests(sim, first, last) == 4
    result = load(start_date=first, end_date=last)
    assert result.days == set(windows.days(first, last)) and result.requests == 4
    CASE.assert_requests(sim.requests, first, last)
    assert_per_log_and_exact(sim, first, last)
    # again: identical, nothing doubled, and the organization is known by now
    before = loaded_facts()
    sim.reset_log()
    again = load(start_date=first, end_date=last)
    assert again.requests == 3 == helpers.min_requests(sim, first, last)
    assert loaded_facts() == before
    # a backfill leaves the nightly cursor alone
    pipeline = pipeline_for("bronto", config.destination("duckdb"))
    assert "incremental" not in pipeline.state["sources"]["bronto"]["resources"][settings.USAGE_RESOURCE]


def test_a_backfill_is_one_chunk_up_to_1440_days():
    assert settings.LIMITS.chunk_days(7) == settings.LOGS_MAX_SLICES == 1440
    assert [w.n_days for w in settings.LIMITS.windows(dt.date(2020, 1, 1), dt.date(2023, 12, 31))] == [1440, 21]


def test_more_than_1440_days_take_one_request_per_1440_days_and_usage_type(sim):
    first = YESTERDAY - 1440 * ONE_DAY
    assert helpers.min_requests(sim, first, YESTERDAY) == 1 + 2 * 3
    result = load(start_date=first, end_date=YESTERDAY)
    windows_asked = Counter(asked_days(r) for r in logs_requests(sim))
    assert windows_asked == {(first, first + 1439 * ONE_DAY): 3, (YESTERDAY, YESTERDAY): 3}
    assert result.requests == 7 and len(result.days) == 1441
    (rows,), = warehouse(f"select count(*) from raw_bronto.{settings.USAGE_TABLE}")
    assert rows == 1441 * 3 * sim.n_logs


# -- days with more logs than the endpoint lists: the organization's /usage -------------------------
def test_a_day_with_more_logs_than_the_limit_is_loaded_for_the_organization(start_sim, monkeypatch, caplog):
    simulator = start_sim(crowded_days=[YESTERDAY])
    set_now(monkeypatch, ALIGNED_NOW)  # /usage's slices of yesterday lie inside the day: exact
    first = YESTERDAY - 2 * ONE_DAY
    expected = helpers.min_requests(simulator, first, YESTERDAY)
    chain = helpers.longest_chain(simulator, first, YESTERDAY)
    with caplog.at_level(logging.WARNING, logger="sources.bronto"):
        result = load(start_date=first)
    # probe; the window per type lists 500; then day by day; then /usage for the crowded day
    assert result.requests == len(simulator.requests) == expected == 1 + 3 + 3 * 3 + 3 and chain == 4
    by_day = Counter(asked_days(r) for r in logs_requests(simulator))
    assert by_day == {(first, YESTERDAY): 3, **{(day, day): 3 for day in windows.days(first, YESTERDAY)}}
    fallback = usage_requests(simulator)[1:]
    assert sorted(r.one("usage_type") for r in fallback) == sorted(settings.USAGE_TYPES)
    assert all(r.one("time_range") == "Last 1800 minutes" for r in fallback)
    # one level per day: the crowded day is the organization's, the others per log
    assert levels() == {(t, d): {"organization" if d == YESTERDAY else "log"}
                        for t in settings.USAGE_TYPES for d in windows.days(first, YESTERDAY)}
    expected_facts = truth_rows(simulator, first, YESTERDAY)
    facts = loaded_facts()
    assert facts.keys() == expected_facts.keys()
    assert all(rel(value, expected_facts[key]) < EXACT for key, value in facts.items())
    warnings = [r.getMessage() for r in caplog.records if r.name == "sources.bronto" and r.levelno == logging.WARNING]
    assert len(warnings) == 3 and all(str(YESTERDAY) in w and "whole organization" in w and "lists 500 logs" in w
                                      for w in warnings), warnings


def test_only_the_crowded_usage_type_of_a_day_falls_back(start_sim, caplog):
    crowded = YESTERDAY - 3 * ONE_DAY
    simulator = start_sim(crowded_days=[crowded], crowded_usage_types=("search",))
    first = YESTERDAY - 5 * ONE_DAY
    expected = helpers.min_requests(simulator, first, YESTERDAY)
    with caplog.at_level(logging.WARNING, logger="sources.bronto"):
        result = load(start_date=first)
    assert result.requests == expected == 1 + 3 + 6 + 1
    assert [r.one("usage_type") for r in logs_requests(simulator)[3:]] == ["search"] * 6
    (fallback,) = usage_requests(simulator)[1:]
    assert fallback.one("usage_type") == "search"
    assert {key: level for key, level in levels().items() if level != {"log"}} == {("search", crowded): {"organization"}}
    rows = stored_rows()
    assert {r["usage_date"] for r in rows if r["resource_type"] == "organization"} == {crowded}
    assert_organization_days_close_to_truth(simulator, rows)
    expected_facts = truth_rows(simulator, first, YESTERDAY)
    assert loaded_facts().keys() == expected_facts.keys()
    assert all(rel(value, expected_facts[key]) < EXACT for key, value in loaded_facts().items() if key[2] == "log")
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "sources.bronto"]
    assert warning.startswith(f"bronto: search usage of {crowded} is loaded for the whole organization")


def test_a_reload_replaces_a_day_whatever_level_it_had(start_sim):
    crowded = YESTERDAY - ONE_DAY
    simulator = start_sim(crowded_days=[crowded])
    first = crowded - ONE_DAY
    load(start_date=first, end_date=YESTERDAY)
    assert {d for (_, d), level in levels().items() if level == {"organization"}} == {crowded}
    # the crowd is gone: the day is read per log, the organization's slices are replaced
    simulator.crowded_days = frozenset()
    load(start_date=first, end_date=YESTERDAY)
    assert set().union(*levels().values()) == {"log"}
    assert_per_log_and_exact(simulator, first, YESTERDAY)
    # and back: the logs of the day are replaced by the organization's slices
    simulator.crowded_days = frozenset([crowded])
    load(start_date=first, end_date=YESTERDAY)
    assert {d for (_, d), level in levels().items() if level == {"organization"}} == {crowded}
    assert all(len(level) == 1 for level in levels().values())
    assert_organization_days_close_to_truth(simulator, stored_rows())
    assert loaded_facts().keys() == truth_rows(simulator, first, YESTERDAY).keys()


def test_a_day_listing_exactly_the_limit_counts_as_cut_and_is_not_asked_twice(start_sim):
    simulator = start_sim(n_logs=MAX_LOG_LIMIT)
    expected = helpers.min_requests(simulator, YESTERDAY, YESTERDAY)
    assert helpers.longest_chain(simulator, YESTERDAY, YESTERDAY) == 3
    result = load(start_date=YESTERDAY)
    # a one-day window is already the day's own answer: no day-by-day step
    assert result.requests == len(simulator.requests) == expected == 1 + 3 + 3
    assert set().union(*levels().values()) == {"organization"}
    assert loaded_facts().keys() == truth_rows(simulator, YESTERDAY, YESTERDAY).keys()


def test_a_server_clock_ahead_of_ours_fails_the_fallback_instead_of_skipping_its_first_day(start_sim):
    crowded = YESTERDAY - ONE_DAY
    simulator = start_sim(crowded_days=[crowded])
    simulator.clock = lambda: ODD_NOW + dt.timedelta(minutes=5)
    result = load_provider("bronto", "duckdb", start_date=crowded - ONE_DAY)
    assert result.status == "failed"
    assert "do not cover" in result.error and str(crowded) in result.error and settings.USAGE_PATH in result.error
    assert not warehouse_has_rows()


# -- pace and keys ------------------------------------------------------------------------------
def test_a_rate_limited_run_waits_for_the_reset_and_completes(start_sim):
    simulator = start_sim(rate_limit=3, rate_period_s=3.0)
    result = load(start_date=YESTERDAY)
    # the probe, then three at once: the last of them refused once and asked again after ~1 s
    assert len(simulator.requests) == 5
    assert [r.path for r in simulator.requests].count(settings.LOGS_USAGE_PATH) == 4
    assert result.requests == 5
    assert_per_log_and_exact(simulator, YESTERDAY, YESTERDAY)


def test_a_key_without_the_usage_privilege_fails_fast(start_sim, monkeypatch):
    simulator = start_sim(unprivileged_key="read-only-key")
    monkeypatch.setenv(settings.API_KEY_SETTING, "read-only-key")
    result = load_provider("bronto", "duckdb", start_date=YESTERDAY)
    assert result.status == "failed" and len(simulator.requests) == 1
    assert "HTTP 403" in result.error and settings.API_KEY_SETTING in result.error
    assert "read-only-key" not in result.error


def test_a_key_rejected_on_a_later_run_fails_after_one_request(sim):
    load(start_date=YESTERDAY)
    sim.reset_log()
    sim.inject(Fault(status=401, body={"code": 401, "type": "Unauthorized", "details": f"invalid key {KEY}"}, times=5))
    result = load_provider("bronto", "duckdb", start_date=YESTERDAY)
    assert result.status == "failed" and len(sim.requests) == 1
    assert sim.requests[0].path == settings.LOGS_USAGE_PATH
    assert "HTTP 401" in result.error and KEY not in result.error


def test_an_unknown_usage_type_is_a_provider_error_naming_the_setting():
    from sources.bronto import bronto_source
    from sources.http import ProviderError

    with pytest.raises(ProviderError, match="SOURCES__BRONTO__USAGE_TYPES has unknown usage types \\['egress'\\]"):
        bronto_source(api_key="bronto-key", usage_types=["ingestion", "egress"])


# -- figures that are not finite numbers ------------------------------------------------------------
@pytest.mark.parametrize("value", ["NaN", "nan", "Infinity", "-inf", "+Infinity", "1e400",
                                   float("nan"), float("inf"), float("-inf")])
def test_a_number_that_is_not_finite_is_a_body_error(value):
    with pytest.raises(helpers.BodyError, match=r"'series\[\]\.value' is not a finite number"):
        helpers.finite_number(value, "series[].value")


@pytest.mark.parametrize("value, number", [("546", 546.0), ("1274155.0", 1274155.0), (" 12 ", 12.0), (7, 7.0),
                                           (0.5, 0.5), ("-3", -3.0), (None, 0.0), ("", 0.0)])
def test_finite_numbers_and_numeric_strings_are_coerced(value, number):
    assert helpers.finite_number(value, "series[].count") == number


@pytest.mark.parametrize("value", ["many", "0x10", True, [], {}])
def test_anything_else_is_not_a_number(value):
    with pytest.raises(helpers.BodyError, match=r"'groups_series\[\]\.timeseries\[\]\.count' is not a finite number"):
        helpers.finite_number(value, "groups_series[].timeseries[].count")


@pytest.mark.parametrize("field", ["@timestamp", "count", "value"])
@pytest.mark.parametrize("bad", ["NaN", "-inf", float("inf")])
def test_series_slices_refuse_a_field_that_is_not_finite(field, bad):
    entries = [series_entry("1772323200000", "546", "1274155.0"), series_entry("1772323260000", "7", "300.5")]
    entries[1][field] = bad
    with pytest.raises(helpers.BodyError, match=rf"'series\[\]\.{field}' is not a finite number"):
        helpers.series_slices({"series": entries}, 120_000, 2)


@pytest.mark.parametrize("field", ["@timestamp", "count", "value"])
def test_log_slices_refuse_a_field_that_is_not_finite(field):
    day = dt.date(2026, 3, 1)
    entry = series_entry(us(windows.midnight(day)) // 1000, "3", "5.0")
    entry[field] = "Infinity"
    body = {"name": "x", "groups_series": [log_group("log-1", "x", [entry])]}
    with pytest.raises(helpers.BodyError, match=rf"'groups_series\[\]\.timeseries\[\]\.{field}' is not a finite"):
        helpers.flatten_logs_usage(body, "org", "ingestion", day, day, ODD_NOW)


def spoil_slice(field: str, bad: Any, list_key: str = "series"):
    """A mutate fault's function: one slice of the answer gets `bad` in `field`."""

    def mutate(body: Any) -> Any:
        if list_key == "series":
            slices = (body[0] if isinstance(body, list) else body)["series"]
        else:
            slices = body["groups_series"][0]["timeseries"]
        slices[len(slices) // 2][field] = bad
        return body

    return mutate


def assert_failed_on(result, endpoint: str, field: str, first: dt.date) -> None:
    assert result.status == "failed"
    assert "\n" not in result.error and "bronto" in result.error, result.error
    assert f"[{endpoint} window {first}" in result.error, result.error
    assert f"{field}' is not a finite number" in result.error, result.error
    assert not warehouse_has_rows()


@pytest.mark.parametrize("field, bad", [("value", "NaN"), ("value", "Infinity"), ("count", "-inf"), ("@timestamp", "NaN")])
def test_a_usage_answer_with_a_figure_that_is_not_finite_fails_and_loads_nothing(start_sim, field, bad):
    simulator = start_sim(crowded_days=[YESTERDAY])
    # the probe and the three logs answers (each cut) come first; then the organization's
    # /usage answers, of which the first is the bad one: the logs' days are not loaded either
    fault = simulator.inject(Fault(kind="mutate", path_contains=settings.USAGE_PATH, after=4, mutate=spoil_slice(field, bad)))
    result = load_provider("bronto", "duckdb", start_date=YESTERDAY)
    assert fault.served == 1 and simulator.requests[-1].path == settings.USAGE_PATH
    assert_failed_on(result, settings.USAGE_PATH, f"series[].{field}", YESTERDAY)


@pytest.mark.parametrize("field, bad", [("value", float("nan")), ("count", float("inf")), ("@timestamp", float("-inf"))])
def test_json_nan_and_infinity_literals_fail_and_load_nothing(sim, monkeypatch, field, bad):
    """The simulator writes these as JSON's NaN / Infinity / -Infinity literals. The simplejson
    that dlt brings refuses them as a malformed body; Python's own json module (which requests
    falls back to) reads them as floats, which the source must refuse by field."""
    first = ODD_NOW.date() - 3 * ONE_DAY
    spoil = spoil_slice(field, bad, list_key="groups_series")
    sim.inject(Fault(kind="mutate", path_contains=settings.LOGS_USAGE_PATH, times=FOREVER, mutate=spoil))
    refused = load_provider("bronto", "duckdb", start_date=first)
    assert refused.status == "failed" and f"[{settings.LOGS_USAGE_PATH} window {first}" in refused.error
    assert not warehouse_has_rows()

    monkeypatch.setattr(requests.models, "complexjson", json)
    sim.reset_log()
    result = load_provider("bronto", "duckdb", start_date=first)
    assert any(request.fault == "mutate" for request in sim.requests)
    assert_failed_on(result, settings.LOGS_USAGE_PATH, f"groups_series[].timeseries[].{field}", first)


@pytest.mark.parametrize("field, bad", [("value", "NaN"), ("count", "-inf"), ("@timestamp", "Infinity")])
def test_a_per_log_answer_with_a_figure_that_is_not_finite_fails_and_loads_nothing(sim, field, bad):
    last = ODD_NOW.date() - 50 * ONE_DAY
    first = last - 4 * ONE_DAY
    # the second of the three logs answers is the bad one: the first one's days are not loaded either
    fault = sim.inject(Fault(kind="mutate", path_contains=settings.LOGS_USAGE_PATH, after=1,
                             mutate=spoil_slice(field, bad, list_key="groups_series")))
    result = load_provider("bronto", "duckdb", start_date=first, end_date=last)
    assert fault.served == 1
    assert_failed_on(result, settings.LOGS_USAGE_PATH, f"groups_series[].timeseries[].{field}", first)


# -- warehouses of earlier versions, and the models --------------------------------------------------
def load_as_an_earlier_version(simulator: BrontoSimulator, destination: str, first: dt.date, last: dt.date) -> None:
    """The organization's days first..last as an earlier version loaded them: two slices a day in
    `usage_slices` (its columns then), and the resource's cursor on `last`."""

    @dlt.resource(name="usage_slices", write_disposition={"disposition": "merge", "strategy": "delete-insert"},
                  merge_key=["usage_type", "usage_date"],
                  columns=row_key_hints(("organization_id", "usage_type", "usage_date", "slice_start")))
    def usage_slices(usage_date=windows.day_cursor(first)):
        rows = []
        for day in windows.days(first, last):
            for usage_type in settings.USAGE_TYPES:
                for half in range(2):
                    start = windows.midnight(day) + half * dt.timedelta(hours=12)
                    value = simulator.bytes_between(usage_type, start, start + dt.timedelta(hours=12))
                    rows.append({"organization_id": simulator.org_id, "usage_type": usage_type, "usage_date": day,
                                 "slice_start": start, "slice_end": start + dt.timedelta(hours=12), "slice_bytes": value,
                                 "slice_count": 1, "day_bytes": value, "day_count": 1.0,
                                 "usage_id": f"{simulator.org_id}#{usage_type}-org_usage",
                                 "usage_name": f"{usage_type}_org_usage", "is_exact": True, "fetched_at": ODD_NOW})
        yield rows

    @dlt.source(name="bronto", max_table_nesting=0)
    def earlier_bronto():
        return usage_slices

    pipeline = pipeline_for("bronto", config.destination(destination))
    pipeline.run(earlier_bronto()).raise_on_failed_jobs()


def fct(destination: str) -> Dict[tuple, tuple]:
    rows = query(destination, "select usage_date, account_id, resource_type, resource_id, metric, quantity, resource_name, unit "
                              "from analytics.fct_daily_usage where provider = 'bronto'")
    return {tuple(row[:5]): (float(row[5]), row[6], row[7]) for row in rows}


def test_an_upgraded_warehouse_keeps_its_earlier_days_and_carries_on_from_its_cursor(sim, destination):
    earlier_last = YESTERDAY - 3 * ONE_DAY
    earlier_first = earlier_last - 4 * ONE_DAY
    load_as_an_earlier_version(sim, destination, earlier_first, earlier_last)
    result = load(destination)  # the first nightly of this version
    reread = earlier_last - 2 * ONE_DAY  # the cursor minus the lookback
    assert result.days == set(windows.days(reread, YESTERDAY))
    assert {asked_days(r) for r in logs_requests(sim)} == {(reread, YESTERDAY)}
    assert result.requests == 4  # the organization is not in an earlier version's state
    report = models.build(config.destination(destination))
    assert not report.failed, report.failed
    facts = fct(destination)
    org = sim.org_id
    truth = truth_rows(sim, earlier_first, YESTERDAY)
    # days only the earlier table holds stay the organization's; the days read again are per log
    assert {key[:3] for key in facts} == {
        (day, org, "organization" if day < reread else "log") for day in windows.days(earlier_first, YESTERDAY)}
    for day in windows.days(earlier_first, reread - ONE_DAY):
        for usage_type in settings.USAGE_TYPES:
            quantity, name, unit = facts[(day, org, "organization", org, f"{usage_type}_bytes")]
            assert rel(quantity, sim.byte_rate(usage_type, day) * 86_400) < EXACT and name is None and unit == "bytes"
    per_log = {key: value for key, value in facts.items() if key[2] == "log"}
    assert per_log.keys() == {key for key in truth if key[0] >= reread}
    assert all(rel(quantity, truth[key]) < EXACT for key, (quantity, _, _) in per_log.items())
    # nothing counts twice: each day's logs add up to the organization's bytes
    for day in windows.days(reread, earlier_last):
        total = sum(quantity for key, (quantity, _, _) in per_log.items() if key[0] == day and key[4] == "search_bytes")
        assert rel(total, sim.byte_rate("search", day) * 86_400) < 1e-9
    # and the earlier table is left as it was
    (legacy_rows,), = query(destination, f"select count(*) from raw_bronto.{settings.LEGACY_TABLE}")
    assert legacy_rows == 5 * 3 * 2


def test_the_facts_hold_each_log_with_its_name_and_the_resources_view_lists_them(start_sim, destination):
    crowded = YESTERDAY - ONE_DAY
    simulator = start_sim(crowded_days=[crowded], crowded_usage_types=("export",))
    first = YESTERDAY - 3 * ONE_DAY
    load(destination, start_date=first)
    report = models.build(config.destination(destination))
    assert not report.failed, report.failed
    facts = fct(destination)
    names = {log["key"]: log["name"] for log in simulator.logs}
    assert {key[3]: name for key, (_, name, _) in facts.items() if key[2] == "log"} == names
    truth = truth_rows(simulator, first, YESTERDAY)
    assert facts.keys() == truth.keys()
    assert all(rel(quantity, truth[key]) < EXACT for key, (quantity, _, _) in facts.items() if key[2] == "log")
    resources = query(destination, "select * from analytics.int_bronto__resources order by resource_type, resource_id")
    org = simulator.org_id
    assert resources == sorted(
        [("bronto", org, None, "log", key, name, None, None, None, None, None) for key, name in names.items()]
        + [("bronto", org, None, "organization", org, None, None, None, None, None, None)], key=lambda r: (r[3], r[4]))
    columns = [name for (name,) in query(destination, "select column_name from information_schema.columns where "
                                                      "table_schema = 'analytics' and table_name = 'int_bronto__resources' "
                                                      "order by ordinal_position")]
    assert columns == ["provider", "account_id", "account_name", "resource_type", "resource_id", "resource_name",
                       "project_id", "project_name", "profile_id", "profile_name", "plan"]


def test_a_log_renamed_is_listed_once_with_its_latest_name(sim):
    load(start_date=YESTERDAY - 2 * ONE_DAY)
    renamed = sim.logs[0]["key"]
    with duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"]) as con:
        con.execute(f"update raw_bronto.{settings.USAGE_TABLE} set resource_name = 'old-name' "
                    "where resource_id = ? and usage_date < ?", [renamed, YESTERDAY])
    models.build(config.destination("duckdb"))
    names = dict(warehouse("select resource_id, resource_name from analytics.int_bronto__resources"))
    assert len(names) == sim.n_logs and names[renamed] == sim.logs[0]["name"]


def test_a_day_holding_both_levels_fails_the_models_test(sim):
    load(start_date=YESTERDAY - ONE_DAY)
    models.build(config.destination("duckdb"))
    before = warehouse("select * from analytics.fct_daily_usage where provider = 'bronto' order by all")
    with duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"]) as con:  # what no load writes
        con.execute(f"insert into raw_bronto.{settings.USAGE_TABLE} select * replace ('organization' as resource_type, "
                    f"organization_id as resource_id) from raw_bronto.{settings.USAGE_TABLE} where usage_date = ? limit 1",
                    [YESTERDAY])
    report = models.build(config.destination("duckdb"))
    assert list(report.failed) == ["bronto"] and "one_level_per_day" in report.failed["bronto"]
    assert warehouse("select * from analytics.fct_daily_usage where provider = 'bronto' order by all") == before
