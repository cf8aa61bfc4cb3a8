"""The benchmark's reference: the same simulated APIs, loaded with only requests, pyarrow and duckdb.

It asks for the fewest requests the APIs allow (the largest page sizes, one Neon window of up to 60
days, one Adverity range per granularity, one Rafay window per day and endpoint, one Bronto probe
and one per-log call per usage type),
turns every page straight into rows of the daily fact shape (`usage_date, provider, account_id,
account_name, resource_type, resource_id, resource_name, metric, quantity, unit`) and appends
them to one DuckDB table. No raw tables, no state, no merge, no models: it shows how fast this
work can be done on this machine, to compare the real pipeline with.

Concurrency follows the APIs' rules, as the pipeline's does: the four providers side by side,
Neon's cursor pages one after another (paced under its documented limit), Adverity one call at a
time, Rafay's days and endpoints in parallel, Bronto's usage types in parallel.

    python bench/baseline.py --first 2026-09-23 --last 2026-11-21 --database data/bench/baseline.duckdb

reads the same settings as the pipeline (SOURCES__<PROVIDER>__API_KEY, __BASE_URL, Neon's
__ORG_ID) and prints one JSON line: fact rows written and requests sent per provider.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterable, List, Optional

import duckdb
import pyarrow as pa
import requests

UTC = dt.timezone.utc
ONE_DAY = dt.timedelta(days=1)
FACT_SCHEMA = pa.schema([
    ("usage_date", pa.date32()), ("provider", pa.string()), ("account_id", pa.string()),
    ("account_name", pa.string()), ("resource_type", pa.string()), ("resource_id", pa.string()),
    ("resource_name", pa.string()), ("metric", pa.string()), ("quantity", pa.float64()), ("unit", pa.string()),
])

NEON_METRICS = {
    "compute_unit_seconds": "cu_seconds", "root_branch_bytes_month": "byte_months",
    "child_branch_bytes_month": "byte_months", "instant_restore_bytes_month": "byte_months",
    "public_network_transfer_bytes": "bytes", "private_network_transfer_bytes": "bytes",
    "extra_branches_month": "branch_months", "snapshot_storage_bytes_month": "byte_months",
}
NEON_PAGE = 100  # projects per page, the API's maximum
NEON_MAX_DAYS = 60  # daily data: one window covers at most 60 days
ADVERITY_PAGE = 100  # the API's maximum page_size
RAFAY_API = "/apis/billing.envmgmt.io/v1/metrics/partner"
RAFAY_ENDPOINTS = (  # path, resource type, page size (the vendor collection's; no maximum is documented)
    (f"{RAFAY_API}/instance/kind/compute/usage", "compute_instance", 400),
    (f"{RAFAY_API}/instance/kind/service/usage", "service_instance", 400),
    (f"{RAFAY_API}/profile/kind/compute/usage", "compute_profile", 100),
    (f"{RAFAY_API}/profile/kind/service/usage", "service_profile", 100),
)
RAFAY_WORKERS = 16
BRONTO_TYPES = ("ingestion", "search", "export")
BRONTO_MAX_DAYS = 1440  # per-log num_of_slices maximum: one slice a day
BRONTO_LOGS_LIMIT = 500  # the most logs a per-log answer lists


class Warehouse:
    """One DuckDB table of daily facts; pages from every thread are appended under one lock."""

    def __init__(self, path: str):
        if os.path.exists(path):
            os.remove(path)
        self.con = duckdb.connect(path)
        columns = ", ".join(f"{f.name} {'date' if f.name == 'usage_date' else 'double' if f.name == 'quantity' else 'varchar'}"
                            for f in FACT_SCHEMA)
        self.con.execute(f"create table daily_usage ({columns})")
        self.lock = threading.Lock()

    def append(self, rows: Dict[str, List[Any]]) -> None:
        if not rows["usage_date"]:
            return
        page = pa.Table.from_pydict(rows, schema=FACT_SCHEMA)  # noqa: F841 - read by the SQL below
        with self.lock:
            self.con.execute("insert into daily_usage select * from page")

    def count(self) -> int:
        with self.lock:
            return self.con.execute("select count(*) from daily_usage").fetchone()[0]


def new_rows() -> Dict[str, List[Any]]:
    return {field.name: [] for field in FACT_SCHEMA}


def add(rows, day, provider, account_id, account_name, resource_type, resource_id, resource_name, metric, quantity, unit):
    for name, value in zip(FACT_SCHEMA.names, (day, provider, account_id, account_name, resource_type, resource_id,
                                               resource_name, metric, quantity, unit)):
        rows[name].append(value)


class Client:
    """GET with a key header; 429 and 5xx are retried after a pause, and every request is counted."""

    def __init__(self, base_url: str, headers: Dict[str, str]):
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.local = threading.local()
        self.sent = 0
        self.lock = threading.Lock()

    def get(self, path: str, params: Dict[str, Any]) -> Any:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        for attempt in range(6):
            response = self.local.session.get(self.base_url + path, params=params, headers=self.headers, timeout=60)
            with self.lock:
                self.sent += 1
            if response.status_code == 429 or response.status_code >= 500:
                time.sleep(min(30.0, 0.5 * 2**attempt))
                continue
            response.raise_for_status()
            return response.json()
        response.raise_for_status()


class Pace:
    """A token bucket: `per_minute` requests a minute, the bucket full at the start."""

    def __init__(self, per_minute: float, burst: float):
        self.rate, self.capacity = per_minute / 60.0, burst
        self.tokens, self.updated = burst, time.monotonic()

    def wait(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            time.sleep((1 - self.tokens) / self.rate)


def rfc3339(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def day_of(timestamp: str) -> dt.date:
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).astimezone(UTC).date()


# -- providers ---------------------------------------------------------------------------------
def neon(env: Dict[str, str], first: dt.date, last: dt.date, sink: Warehouse) -> int:
    client = Client(env["SOURCES__NEON__BASE_URL"], {"Authorization": f"Bearer {env['SOURCES__NEON__API_KEY']}"})
    org_id = env["SOURCES__NEON__ORG_ID"]
    per_minute = float(env.get("BENCH_NEON_RATE_PER_MINUTE") or 30)
    pace = Pace(per_minute, burst=per_minute)  # the documented "about 30 a minute", bursts allowed
    window_first = first
    while window_first <= last:
        window_last = min(last, window_first + dt.timedelta(days=NEON_MAX_DAYS - 1))
        params = {"org_id": org_id, "from": rfc3339(window_first), "to": rfc3339(window_last + ONE_DAY),
                  "granularity": "daily", "metrics": ",".join(NEON_METRICS), "limit": NEON_PAGE}
        seen = set()
        while True:
            pace.wait()
            body = client.get("/consumption_history/v2/projects", params)
            rows = new_rows()
            for project in body["projects"]:
                for period in project.get("periods") or ():
                    for frame in period.get("consumption") or ():
                        day = day_of(frame["timeframe_start"])
                        if window_first <= day <= window_last:
                            for metric in frame["metrics"]:
                                name = metric["metric_name"]
                                add(rows, day, "neon", org_id, None, "project", project["project_id"], None, name,
                                    float(metric["value"]), NEON_METRICS.get(name, "unknown"))
            sink.append(rows)
            cursor = (body.get("pagination") or {}).get("cursor")
            # the last page may still carry a cursor: stop on a short page or a cursor seen before
            if len(body["projects"]) < NEON_PAGE or not cursor or cursor in seen:
                break
            seen.add(cursor)
            params["cursor"] = cursor
        window_first = window_last + ONE_DAY
    return client.sent


def adverity(env: Dict[str, str], first: dt.date, last: dt.date, sink: Warehouse) -> int:
    """The days, then the months they touch from their 1st (unique rows are counted per month),
    one call at a time, as Adverity asks."""
    client = Client(env["SOURCES__ADVERITY__BASE_URL"], {"Authorization": f"Token {env['SOURCES__ADVERITY__API_KEY']}"})
    for granularity, date_from in (("daily", first), ("monthly", first.replace(day=1))):
        params = {"granularity": granularity, "date_from": date_from.isoformat(), "date_to": last.isoformat(),
                  "page_size": ADVERITY_PAGE, "page": 1}
        seen = 0
        while True:
            body = client.get("/api/v1/usage/", params)
            rows = new_rows()
            for item in body["items"]:
                day = dt.date.fromisoformat(item["date"][:10])
                resource = item["datastream_id"] or "unattributed"
                for metric in ("unique_rows", "total_rows"):
                    add(rows, day, "adverity", item["workspace_id"], item.get("workspace_name"),
                        "datastream" if granularity == "daily" else "datastream_month", resource,
                        None, metric, float(item[metric]), "rows")
            sink.append(rows)
            seen += len(body["items"])
            if not body["items"] or seen >= body["count"]:
                break
            params["page"] += 1
    return client.sent


def parameter_metrics(parameters: Iterable[Dict[str, Any]]):
    """(metric, quantity) of each numeric parameter: label value x hours, or a quantity's raw_usage."""
    for parameter in parameters or ():
        name = re.sub(r"[^0-9a-z]+", "_", parameter["name"].strip().lower()).strip("_") + "_hours"
        if parameter.get("is_label"):
            try:
                yield name, float(parameter["label_value"]) * float(parameter["raw_usage"])
            except (TypeError, ValueError):
                continue  # a non-numeric label such as ServiceID
        elif parameter.get("raw_usage") is not None:
            yield name, float(parameter["raw_usage"])


def rafay(env: Dict[str, str], first: dt.date, last: dt.date, sink: Warehouse) -> int:
    client = Client(env["SOURCES__RAFAY__BASE_URL"], {"x-api-key": env["SOURCES__RAFAY__API_KEY"]})

    def window(day: dt.date, path: str, resource_type: str, limit: int) -> None:
        """One day of one endpoint, paged by offset (usage is aggregated over the asked range)."""
        params = {"range_from": rfc3339(day), "range_to": rfc3339(day + ONE_DAY), "limit": limit, "offset": 0}
        instances = resource_type.endswith("instance")
        while True:
            body = client.get(path, params)
            items = next(value for key, value in body.items() if key.endswith("_usage_data")) or []
            rows = new_rows()
            for item in items:
                account = item.get("instance_organization_id") or body.get("organization_id")
                resource = item["instance_id"] if instances else item["profile_id"]
                name = item.get("instance_name") if instances else item.get("profile_name")
                common = (day, "rafay", account, item.get("instance_organization_name"), resource_type, resource, name)
                add(rows, *common, "usage_hours", float(item["raw_usage"]), "hours")
                for metric, quantity in parameter_metrics(item.get("parameters")):
                    add(rows, *common, metric, quantity, metric)
            sink.append(rows)
            count = body.get("count")
            params["offset"] += limit
            # `count` may be the page's or the total: only a count above the page ends paging early
            if len(items) < limit or (isinstance(count, int) and count > len(items) and params["offset"] >= count):
                break

    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    with ThreadPoolExecutor(RAFAY_WORKERS) as pool:
        futures = [pool.submit(window, day, *endpoint) for day in days for endpoint in RAFAY_ENDPOINTS]
        for future in futures:
            future.result()
    return client.sent


def bronto(env: Dict[str, str], first: dt.date, last: dt.date, sink: Warehouse) -> int:
    """Per log and UTC day from /usage/organizations/logs (absolute midnight-to-midnight windows,
    one slice a day, up to 1440 days a request); that body does not name the organization, so one
    minute of /usage is asked first."""
    client = Client(env["SOURCES__BRONTO__BASE_URL"], {"X-BRONTO-API-KEY": env["SOURCES__BRONTO__API_KEY"]})
    probe = client.get("/usage", {"time_range": "Last 1 minute", "num_of_slices": 1, "usage_type": BRONTO_TYPES[0]})
    org_id = (probe[0] if isinstance(probe, list) else probe)["id"].split("#", 1)[0]

    def usage_type(kind: str, window_first: dt.date, window_last: dt.date) -> None:
        start = dt.datetime(window_first.year, window_first.month, window_first.day, tzinfo=UTC)
        days = (window_last - window_first).days + 1
        body = client.get("/usage/organizations/logs", {
            "from_ts": int(start.timestamp() * 1000), "to_ts": int((start + days * ONE_DAY).timestamp() * 1000),
            "usage_type": kind, "num_of_slices": days, "limit": BRONTO_LOGS_LIMIT})
        rows = new_rows()
        for log in body["groups_series"]:
            for point in log["timeseries"]:
                day = dt.datetime.fromtimestamp(float(point["@timestamp"]) / 1000, UTC).date()
                add(rows, day, "bronto", org_id, None, "log", log["key"], log.get("name"), f"{kind}_bytes",
                    float(point["value"]), "bytes")
        sink.append(rows)

    windows = []
    window_first = first
    while window_first <= last:
        window_last = min(last, window_first + (BRONTO_MAX_DAYS - 1) * ONE_DAY)
        windows.append((window_first, window_last))
        window_first = window_last + ONE_DAY
    with ThreadPoolExecutor(len(BRONTO_TYPES)) as pool:
        for future in [pool.submit(usage_type, kind, *window) for window in windows for kind in BRONTO_TYPES]:
            future.result()
    return client.sent


PROVIDERS: Dict[str, Callable[..., int]] = {"neon": neon, "adverity": adverity, "rafay": rafay, "bronto": bronto}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/baseline.py", description=__doc__.split("\n")[0])
    parser.add_argument("--first", required=True, help="first day YYYY-MM-DD")
    parser.add_argument("--last", required=True, help="last day YYYY-MM-DD (inclusive)")
    parser.add_argument("--database", required=True, help="DuckDB file (replaced)")
    args = parser.parse_args(argv)
    first, last = dt.date.fromisoformat(args.first), dt.date.fromisoformat(args.last)
    started = time.monotonic()
    sink = Warehouse(args.database)
    with ThreadPoolExecutor(len(PROVIDERS)) as pool:  # the providers side by side
        futures = {name: pool.submit(load, dict(os.environ), first, last, sink) for name, load in PROVIDERS.items()}
        sent = {name: future.result() for name, future in futures.items()}
    print(json.dumps({"rows": sink.count(), "seconds": time.monotonic() - started, "requests": sent}))
    sink.con.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
