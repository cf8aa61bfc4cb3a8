"""Neon constants: endpoints, page size, metric lists, API limits and the raw table schemas."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from sources import windows

DEFAULT_BASE_URL = "https://console.neon.tech/api/v2"
KEY_SETTING = "SOURCES__NEON__API_KEY"
ORG_SETTING = "SOURCES__NEON__ORG_ID"
METRICS_SETTING = "SOURCES__NEON__METRICS"
REQUIRED_SETTINGS = ("api_key", "org_id")

PROJECTS_PATH = "/consumption_history/v2/projects"
LEGACY_ACCOUNT_PATH = "/consumption_history/account"
"""Deprecated (sunset 2026-06-01): may answer 404/410 already."""

PAGE_SIZE = 100
"""Projects per page: the API's maximum (1..100, default 10)."""
GRANULARITY = "daily"
MAX_WINDOW_DAYS = 60
"""Daily data covers only the last 60 days; one request window never spans more."""
DAILY_HISTORY_DAYS = 60
"""Daily granularity serves `from` back to today - 60 days: older days cannot be backfilled."""
EARLIEST_DAY = dt.date(2024, 3, 1)
"""No consumption history before this day; older ranges answer 406."""
ORG_ID_PATTERN = r"^[a-z0-9-]{1,60}$"

METRICS = (
    "compute_unit_seconds",
    "root_branch_bytes_month",
    "child_branch_bytes_month",
    "instant_restore_bytes_month",
    "public_network_transfer_bytes",
    "private_network_transfer_bytes",
    "extra_branches_month",
    "snapshot_storage_bytes_month",
)
"""Every metric of the projects endpoint; all are loaded unless the `metrics` option says less."""

LEGACY_METRICS = (
    "active_time_seconds",
    "compute_time_seconds",
    "written_data_bytes",
    "synthetic_storage_size_bytes",
    "data_storage_bytes_hour",
)
"""Flat integer fields on each timeframe of the legacy account endpoint."""

CLIENT_RATE_PER_MINUTE = 25
CLIENT_BURST = 10
"""Our own bucket stays under the API's (the consumption endpoints share about 30 requests per
minute per account), so a long backfill waits instead of meeting 429s."""

LOGGER_NAME = "sources.neon"

_TIMESTAMP = pa.timestamp("us", tz="UTC")

PROJECT_CONSUMPTION_SCHEMA = pa.schema(
    [
        pa.field("org_id", pa.string(), nullable=False),
        pa.field("project_id", pa.string(), nullable=False),
        pa.field("usage_date", pa.date32(), nullable=False),
        pa.field("metric_name", pa.string(), nullable=False),
        pa.field("value", pa.int64(), nullable=False),
        pa.field("period_id", pa.string()),
        pa.field("period_plan", pa.string()),
        pa.field("timeframe_start", _TIMESTAMP, nullable=False),
        pa.field("timeframe_end", _TIMESTAMP),
    ]
)
PROJECT_CONSUMPTION_KEY = ("org_id", "project_id", "usage_date", "metric_name")
PROJECT_CONSUMPTION_MERGE_KEY = ("org_id", "usage_date")

ACCOUNT_CONSUMPTION_SCHEMA = pa.schema(
    [
        pa.field("org_id", pa.string(), nullable=False),
        pa.field("usage_date", pa.date32(), nullable=False),
        pa.field("metric_name", pa.string(), nullable=False),
        pa.field("value", pa.int64(), nullable=False),
        pa.field("period_id", pa.string()),
        pa.field("period_plan", pa.string()),
        pa.field("timeframe_start", _TIMESTAMP, nullable=False),
        pa.field("timeframe_end", _TIMESTAMP),
    ]
)
ACCOUNT_CONSUMPTION_KEY = ("org_id", "usage_date", "metric_name")
ACCOUNT_CONSUMPTION_MERGE_KEY = ("org_id", "usage_date")

LIMITS = windows.ApiLimits(history_days=DAILY_HISTORY_DAYS, earliest_day=EARLIEST_DAY, max_window_days=MAX_WINDOW_DAYS)
"""What the API serves, as the day arithmetic of plans, refusals and chunks asks it."""
