"""Bronto usage API: endpoints, limits, usage types, the raw table's schema and the state kept."""

from __future__ import annotations

import pyarrow as pa

from sources import windows

DEFAULT_BASE_URL = "https://api.eu.bronto.io"
"""The EU region's API host; the US region's is https://api.us.bronto.io."""

API_KEY_SETTING = "SOURCES__BRONTO__API_KEY"
USAGE_TYPES_SETTING = "SOURCES__BRONTO__USAGE_TYPES"
REQUIRED_SETTINGS = ("api_key",)

API_KEY_HEADER = "X-BRONTO-API-KEY"
USAGE_PATH = "/usage"
"""The organization's usage over a relative window ending "now": the fallback for a day whose
logs LOGS_USAGE_PATH cannot list whole, and the request that names the organization."""
LOGS_USAGE_PATH = "/usage/organizations/logs"
"""Per-log usage over an absolute `from_ts`/`to_ts` window (the top `limit` logs by bytes): every
complete day is read here, in one slice per UTC day, so each log's day is exact."""
LOGS_MAX_SLICES = 1440
"""The documented maximum `num_of_slices` of LOGS_USAGE_PATH: one slice per day, 1440 days a request."""
LOGS_LIMIT = 500
"""The documented maximum `limit` (top N logs). An answer listing this many logs may have left
logs out: a window of several days is then asked day by day, and a day that still lists this
many is loaded for the whole organization from USAGE_PATH."""

USAGE_TYPES = ("ingestion", "search", "export")

MAX_SLICES = 720
"""The documented maximum `num_of_slices` of /usage."""
WINDOW_MARGIN_MINUTES = 2
"""Extra minutes asked for, so that the window (which ends at the server's "now") surely starts
before the first day's midnight even when the server's clock runs a little ahead of ours."""

MAX_CONCURRENT_REQUESTS = 3
"""Requests in flight at once (one per usage type), all paced by the one rate limiter."""

RATE_LIMIT = 90
RATE_PERIOD_S = 300.0
RATE_BURST = 20
"""Client-side pace, under the documented 100 requests per 5 minutes."""

USAGE_RESOURCE = "usage_slices"
"""The resource's name, which keys its cursor and the organization id in dlt's state: the name
of the version that loaded only organization slices, so that an upgraded warehouse's cursor
carries on (a second name would leave the old cursor behind, the oldest of all, forever)."""
USAGE_TABLE = "daily_usage"
LEGACY_TABLE = "usage_slices"
"""The raw table of the versions that loaded only the organization's slices: no longer written.
A day it holds reaches the facts until USAGE_TABLE holds that day (see int_bronto__usage)."""
USAGE_PRIMARY_KEY = ("organization_id", "usage_type", "usage_date", "resource_type", "resource_id", "slice_start")
USAGE_MERGE_KEY = ("usage_type", "usage_date")
"""A reload of a day replaces all of that day's rows of that usage type, whatever their level
(per log, or the organization's slices) and slice boundaries were: a day never keeps rows of two
runs, so never both levels, and slices of two runs (which never line up) are never merged."""
LOG = "log"
ORGANIZATION = "organization"
"""The two levels of `resource_type`: a log (its id and name), or the organization as a whole."""

ORGANIZATION_STATE_KEY = "organization"
"""Where the resource's dlt state keeps the organization id (LOGS_USAGE_PATH does not name it),
with the fingerprint of the host and key it was learnt with: another key asks again."""

USAGE_SCHEMA = pa.schema(
    [
        pa.field("organization_id", pa.string(), nullable=False),
        pa.field("usage_type", pa.string(), nullable=False),
        pa.field("usage_date", pa.date32(), nullable=False),
        pa.field("resource_type", pa.string(), nullable=False),
        pa.field("resource_id", pa.string(), nullable=False),
        pa.field("resource_name", pa.string()),
        pa.field("slice_start", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("slice_end", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("slice_bytes", pa.float64(), nullable=False),
        pa.field("slice_count", pa.int64(), nullable=False),
        pa.field("day_bytes", pa.float64(), nullable=False),
        pa.field("day_count", pa.float64(), nullable=False),
        pa.field("is_exact", pa.bool_()),
        pa.field("fetched_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
"""One row per usage type, UTC day, resource and slice. A log's row is its whole day, one slice
from midnight to midnight (`day_*` = `slice_*`), exact. The organization's rows (a day its logs
cannot be listed whole) are /usage slices as the API sent them (`slice_*`) with each slice's
share in `usage_date` in proportion to time (`day_*`)."""

LIMITS = windows.ApiLimits(max_window_days=LOGS_MAX_SLICES)
"""What the API serves, as the day arithmetic of plans, refusals and chunks asks it: one
LOGS_USAGE_PATH request per usage type answers up to 1440 days, so a backfill is not cut shorter."""
