"""Bronto's quirks: relative windows that end "now", at most 720 slices whose boundaries follow
the request time, numbers sent as strings, a list or an object body, slices split into UTC days,
and overlapping runs that must count every byte once."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from collections import defaultdict
from typing import Any, Dict, List, Optional

import duckdb
import pytest
import requests

from pipelines.load import load_provider
from simulators.base import Fault
from simulators.bronto import BrontoSimulator
from sources import windows
from sources.bronto import helpers, settings
from tests.cases.bronto import CASE, FACTS_SQL
from tests.providers import truth_rows

ONE_DAY = dt.timedelta(days=1)
UTC = dt.timezone.utc
KEY = "bronto-key-5678"
TODAY = windows.midnight(dt.datetime.now(UTC).date())
ODD_NOW = TODAY + dt.timedelta(hours=7, minutes=13, seconds=27, milliseconds=481)
# at 05:57:30 a window of yesterday is `Last 1800 minutes` in 720 slices of 150 s, and it starts
# exactly 150 s before yesterday's midnight: every slice lies inside one day
ALIGNED_NOW = TODAY + dt.timedelta(hours=5, minutes=57, seconds=30)


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


def configure(monkeypatch, simulator: BrontoSimulator) -> None:
    monkeypatch.setenv(settings.API_KEY_SETTING, simulator.api_key)
    monkeypatch.setenv("SOURCES__BRONTO__BASE_URL", simulator.base_url)


def load(**kwargs: Any):
    result = load_provider("bronto", "duckdb", **kwargs)
    assert result.status == "ok", result.error
    return result


def warehouse(sql: str) -> List[tuple]:
    with duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"], read_only=True) as con:
        return con.execute(sql).fetchall()


def loaded_facts() -> Dict[tuple, float]:
    return {
        (day, account, rtype, rid, metric): float(quantity)
        for day, account, rtype, rid, metric, quantity in warehouse(FACTS_SQL.format(dataset="raw_bronto"))
    }


def stored_slices() -> List[Dict[str, Any]]:
    columns = ("usage_type", "usage_date", "start_us", "end_us", "slice_bytes", "day_bytes", "fetched_us")
    rows = warehouse(
        "select usage_type, usage_date, epoch_us(slice_start), epoch_us(slice_end), slice_bytes, day_bytes, "
        "epoch_us(fetched_at) from raw_bronto.usage_slices order by usage_type, usage_date, slice_start"
    )
    return [dict(zip(columns, row)) for row in rows]


def from_us(us: int) -> dt.datetime:
    return helpers.EPOCH + dt.timedelta(microseconds=us)


def us(instant: dt.datetime) -> int:
    return (instant - helpers.EPOCH) // dt.timedelta(microseconds=1)


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def assert_every_query_relative(simulator: BrontoSimulator) -> None:
    """Each /usage request: `Last <N> minutes`, `num_of_slices = min(720, N)`, nothing absolute."""
    assert simulator.requests
    for request in simulator.requests:
        assert request.path == settings.USAGE_PATH
        assert set(request.query) == {"time_range", "num_of_slices", "usage_type"}, request.query
        minutes = int(re.fullmatch(r"Last (\d+) minutes?", request.one("time_range")).group(1))
        assert int(request.one("num_of_slices")) == min(settings.MAX_SLICES, minutes) <= 720


def assert_days_tiled_once(rows: List[Dict[str, Any]]) -> None:
    """Every stored (usage type, day) is covered by its slices exactly once: their parts inside
    the day add up to 24 h with no overlap and no gap, so no byte is counted twice."""
    by_day = defaultdict(list)
    for row in rows:
        by_day[(row["usage_type"], row["usage_date"])].append(row)
    for (usage_type, day), pieces in by_day.items():
        low, high = us(windows.midnight(day)), us(windows.midnight(day + ONE_DAY))
        parts = sorted((max(p["start_us"], low), min(p["end_us"], high)) for p in pieces)
        assert parts[0][0] == low and parts[-1][1] == high, (usage_type, day)
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:])), f"overlap or gap in {usage_type} {day}"


def straddle_bound(simulator: BrontoSimulator, usage_type: str, day: dt.date, pieces: List[Dict[str, Any]]) -> float:
    """The most the proportional split can miss on `day`: for each slice across a midnight m,
    (m - start)(end - m) / width × the rate difference of the two days."""
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


def assert_close_to_truth(simulator: BrontoSimulator, rows: List[Dict[str, Any]]) -> None:
    """Each day's bytes equal the truth but for the shares of slices across midnight, within
    the bound those shares allow; each whole slice equals the exact bytes of its interval."""
    by_day = defaultdict(list)
    for row in rows:
        by_day[(row["usage_type"], row["usage_date"])].append(row)
        exact = simulator.bytes_between(row["usage_type"], from_us(row["start_us"]), from_us(row["end_us"]))
        assert rel(row["slice_bytes"], exact) < 1e-9, row
    truth = truth_rows(simulator, min(d for _, d in by_day), max(d for _, d in by_day))
    org = simulator.org_id
    for (usage_type, day), pieces in by_day.items():
        expected = truth[(day, org, "organization", org, f"{usage_type}_bytes")]
        loaded = sum(p["day_bytes"] for p in pieces)
        bound = straddle_bound(simulator, usage_type, day, pieces)
        assert abs(loaded - expected) <= bound + 1e-9 * expected, (usage_type, day, loaded, expected, bound)
        assert bound < 0.01 * expected


def get(simulator: BrontoSimulator, path: str, key: Optional[str] = KEY, **params: Any) -> requests.Response:
    headers = {settings.API_KEY_HEADER: key} if key else {}
    return requests.get(simulator.base_url + path, params=params, headers=headers, timeout=10)


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
    assert half * 2 == pytest.approx(sim.truth(day, day)[1]["quantity"], rel=1e-12)


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


def test_per_log_usage_takes_an_absolute_window_and_adds_up_to_the_organization(sim):
    day = ODD_NOW.date() - ONE_DAY
    from_ts, to_ts = int(helpers.to_ms(windows.midnight(day))), int(helpers.to_ms(windows.midnight(day + ONE_DAY)))
    body = get(sim, settings.LOGS_USAGE_PATH, from_ts=from_ts, to_ts=to_ts, usage_type="search", num_of_slices=24).json()
    groups = body["groups_series"]
    assert len(groups) == sim.n_logs and all(len(g["timeseries"]) == 24 and g["series_resolution_ms"] == 3_600_000 for g in groups)
    assert [float(g["value"]) for g in groups] == sorted((float(g["value"]) for g in groups), reverse=True)
    assert sum(float(g["value"]) for g in groups) == pytest.approx(sim.truth(day, day)[1]["quantity"], rel=1e-9)
    assert len(get(sim, settings.LOGS_USAGE_PATH, from_ts=from_ts, to_ts=to_ts, limit=2).json()["groups_series"]) == 2
    for bad in ({"limit": 501}, {"num_of_slices": 1441}, {"time_range": "Last 1 day"}, {"to_ts": from_ts}):
        assert get(sim, settings.LOGS_USAGE_PATH, **{"from_ts": from_ts, "to_ts": to_ts, **bad}).status_code == 400, bad
    assert get(sim, settings.LOGS_USAGE_PATH, time_range="Last 1 day").status_code == 400


# -- the source against the simulator -----------------------------------------------------------
def test_slices_aligned_with_midnight_give_the_exact_day(sim, monkeypatch):
    set_now(monkeypatch, ALIGNED_NOW)
    yesterday = ALIGNED_NOW.date() - ONE_DAY
    load(start_date=yesterday)
    assert [r.one("time_range") for r in sim.requests] == ["Last 1800 minutes"] * 3
    rows = stored_slices()
    assert all(from_us(r["start_us"]) >= windows.midnight(yesterday) for r in rows)
    assert all(r["day_bytes"] == r["slice_bytes"] for r in rows)
    assert len(rows) == 3 * 576  # 150-second slices
    expected = truth_rows(sim, yesterday, yesterday)
    assert loaded_facts().keys() == expected.keys()
    assert all(rel(value, expected[key]) < 1e-9 for key, value in loaded_facts().items())


def test_a_week_is_one_relative_request_per_type_stored_slice_by_slice(sim):
    first, last = ODD_NOW.date() - 7 * ONE_DAY, ODD_NOW.date() - ONE_DAY
    result = load(start_date=first)
    assert result.requests == 3 and result.days == set(windows.days(first, last))
    assert_every_query_relative(sim)
    CASE.assert_requests(sim.requests, first, last)
    rows = stored_slices()
    assert all(r["start_us"] < r["end_us"] for r in rows)
    assert all(r["fetched_us"] == us(ODD_NOW) for r in rows)
    assert_days_tiled_once(rows)
    assert_close_to_truth(sim, rows)
    assert loaded_facts().keys() == truth_rows(sim, first, last).keys()


def test_a_backfill_keeps_to_its_days_although_the_window_ends_now(sim):
    first, last = ODD_NOW.date() - 9 * ONE_DAY, ODD_NOW.date() - 6 * ONE_DAY
    result = load(start_date=first, end_date=last)
    assert result.days == set(windows.days(first, last))
    assert_every_query_relative(sim)
    assert {r["usage_date"] for r in stored_slices()} == set(windows.days(first, last))


@pytest.mark.parametrize("advance", [dt.timedelta(hours=5, minutes=41, seconds=13.17),
                                     dt.timedelta(days=1, hours=3, minutes=2, seconds=9.5)])
def test_two_overlapping_runs_count_each_byte_once(sim, monkeypatch, advance):
    first = ODD_NOW.date() - 4 * ONE_DAY
    load(start_date=first)
    before = stored_slices()
    later = ODD_NOW + advance
    set_now(monkeypatch, later)
    sim.reset_log()
    second = load(start_date=first)  # nightly: reads the lookback days again, in other slices
    last = later.date() - ONE_DAY
    reread = set(windows.days(ODD_NOW.date() - 3 * ONE_DAY, last))
    assert second.days == reread
    assert_every_query_relative(sim)
    after = stored_slices()
    old_starts = {r["start_us"] for r in before}
    assert not old_starts & {r["start_us"] for r in after if r["usage_date"] in reread}, "slices lined up"
    for row in after:  # each day holds the slices of one run only
        assert row["fetched_us"] == us(later if row["usage_date"] in reread else ODD_NOW), row
    assert_days_tiled_once(after)
    assert_close_to_truth(sim, after)
    expected = truth_rows(sim, first, last)
    facts = loaded_facts()
    assert facts.keys() == expected.keys()
    assert all(rel(value, expected[key]) < CASE.tolerance for key, value in facts.items())


def test_numbers_as_numbers_and_list_bodies_load_the_same(sim, monkeypatch, tmp_path):
    first = ODD_NOW.date() - 2 * ONE_DAY
    load(start_date=first)
    reference = stored_slices()
    variant = BrontoSimulator(api_key=KEY, seed=5, clock=windows.utc_now, list_body=True, numbers_as_strings=False)
    with variant:
        body = get(variant, "/usage", time_range="Last 1 hour", usage_type="search").json()
        assert isinstance(body, list) and isinstance(body[0]["series"][0]["value"], float)
        configure(monkeypatch, variant)
        monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "variant.duckdb"))
        monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "variant-dlt"))
        variant.reset_log()
        load(start_date=first)
        assert stored_slices() == reference


def test_a_rate_limited_run_waits_for_the_reset_and_completes(monkeypatch):
    set_now(monkeypatch, ODD_NOW)
    simulator = BrontoSimulator(api_key=KEY, rate_limit=2, rate_period_s=2.0, clock=windows.utc_now)
    with simulator:
        configure(monkeypatch, simulator)
        result = load(start_date=ODD_NOW.date() - ONE_DAY)
        assert len(simulator.requests) == 4  # the third was refused once, then retried after ~1 s
        assert_every_query_relative(simulator)
    assert {key[4] for key in loaded_facts()} == {f"{t}_bytes" for t in settings.USAGE_TYPES}
    assert result.requests == 4


def test_a_key_without_the_usage_privilege_fails_fast(monkeypatch):
    set_now(monkeypatch, ODD_NOW)
    simulator = BrontoSimulator(api_key=KEY, unprivileged_key="read-only-key", clock=windows.utc_now)
    with simulator:
        configure(monkeypatch, simulator)
        monkeypatch.setenv(settings.API_KEY_SETTING, "read-only-key")
        result = load_provider("bronto", "duckdb", start_date=ODD_NOW.date() - ONE_DAY)
        assert result.status == "failed" and len(simulator.requests) == 1
    assert "HTTP 403" in result.error and settings.API_KEY_SETTING in result.error
    assert "read-only-key" not in result.error


def test_a_server_clock_ahead_of_ours_fails_instead_of_skipping_the_first_day(sim, monkeypatch):
    sim.clock = lambda: ODD_NOW + dt.timedelta(minutes=5)
    result = load_provider("bronto", "duckdb", start_date=ODD_NOW.date() - 2 * ONE_DAY)
    assert result.status == "failed"
    assert "do not cover" in result.error and str(ODD_NOW.date() - 2 * ONE_DAY) in result.error


# -- backfills of past days: /usage/organizations/logs, exact ----------------------------------
def test_a_backfill_of_old_days_reads_exact_days_from_the_per_log_endpoint(sim):
    last = ODD_NOW.date() - 50 * ONE_DAY
    first = last - 9 * ONE_DAY
    result = load(start_date=first, end_date=last)
    assert result.days == set(windows.days(first, last))
    # one minute of /usage names the organization; then one absolute request per usage type
    probe, *logs = sim.requests
    assert probe.path == settings.USAGE_PATH and probe.one("time_range") == "Last 1 minute"
    assert sorted(r.one("usage_type") for r in logs) == sorted(settings.USAGE_TYPES)
    for request in logs:
        assert request.path == settings.LOGS_USAGE_PATH and "time_range" not in request.query
        assert int(request.one("from_ts")) == us(windows.midnight(first)) // 1000
        assert int(request.one("to_ts")) == us(windows.midnight(last + ONE_DAY)) // 1000
        assert request.one("num_of_slices") == "10" and request.one("limit") == str(settings.LOGS_LIMIT)
    # day slices from midnight to midnight: every day equals the truth to the byte
    rows = stored_slices()
    assert all(from_us(r["end_us"]) - from_us(r["start_us"]) == ONE_DAY for r in rows)
    expected = truth_rows(sim, first, last)
    assert loaded_facts().keys() == expected.keys()
    assert all(rel(value, expected[key]) < 1e-9 for key, value in loaded_facts().items())
    # and again: identical, nothing doubled
    before = loaded_facts()
    load(start_date=first, end_date=last)
    assert loaded_facts() == before


def test_recent_backfills_stay_on_the_relative_endpoint(sim):
    last = ODD_NOW.date() - 20 * ONE_DAY
    load(start_date=last - 3 * ONE_DAY, end_date=last)
    assert_every_query_relative(sim)


def test_as_many_logs_as_the_endpoint_lists_fails_instead_of_undercounting(monkeypatch):
    with BrontoSimulator(api_key=KEY, seed=5, clock=windows.utc_now, n_logs=settings.LOGS_LIMIT + 3) as crowded:
        set_now(monkeypatch, ODD_NOW)
        configure(monkeypatch, crowded)
        last = ODD_NOW.date() - 40 * ONE_DAY
        result = load_provider("bronto", "duckdb", start_date=last - ONE_DAY, end_date=last)
    assert result.status == "failed"
    assert "lists 500 logs, its maximum" in result.error and settings.LOGS_USAGE_PATH in result.error
    assert "backfill days of the last 30 days" in result.error
    assert not warehouse_has_rows()


def warehouse_has_rows() -> bool:
    try:
        return bool(warehouse(f"select count(*) from raw_bronto.{settings.USAGE_TABLE}")[0][0])
    except Exception:  # noqa: BLE001 - no table: nothing was loaded
        return False


def test_log_slices_off_midnight_are_a_body_error():
    day = dt.date(2026, 3, 1)
    body = {"name": "x", "groups_series": [{"timeseries": [series_entry(us(windows.midnight(day)) // 1000 + 1, 1, 5)]}]}
    with pytest.raises(helpers.BodyError, match=r"timeseries\[\].@timestamp"):
        helpers.flatten_logs_usage(body, "org", "ingestion", day, day, ODD_NOW)
    empty = helpers.flatten_logs_usage({"groups_series": []}, "org", "ingestion", day, day + ONE_DAY, ODD_NOW)
    assert [(r["usage_date"], r["day_bytes"]) for r in empty] == [(day, 0.0), (day + ONE_DAY, 0.0)]


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
    body = {"name": "x", "groups_series": [{"timeseries": [entry]}]}
    with pytest.raises(helpers.BodyError, match=rf"'groups_series\[\]\.timeseries\[\]\.{field}' is not a finite"):
        helpers.flatten_logs_usage(body, "org", "ingestion", day, day, ODD_NOW)


def spoil_slice(field: str, bad: Any, list_key: str = "series"):
    """A mutate fault's function: one slice of the answer gets `bad` in `field`."""

    def mutate(body: Any) -> Any:
        if list_key == "series":
            slices = body["series"]
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
def test_a_usage_answer_with_a_figure_that_is_not_finite_fails_and_loads_nothing(sim, field, bad):
    first = ODD_NOW.date() - 3 * ONE_DAY
    # the second usage type's answer is the bad one: the first one's days are not loaded either
    fault = sim.inject(Fault(kind="mutate", path_contains=settings.USAGE_PATH, after=1, mutate=spoil_slice(field, bad)))
    result = load_provider("bronto", "duckdb", start_date=first)
    assert fault.served == 1
    assert_failed_on(result, settings.USAGE_PATH, f"series[].{field}", first)


@pytest.mark.parametrize("field, bad", [("value", float("nan")), ("count", float("inf")), ("@timestamp", float("-inf"))])
def test_json_nan_and_infinity_literals_fail_and_load_nothing(sim, monkeypatch, field, bad):
    """The simulator writes these as JSON's NaN / Infinity / -Infinity literals. The simplejson
    that dlt brings refuses them as a malformed body; Python's own json module (which requests
    falls back to) reads them as floats, which the source must refuse by field."""
    first = ODD_NOW.date() - 3 * ONE_DAY
    sim.inject(Fault(kind="mutate", path_contains=settings.USAGE_PATH, times=2, mutate=spoil_slice(field, bad)))
    refused = load_provider("bronto", "duckdb", start_date=first)
    assert refused.status == "failed" and f"[{settings.USAGE_PATH} window {first}" in refused.error
    assert not warehouse_has_rows()

    monkeypatch.setattr(requests.models, "complexjson", json)
    sim.reset_log()
    result = load_provider("bronto", "duckdb", start_date=first)
    assert sim.requests[0].fault == "mutate"
    assert_failed_on(result, settings.USAGE_PATH, f"series[].{field}", first)


@pytest.mark.parametrize("field, bad", [("value", "NaN"), ("count", "-inf"), ("@timestamp", "Infinity")])
def test_a_per_log_answer_with_a_figure_that_is_not_finite_fails_and_loads_nothing(sim, field, bad):
    last = ODD_NOW.date() - 50 * ONE_DAY
    first = last - 4 * ONE_DAY
    fault = sim.inject(Fault(kind="mutate", path_contains=settings.LOGS_USAGE_PATH, after=1,
                             mutate=spoil_slice(field, bad, list_key="groups_series")))
    result = load_provider("bronto", "duckdb", start_date=first, end_date=last)
    assert fault.served == 1
    assert_failed_on(result, settings.LOGS_USAGE_PATH, f"groups_series[].timeseries[].{field}", first)


def test_an_unknown_usage_type_is_a_provider_error_naming_the_setting():
    from sources.bronto import bronto_source
    from sources.http import ProviderError

    with pytest.raises(ProviderError, match="SOURCES__BRONTO__USAGE_TYPES has unknown usage types \\['egress'\\]"):
        bronto_source(api_key="bronto-key", usage_types=["ingestion", "egress"])
