"""Adverity usage API: endpoints, paging, limits, metrics and the raw table's schema."""

from __future__ import annotations

import pyarrow as pa

from sources import windows

DEFAULT_BASE_URL = None
"""Every customer has an instance of their own (https://<instance>): there is no default."""

BASE_URL_SETTING = "SOURCES__ADVERITY__BASE_URL"
API_KEY_SETTING = "SOURCES__ADVERITY__API_KEY"
AUTH_SCHEME_SETTING = "SOURCES__ADVERITY__AUTH_SCHEME"

REQUIRED_SETTINGS = ("api_key", "base_url")

USAGE_PATH = "/api/v1/usage/"

AUTH_SCHEMES = ("Token", "Bearer")
"""`Token` for keys made through the API, `Bearer` for keys made in the UI."""
DEFAULT_AUTH_SCHEME = "Token"

GRANULARITY = "daily"
MONTHLY_GRANULARITY = "monthly"
PAGE_SIZE = 100
"""The API's documented maximum; pages are numbered from 1."""
FIRST_PAGE = 1

# No WINDOW_DAYS: the API documents no range limit, and the pages of one window are full up to
# the last, so the whole range is one request window; cutting it would cost up to one short
# page per piece.

READ_AHEAD_PAGES = 2
"""Pages asked for while the source handles the ones before (one request at a time still): the
pages of a long range are the longest chain of requests of a nightly, and handling a page should
not lengthen it. No rate limit is documented, but Adverity asks for one call at a time."""

METRICS = ("unique_rows", "total_rows")
UNATTRIBUTED = "unattributed"
"""`datastream_key` of rows the API cannot charge to a datastream (`datastream_id` null)."""

USAGE_TABLE = "usage"
USAGE_PRIMARY_KEY = ("usage_date", "workspace_id", "datastream_key")
USAGE_MERGE_KEY = ("usage_date",)

USAGE_SCHEMA = pa.schema(
    [
        pa.field("usage_date", pa.date32(), nullable=False),
        pa.field("workspace_id", pa.string(), nullable=False),
        pa.field("workspace_name", pa.string()),
        pa.field("datastream_id", pa.string()),  # null kept as the API sends it
        pa.field("datastream_key", pa.string(), nullable=False),
        pa.field("datastream_name", pa.string()),  # not sent today; kept should the API add it
        pa.field("unique_rows", pa.int64(), nullable=False),
        pa.field("total_rows", pa.int64(), nullable=False),
    ]
)

MONTHLY_TABLE = "monthly_usage"
MONTHLY_WINDOW = "monthly_usage_days"
"""The resource that holds the monthly table's `usage_date` cursor (the days a run covers, as
the daily table's) and hands each run's day window to `monthly_usage`; it loads no table."""
MONTHLY_PRIMARY_KEY = ("usage_month", "workspace_id", "datastream_key")
MONTHLY_MERGE_KEY = ("usage_month",)
"""A month read again replaces all its rows: a month-to-date figure gives way to a later one."""
MONTHLY_SCHEMA = pa.schema(
    [
        pa.field("usage_month", pa.date32(), nullable=False),  # the month's 1st
        pa.field("workspace_id", pa.string(), nullable=False),
        pa.field("workspace_name", pa.string()),
        pa.field("datastream_id", pa.string()),  # null kept as the API sends it
        pa.field("datastream_key", pa.string(), nullable=False),
        pa.field("unique_rows", pa.int64(), nullable=False),
        pa.field("total_rows", pa.int64(), nullable=False),
        pa.field("through_date", pa.date32(), nullable=False),
        pa.field("fetched_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
"""The raw `monthly_usage` table, one row per month x workspace x datastream. `through_date` is
the last day the figure covers: the month's last day, or yesterday for the current month.

No `usage_date` column: the completeness and model runner take every raw table with one for a
table of days, and would count each month's 1st as a day loaded (and, seeding coverage from the
raw tables, start an account on the 1st of its first month)."""

LIMITS = windows.ApiLimits()
"""What the API serves, as the day arithmetic of plans, refusals and chunks asks it."""
