"""Bronto usage API: endpoints, limits, usage types and the raw table's schema."""

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
LOGS_USAGE_PATH = "/usage/organizations/logs"
"""Per-log usage over an absolute `from_ts`/`to_ts` window (top N logs): summed over the logs, it
gives exact days in the past, where /usage's window (ending now) would be cut into slices wider
than an hour that straddle midnight."""
LOGS_MAX_SLICES = 1440
"""The documented maximum `num_of_slices` of LOGS_USAGE_PATH: one slice per day, 1440 days a request."""
LOGS_LIMIT = 500
"""The documented maximum `limit` (top N logs). An answer with this many logs may leave logs out,
so their sum could undercount: such a window fails instead of loading a short total."""
EXACT_RELATIVE_DAYS = 30
"""How far back /usage still answers a window in slices of at most an hour (720 slices x 1 h).
A backfill reaching further back reads LOGS_USAGE_PATH, whose slices are whole UTC days."""

USAGE_TYPES = ("ingestion", "search", "export")

MAX_SLICES = 720
"""The documented maximum `num_of_slices` of /usage."""
WINDOW_MARGIN_MINUTES = 2
"""Extra minutes asked for, so that the window (which ends at the server's "now") surely starts
before the first day's midnight even when the server's clock runs a little ahead of ours."""

RATE_LIMIT = 90
RATE_PERIOD_S = 300.0
RATE_BURST = 20
"""Client-side pace, under the documented 100 requests per 5 minutes."""

USAGE_TABLE = "usage_slices"
USAGE_PRIMARY_KEY = ("organization_id", "usage_type", "usage_date", "slice_start")
USAGE_MERGE_KEY = ("usage_type", "usage_date")
"""A reload of a day replaces all of that day's slices of that usage type, whatever their
boundaries were: slices of two runs never line up, so they must never be merged slice by slice."""

USAGE_SCHEMA = pa.schema(
    [
        pa.field("organization_id", pa.string(), nullable=False),
        pa.field("usage_type", pa.string(), nullable=False),
        pa.field("usage_date", pa.date32(), nullable=False),
        pa.field("slice_start", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("slice_end", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("slice_bytes", pa.float64(), nullable=False),
        pa.field("slice_count", pa.int64(), nullable=False),
        pa.field("day_bytes", pa.float64(), nullable=False),
        pa.field("day_count", pa.float64(), nullable=False),
        pa.field("usage_id", pa.string()),
        pa.field("usage_name", pa.string()),
        pa.field("is_exact", pa.bool_()),
        pa.field("fetched_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
"""One row per slice and UTC day it intersects: `slice_*` are the whole slice as the API sent
it, `day_*` the slice's share in `usage_date` in proportion to time."""

LIMITS = windows.ApiLimits()
"""What the API serves, as the day arithmetic of plans, refusals and chunks asks it."""
