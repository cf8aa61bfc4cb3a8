"""Rafay: one request window per day, offset paging and its failure modes, flattening."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import time
from collections import Counter, defaultdict
from typing import Any, Dict, List

import dlt
import duckdb
import pytest
import requests
from dlt.pipeline.exceptions import PipelineStepFailed

from simulators.base import Fault, day_start, iso_z
from simulators.rafay import MAX_LIMIT, RafaySimulator
from sources import windows
from sources.http import ProviderClient, ProviderError
from sources.rafay import helpers, rafay_source, settings
from tests.cases import rafay as case

KEY = "rafay-test-key"
LAST = windows.last_complete_day()
FIRST = LAST - dt.timedelta(days=4)

PUBLISHED_EXAMPLE: Dict[str, Any] = {
    "kind": "compute", "partner_id": "p-1", "organization_id": "o-partner",
    "instance_usage_data": [{
        "instance_organization_id": "o-1", "instance_organization_name": "acme",
        "instance_project_id": "pr-1", "instance_project_name": "default",
        "profile_id": "prof-1", "profile_name": "gpu-a100", "instance_id": "i-1", "instance_name": "gpu-1",
        "created_at": "2026-02-10T08:00:00Z",
        "parameters": [
            {"name": "CPU", "usage": "20.59h", "is_label": True, "raw_usage": 20.594723, "label_value": "24"},
            {"name": "Disk", "usage": "20.59h", "is_label": True, "raw_usage": 20.594723, "label_value": "150"},
            {"name": "GPU", "usage": "20.59h", "is_label": True, "raw_usage": 20.594723, "label_value": "1"},
            {"name": "Memory", "usage": "20.59h", "is_label": True, "raw_usage": 20.594723, "label_value": "256"},
            {"name": "ServiceID", "usage": "20.59h", "is_label": True, "raw_usage": 20.594723,
             "label_value": "svc-gpu-vm"},
        ],
        "usage": "20.59h", "raw_usage": 20.594723,
        "start_time": "2026-02-12T03:24:19Z", "end_time": "2026-02-13T00:00:00Z",
    }],
    "count": 1, "offset": 0, "limit": 10,
    "range_from": "2026-02-12T00:00:00Z", "range_to": "2026-02-13T00:00:00Z",
}


@pytest.fixture
def sim():
    with RafaySimulator(api_key=KEY) as simulator:
        yield simulator


@pytest.fixture
def env(monkeypatch, isolated_env):
    """The key configured; the rest (working dir, DuckDB file) is isolated by conftest."""
    monkeypatch.setenv("SOURCES__RAFAY__API_KEY", KEY)
    return monkeypatch


def run(sim: RafaySimulator, tmp_path, **options: Any) -> dlt.Pipeline:
    options.setdefault("instance_page_size", case.INSTANCE_PAGE_SIZE)
    options.setdefault("profile_page_size", case.PROFILE_PAGE_SIZE)
    options.setdefault("start_date", FIRST)
    options.setdefault("end_date", LAST)
    pipeline = dlt.pipeline(pipeline_name="rafay_usage", destination="duckdb", dataset_name="raw_rafay",
                            pipelines_dir=str(tmp_path / "pipelines"))
    pipeline.run(rafay_source(base_url=sim.base_url, **options), loader_file_format="parquet")
    return pipeline


def query(pipeline: dlt.Pipeline, sql: str) -> List[tuple]:
    with pipeline.sql_client() as client:
        return [tuple(row) for row in client.execute_sql(sql.format(dataset=pipeline.dataset_name))]


def provider_error(exc: BaseException) -> ProviderError:
    """The ProviderError behind a pipeline failure (dlt wraps it in its own exceptions)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ProviderError):
            return exc
        seen.add(id(exc))
        exc = getattr(exc, "exception", None) or exc.__cause__ or exc.__context__
    raise AssertionError("no ProviderError in the failure")


def one_day(day: dt.date):
    return day_start(day), day_start(day + dt.timedelta(days=1))


def assert_nothing_loaded() -> None:
    """No usage table exists in the warehouse: a failed run left nothing behind."""
    warehouse = duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"])
    try:
        assert warehouse.execute("select count(*) from information_schema.tables "
                                 "where table_schema = 'raw_rafay' and table_name like '%usage%'").fetchone() == (0,)
    finally:
        warehouse.close()


def loaded_facts(pipeline: dlt.Pipeline) -> Dict[tuple, float]:
    rows = query(pipeline, case.FACTS_SQL) + query(pipeline, case.PROFILE_FACTS_SQL)
    return {tuple(row[:5]): row[5] for row in rows}


def truth(sim: RafaySimulator) -> Dict[tuple, float]:
    """Every endpoint's daily figures: the instances' and the profiles'."""
    return {(f["usage_date"], f["account_id"], f["resource_type"], f["resource_id"], f["metric"]): f["quantity"]
            for f in sim.truth(FIRST, LAST) + sim.profile_truth(FIRST, LAST)}


# -- request windows and paging --------------------------------------------------------------
def test_one_window_per_day_for_every_endpoint_and_rows_match_truth(sim, env, tmp_path):
    pipeline = run(sim, tmp_path)
    for request in sim.requests:
        day = case.request_day(request)  # asserts the window is exactly one UTC day
        assert FIRST <= day <= LAST
    asked = {(request.path, case.request_day(request)) for request in sim.requests}
    assert asked == {(path, day) for path in case.ENDPOINTS for day in windows.days(FIRST, LAST)}
    case.assert_requests(sim.requests, FIRST, LAST)
    assert loaded_facts(pipeline) == truth(sim)


def test_pages_to_the_end_with_limit_and_offset(sim, env, tmp_path):
    run(sim, tmp_path)
    pages = defaultdict(list)
    for request in sim.requests:
        pages[(request.path, case.request_day(request))].append(
            (int(request.one("offset")), int(request.one("limit"))))
    multi_page = 0
    for (path, day), sent in pages.items():
        limit = case.ENDPOINTS[path][2]
        n_rows = case.rows_per_window(sim, path, day)
        expected_pages = helpers.pages_for(n_rows, limit)
        assert sorted(sent) == [(i * limit, limit) for i in range(expected_pages)], (path, day, n_rows)
        assert expected_pages * limit >= n_rows  # the last page reached the last row
        multi_page += expected_pages > 1
    assert multi_page >= 4, "the small page sizes should make several windows page"
    assert len(sim.requests) == case.min_requests(sim, FIRST, LAST)


def test_a_controller_that_clamps_limit_is_paged_by_the_limit_it_echoes(env, tmp_path):
    """Asked for 5 instances a page, the controller serves 3 and says `limit: 3`: a page of 3 is
    full, not the last, and the next offset is 3 (the rows that came back)."""
    with RafaySimulator(api_key=KEY, max_limit=3) as clamped:
        pipeline = run(clamped, tmp_path)
        assert loaded_facts(pipeline) == truth(clamped)
        pages = defaultdict(list)
        for request in clamped.requests:
            pages[(request.path, case.request_day(request))].append((int(request.one("offset")), int(request.one("limit"))))
        clamped_windows = 0
        for (path, day), sent in pages.items():
            asked = case.ENDPOINTS[path][2]
            served = min(asked, 3)
            n_rows = case.rows_per_window(clamped, path, day)
            assert {limit for _, limit in sent} == {asked}, (path, day)  # always asks for the large page
            assert sorted(offset for offset, _ in sent) == [i * served for i in range(helpers.pages_for(n_rows, served))]
            clamped_windows += served < asked and n_rows > served
        assert clamped_windows >= 4, "the clamp should cut several windows short of the asked page"


def test_days_are_fetched_concurrently_and_yielded_in_order(env):
    with RafaySimulator(api_key=KEY, latency_ms=200) as slow:
        source = rafay_source(base_url=slow.base_url, start_date=FIRST, end_date=LAST, max_workers=4)
        tables = [item for item in source.resources["compute_instance_usage"] if hasattr(item, "num_rows")]
        assert len(slow.requests) == 5  # one page per day at the default page size
        # the first day alone, then the other four at once (the server saw them overlap)
        assert slow.max_concurrency == 4, slow.max_concurrency
    # usage and its parameters each in day order, several days to a table (BATCH_ROWS)
    for parameters in (False, True):
        days = [day for table in tables if ("parameter_name" in table.column_names) == parameters
                for day in table.column("usage_date").to_pylist()]
        assert days == sorted(days) and days[0] == FIRST and days[-1] == LAST


def test_ordered_map_keeps_order_and_bounds_the_pool():
    running, peak, lock = [0], [0], threading.Lock()

    def work(item: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01 * (5 - item % 5))
        with lock:
            running[0] -= 1
        return item * 10

    assert list(helpers.ordered_map(work, range(12), max_workers=3)) == [i * 10 for i in range(12)]
    assert peak[0] <= 3


def test_ordered_map_runs_the_first_item_alone_and_raises_the_first_error():
    calls: List[int] = []

    def fail(item: int) -> int:
        calls.append(item)
        raise ProviderError("rafay", "HTTP 401", "path", item)

    with pytest.raises(ProviderError, match="HTTP 401"):
        list(helpers.ordered_map(fail, range(10), max_workers=4))
    assert calls == [0]


def test_ignored_offset_fails_loudly_and_loads_nothing(env, tmp_path):
    with RafaySimulator(api_key=KEY, ignore_offset=True) as broken:
        with pytest.raises(PipelineStepFailed) as failure:
            run(broken, tmp_path)
        # offset 0, then offset=limit served the first page again: stopped there
        assert max(int(r.one("offset")) for r in broken.requests) == case.INSTANCE_PAGE_SIZE
    error = provider_error(failure.value)
    assert "ignored offset=" in str(error) and "repeats rows" in str(error)
    assert_nothing_loaded()
    # the failed run left nothing behind: a good run of the same pipeline loads each row once
    with RafaySimulator(api_key=KEY) as fixed:
        pipeline = run(fixed, tmp_path)
        for table, key in case.CASE.tables.items():
            columns = ", ".join(key)
            assert query(pipeline, f"select count(*) - count(distinct ({columns})) from {{dataset}}.{table}") == [(0,)]
        loaded = {tuple(row[:5]): row[5] for row in query(pipeline, case.FACTS_SQL)}
        assert len(loaded) == len(fixed.truth(FIRST, LAST))


def twice(body: Dict[str, Any]) -> Dict[str, Any]:
    """A mutate fault's function: the page lists its first instance a second time."""
    body["instance_usage_data"].append(dict(body["instance_usage_data"][0]))
    return body


def extra_parameter(parameter: Dict[str, Any]):
    """A mutate fault's function: the page's first instance gets one more parameter."""

    def mutate(body: Dict[str, Any]) -> Dict[str, Any]:
        body["instance_usage_data"][0]["parameters"].append(parameter)
        return body

    return mutate


@pytest.mark.parametrize("mutate, expected", [
    (twice, r"instance_id '{id}' appears twice in one page"),
    (extra_parameter({"name": "cpu ", "usage": "1.00h", "is_label": True, "raw_usage": 1.0, "label_value": "2"}),
     r"'parameters\[\]\.name' 'cpu ' .*'cpu_hours'.*instance_id '{id}'"),
    (extra_parameter({"name": "Usage", "usage": "3.00", "is_label": False, "raw_usage": 3.0}),
     r"'parameters\[\]\.name' 'Usage' .*'usage_hours'.*instance_id '{id}'"),
], ids=["instance twice", "CPU and 'cpu '", "quantity 'Usage'"])
def test_a_malformed_page_fails_its_window_and_loads_nothing(env, tmp_path, mutate, expected):
    with RafaySimulator(api_key=KEY) as sim:
        fault = sim.inject(Fault(kind="mutate", path_contains=settings.COMPUTE_INSTANCE_PATH, mutate=mutate))
        with pytest.raises(PipelineStepFailed) as failure:
            run(sim, tmp_path)
        assert fault.served == 1
        first_id = sim.instance_rows("compute", *one_day(FIRST))[0]["instance_id"]
    error = str(provider_error(failure.value))
    assert re.search(expected.format(id=first_id), error), error
    assert error.startswith("rafay: ") and "\n" not in error
    assert f"[{settings.COMPUTE_INSTANCE_PATH} window {FIRST}..{FIRST}]" in error, error
    assert_nothing_loaded()


def test_ignored_offset_never_yields_a_row_twice():
    with RafaySimulator(api_key=KEY, ignore_offset=True) as broken:
        client = ProviderClient("rafay", broken.base_url, {"x-api-key": KEY}, settings.KEY_SETTING)
        window = windows.Window(LAST, LAST)
        paginator = helpers.UsagePaginator(2, settings.INSTANCE_KEY_FIELDS, settings.COMPUTE_INSTANCE_PATH, window)
        seen: List[str] = []
        with pytest.raises(ProviderError, match="ignored offset=2") as failure:
            for page in client.paginate(settings.COMPUTE_INSTANCE_PATH, helpers.window_params(window),
                                        paginator, "$", window):
                seen.extend(row["instance_id"] for row in helpers.usage_rows(page[0]))
        assert len(seen) == 2 and len(set(seen)) == 2
        assert str(window) in str(failure.value) and KEY not in str(failure.value)


def _response(body: Dict[str, Any]) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    return response


def _page(ids: List[str], count: int) -> Dict[str, Any]:
    return {"profile_usage_data": [{"profile_id": i, "instance_organization_id": "o"} for i in ids], "count": count}


def _clamped(ids: List[str], count: int, limit: int) -> Dict[str, Any]:
    return {**_page(ids, count), "limit": limit}


@pytest.mark.parametrize(
    "asked, pages, next_offsets",
    [
        (2, [_page(["a", "b"], 5), _page(["c", "d"], 5), _page(["e"], 5)], [2, 4, None]),  # count reached
        (2, [_page(["a", "b"], 4), _page(["c", "d"], 4)], [2, None]),  # offset reaches count
        (2, [_page(["a", "b"], 2), _page(["c", "d"], 2), _page([], 2)], [2, 4, None]),  # count = page size
        (2, [_page([], 0)], [None]),
        # asked for 5, served 3 and told so: full pages until the short one (or count) ends it
        (5, [_clamped(["a", "b", "c"], 7, 3), _clamped(["d", "e", "f"], 7, 3), _clamped(["g"], 7, 3)], [3, 6, None]),
        (5, [_clamped(["a", "b", "c"], 6, 3), _clamped(["d", "e", "f"], 6, 3)], [3, None]),
        # `count` may be the page's: a full clamped page is followed up to an empty one
        (5, [_clamped(["a", "b", "c"], 3, 3), _clamped([], 0, 3)], [3, None]),
        # no `limit` echoed: a short page may be a clamped one, the end only if `count` says so
        (5, [_page(["a", "b", "c"], 3), _page([], 0)], [3, None]),
        # a page shorter than the echoed limit is the end
        (5, [_clamped(["a", "b"], 2, 3)], [None]),
    ],
)
def test_paginator_stop_rules(asked, pages, next_offsets):
    paginator = helpers.UsagePaginator(asked, settings.PROFILE_KEY_FIELDS)
    for body, next_offset in zip(pages, next_offsets):
        paginator.update_state(_response(body), [body])
        assert paginator.has_next_page == (next_offset is not None)
        if next_offset is not None:
            assert paginator.current_value == next_offset


def test_paginator_rejects_a_row_twice_in_one_page():
    paginator = helpers.UsagePaginator(5, settings.PROFILE_KEY_FIELDS, "/profile", "2026-02-12..2026-02-12")
    body = _page(["a", "b", "a"], 3)
    with pytest.raises(ProviderError, match=r"\('a', 'o'\) appears twice in one page.*\[/profile window 2026-02-12"):
        paginator.update_state(_response(body), [body])


def test_unique_keys_names_the_repeated_instance():
    rows = [{"instance_id": "i-1"}, {"instance_id": "i-2"}, {"instance_id": "i-1"}]
    with pytest.raises(ProviderError, match=r"instance_id 'i-1' appears twice in one page.*\[/compute window d\]"):
        helpers.unique_keys(rows, settings.INSTANCE_KEY_FIELDS, "/compute", "d")
    assert helpers.unique_keys(rows[:2], settings.INSTANCE_KEY_FIELDS) == {("i-1",), ("i-2",)}


def test_paginator_rejects_a_repeated_page():
    paginator = helpers.UsagePaginator(2, settings.PROFILE_KEY_FIELDS, "/profile", "2026-02-12..2026-02-12")
    body = _page(["a", "b"], 6)
    paginator.update_state(_response(body), [body])
    with pytest.raises(ProviderError, match=r"ignored offset=2.*\[/profile window 2026-02-12"):
        paginator.update_state(_response(body), [body])


# -- configuration -------------------------------------------------------------------------------
def test_service_profile_path_is_configurable(env, tmp_path):
    custom = "/apis/billing.envmgmt.io/v1/metrics/partner/profile/kind/services/usage"
    with RafaySimulator(api_key=KEY, service_profile_path=custom) as moved:
        with pytest.raises(PipelineStepFailed) as failure:
            run(moved, tmp_path / "default")
        assert "HTTP 404" in str(failure.value) and settings.SERVICE_PROFILE_PATH in str(failure.value)

        moved.reset_log()
        pipeline = run(moved, tmp_path / "custom", service_profile_path=custom)
        assert {r.path for r in moved.requests} == set(case.ENDPOINTS) - {settings.SERVICE_PROFILE_PATH} | {custom}
        loaded = query(pipeline, "select usage_date, profile_id, instance_organization_id, raw_usage "
                                 "from {dataset}.service_profile_usage")
        expected = [(day, row["profile_id"], row["instance_organization_id"], row["raw_usage"])
                    for day in windows.days(FIRST, LAST) for row in moved.profile_rows("service", *one_day(day))]
        assert sorted(loaded) == sorted(expected) and expected


def test_options_come_from_config(sim, env, tmp_path):
    env.setenv("SOURCES__RAFAY__BASE_URL", sim.base_url)
    env.setenv("SOURCES__RAFAY__INSTANCE_PAGE_SIZE", "3")
    source = rafay_source(start_date=LAST, end_date=LAST)
    list(source.resources["compute_instance_usage"])
    assert {r.one("limit") for r in sim.requests} == {"3"}
    assert all(r.path == settings.COMPUTE_INSTANCE_PATH for r in sim.requests)


def test_missing_base_url_names_the_setting(env):
    with pytest.raises(Exception, match="SOURCES__RAFAY__BASE_URL"):
        rafay_source()


def test_bad_key_fails_after_one_request(sim, env, tmp_path):
    env.setenv("SOURCES__RAFAY__API_KEY", "stale-key-4711")
    with pytest.raises(PipelineStepFailed) as failure:
        run(sim, tmp_path)
    message = str(provider_error(failure.value))
    assert "HTTP 401" in message and settings.KEY_SETTING in message and "stale-key-4711" not in message
    assert len(sim.requests) == 1


# -- simulator -----------------------------------------------------------------------------------
def test_simulator_auth_and_validation(sim):
    url = sim.base_url + settings.COMPUTE_INSTANCE_PATH
    params = {"range_from": "2026-02-12T00:00:00Z", "range_to": "2026-02-13T00:00:00Z"}
    denied = requests.get(url, params=params, timeout=5)
    assert denied.status_code == 401 and "error" in denied.json()
    headers = {"x-api-key": KEY}
    assert requests.get(url, params={"range_to": params["range_to"]}, headers=headers, timeout=5).status_code == 400
    bad = dict(params, range_from="2026-02-12T00:00:00")  # no zone
    assert requests.get(url, params=bad, headers=headers, timeout=5).status_code == 400
    too_many = dict(params, limit=MAX_LIMIT + 1)
    assert requests.get(url, params=too_many, headers=headers, timeout=5).status_code == 400
    body = requests.get(url, params=params, headers=headers, timeout=5).json()
    assert body["limit"] == 10 and body["offset"] == 0 and body["kind"] == "compute"


def test_simulator_aggregates_over_the_range(sim):
    day = LAST - dt.timedelta(days=1)
    two_days = {r["instance_id"]: r["raw_usage"] for r in sim.instance_rows("compute", day_start(day), day_start(day + dt.timedelta(days=2)))}
    first = {r["instance_id"]: r["raw_usage"] for r in sim.instance_rows("compute", *one_day(day))}
    second = {r["instance_id"]: r["raw_usage"] for r in sim.instance_rows("compute", *one_day(LAST))}
    for instance_id, hours in two_days.items():
        assert hours == pytest.approx(first.get(instance_id, 0) + second.get(instance_id, 0), abs=2e-6)
    noon = day_start(LAST) + dt.timedelta(hours=12)
    half = {r["instance_id"]: r["raw_usage"] for r in sim.instance_rows("compute", day_start(LAST), noon)}
    for instance_id, hours in half.items():
        assert hours == pytest.approx(second[instance_id] / 2, abs=1e-6)  # a partial day counts proportionally


def test_simulator_has_instances_starting_and_stopping_inside_the_history(sim):
    days = set(windows.days(LAST - dt.timedelta(days=29), LAST))
    instances = sim.instances["compute"] + sim.instances["service"]
    started = [i for i in instances if i["created_day"] in days
               and (sim.running_interval(i, i["created_day"]) or (0, 0))[0] > 0]
    stopped = [i for i in instances if i["deleted_day"] in days
               and (sim.running_interval(i, i["deleted_day"]) or (0, 86400))[1] < 86400]
    assert started and stopped, "instances start and stop inside days"
    for instance in stopped:
        assert sim.running_interval(instance, instance["deleted_day"] + dt.timedelta(days=1)) is None
    orgs = {row["instance_organization_id"] for day in days for row in sim.instance_rows("compute", *one_day(day))}
    assert len(orgs) > 1


def test_simulator_filters_by_tenant_org_and_counts_the_total(sim):
    org = sim.orgs[0]["id"]
    body = requests.get(sim.base_url + settings.COMPUTE_PROFILE_PATH, headers={"x-api-key": KEY}, timeout=5, params={
        "range_from": iso_z(day_start(LAST)), "range_to": iso_z(day_start(LAST + dt.timedelta(days=1))),
        "instance_organization_id": org, "limit": 1}).json()
    assert {row["instance_organization_id"] for row in body["profile_usage_data"]} <= {org}
    assert body["count"] == len([r for r in sim.profile_rows("compute", *one_day(LAST)) if r["instance_organization_id"] == org])


# -- flattening and metrics (pure) ----------------------------------------------------------
def test_metric_of_a_label_parameter_is_label_value_times_hours():
    assert helpers.parameter_metric(
        {"name": "GPU", "is_label": True, "raw_usage": 2.5, "label_value": "8"}) == ("gpu_hours", 20.0)
    assert helpers.parameter_metric(
        {"name": "CPU", "is_label": True, "raw_usage": 20.594723, "label_value": "24"}) == ("cpu_hours", 24 * 20.594723)


def test_metric_of_a_quantity_parameter_is_its_raw_usage():
    assert helpers.parameter_metric({"name": "Storage", "is_label": False, "raw_usage": 1200.5}) == ("storage_hours", 1200.5)
    assert helpers.parameter_metric(
        {"name": "Storage", "is_label": False, "raw_usage": "10", "label_value": None}) == ("storage_hours", 10.0)


def test_non_numeric_labels_are_no_metric():
    assert helpers.parameter_metric(
        {"name": "ServiceID", "is_label": True, "raw_usage": 3.0, "label_value": "svc-gpu-vm"}) is None
    assert helpers.parameter_metric({"name": "GPU", "is_label": True, "raw_usage": None, "label_value": "1"}) is None
    assert helpers.metric_name("Memory") == "memory_hours"
    assert helpers.metric_name(" Block Storage ") == "block_storage_hours"


def test_flatten_the_published_instance_example():
    rows, parameters = helpers.flatten_instances(PUBLISHED_EXAMPLE, dt.date(2026, 2, 12))
    assert len(rows) == 1
    row = rows[0]
    assert row["usage_date"] == dt.date(2026, 2, 12) and row["instance_id"] == "i-1"
    assert row["instance_organization_id"] == "o-1" and row["raw_usage"] == 20.594723 and row["usage"] == "20.59h"
    assert row["start_time"] == dt.datetime(2026, 2, 12, 3, 24, 19, tzinfo=dt.timezone.utc)
    assert row["partner_id"] == "p-1" and row["organization_id"] == "o-partner"
    metrics = {p["parameter_name"]: (p["metric"], p["quantity"]) for p in parameters}
    assert metrics == {
        "CPU": ("cpu_hours", 24 * 20.594723), "Disk": ("disk_hours", 150 * 20.594723),
        "GPU": ("gpu_hours", 1 * 20.594723), "Memory": ("memory_hours", 256 * 20.594723),
        "ServiceID": (None, None),
    }
    assert all(p["instance_id"] == "i-1" and p["instance_organization_id"] == "o-1" for p in parameters)
    table = helpers.to_table(rows, settings.INSTANCE_SCHEMA)
    assert table.schema == settings.INSTANCE_SCHEMA and table.num_rows == 1
    assert helpers.to_table(parameters, settings.INSTANCE_PARAMETER_SCHEMA).num_rows == 5


def test_flatten_profiles_finds_the_list_and_keeps_the_org():
    envelope = {
        "kind": "service", "organization_id": "o-partner", "count": 2,
        "profiles_usage_data": [
            {"profile_id": "prof-1", "profile_name": "postgres", "instance_organization_id": "o-1",
             "usage": "3.00h", "raw_usage": 3.0,
             "parameters": [{"name": "Storage", "is_label": False, "raw_usage": 600.0, "usage": "600.00"}]},
            {"profile_id": "prof-2", "raw_usage": 1.5, "parameters": []},  # no tenant org given
        ],
    }
    rows, parameters = helpers.flatten_profiles(envelope, dt.date(2026, 2, 12))
    assert [(r["profile_id"], r["instance_organization_id"], r["raw_usage"]) for r in rows] == [
        ("prof-1", "o-1", 3.0), ("prof-2", "o-partner", 1.5)]
    assert parameters == [{
        "usage_date": dt.date(2026, 2, 12), "profile_id": "prof-1", "instance_organization_id": "o-1",
        "parameter_name": "Storage", "is_label": False, "label_value": None, "raw_usage": 600.0,
        "usage": "600.00", "metric": "storage_hours", "quantity": 600.0,
    }]
    helpers.to_table(rows, settings.PROFILE_SCHEMA)
    helpers.to_table(parameters, settings.PROFILE_PARAMETER_SCHEMA)


@pytest.mark.parametrize("extra, metric", [
    ({"name": "cpu ", "usage": "1.00h", "is_label": True, "raw_usage": 1.0, "label_value": "2"}, "cpu_hours"),
    ({"name": " Gpu", "usage": "1.00h", "is_label": True, "raw_usage": 1.0, "label_value": "1"}, "gpu_hours"),
    ({"name": "Usage", "usage": "3.00", "is_label": False, "raw_usage": 3.0}, "usage_hours"),
])
def test_parameters_that_collide_on_one_metric_are_a_malformed_answer(extra, metric):
    body = json.loads(json.dumps(PUBLISHED_EXAMPLE))
    body["instance_usage_data"][0]["parameters"].append(extra)
    with pytest.raises(ProviderError, match=rf"'parameters\[\]\.name' {extra['name']!r} .*{metric}.*instance_id 'i-1'"
                                            rf".*\[/compute window 2026-02-12"):
        helpers.flatten_instances(body, dt.date(2026, 2, 12), "/compute", "2026-02-12..2026-02-12")


def test_usage_rows_takes_the_first_usage_data_list():
    assert helpers.usage_rows({"count": 0, "meta_usage_data": {"x": 1}, "a_usage_data": [1], "b_usage_data": [2]}) == [1]
    assert helpers.usage_rows({"count": 0, "profile_usage_data": None}) == []
    with pytest.raises(ProviderError, match="_usage_data"):
        helpers.usage_rows({"count": 0, "items": []}, "/profile")


def test_missing_required_fields_name_the_field():
    body = json.loads(json.dumps(PUBLISHED_EXAMPLE))
    del body["instance_usage_data"][0]["instance_id"]
    with pytest.raises(ProviderError, match=r"'instance_id'.*\[/compute window 2026-02-12"):
        helpers.flatten_instances(body, dt.date(2026, 2, 12), "/compute", "2026-02-12..2026-02-12")
    body = json.loads(json.dumps(PUBLISHED_EXAMPLE))
    body["instance_usage_data"][0]["raw_usage"] = "n/a"
    with pytest.raises(ProviderError, match="raw_usage"):
        helpers.flatten_instances(body, dt.date(2026, 2, 12))


def test_pages_for_matches_the_stop_rules():
    assert [helpers.pages_for(n, 5) for n in (0, 1, 4, 5, 6, 10, 11)] == [1, 1, 1, 2, 2, 2, 3]
    assert Counter(helpers.pages_for(n, 400) for n in range(0, 400)) == Counter({1: 400})
