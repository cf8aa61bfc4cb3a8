"""Bronto: the organization's ingestion, search and export bytes per UTC day, from time slices."""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Optional, Sequence, Union

import dlt
import pyarrow as pa

from sources import windows
from sources.bronto import helpers, settings
from sources.http import ProviderClient, ProviderError, RateLimiter
from sources.merge import row_key_hints
from sources.provider import Provider

Day = Union[str, dt.date, None]
logger = logging.getLogger(__name__)


@dlt.source(name="bronto", section="bronto", max_table_nesting=0)
def bronto_source(
    api_key: str = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    start_date: Day = None,
    end_date: Day = None,
    lookback_days: int = 2,
    usage_types: Sequence[str] = settings.USAGE_TYPES,
):
    """Loads Bronto's organization usage (`GET /usage`) into the raw table `usage_slices`.

    /usage only answers relative windows that end "now" (`Last <n> minutes`, at most 720
    slices), so each usage type is read in one request whose window starts just before the
    first day to load; the slices are then split into UTC days. One row per slice and day it
    intersects: the whole slice (`slice_start`, `slice_end`, `slice_bytes`, `slice_count`) and its
    share in the day in proportion to time (`day_bytes`, `day_count`). Only complete days that
    the slices fully cover are written, and a reload replaces a day's slices whole.

    A backfill (`end_date` given) reaching back more than EXACT_RELATIVE_DAYS, where /usage's
    slices would be wider than an hour, reads `/usage/organizations/logs` instead: an absolute
    window from midnight to midnight in one slice per day, summed over the logs, so past days are
    exact.

    Args:
        api_key: an API key with the usage privilege (SOURCES__BRONTO__API_KEY).
        base_url: the region's API host, default the EU one https://api.eu.bronto.io
            (https://api.us.bronto.io for the US) (SOURCES__BRONTO__BASE_URL).
        start_date: first day of a first nightly run, or of a backfill (YYYY-MM-DD); default the
            last week of complete days.
        end_date: last day (inclusive) of a backfill; None for a nightly run up to yesterday.
        lookback_days: complete days a nightly run reads again.
        usage_types: any of `ingestion`, `search`, `export` (default all three).
    """
    unknown = sorted(set(usage_types) - set(settings.USAGE_TYPES))
    if unknown:
        raise ProviderError(
            helpers.PROVIDER,
            f"{settings.USAGE_TYPES_SETTING} has unknown usage types {unknown}; use any of {', '.join(settings.USAGE_TYPES)}",
        )
    first = windows.parse_day(start_date, "SOURCES__BRONTO__START_DATE") if start_date else windows.default_start_date()
    last = windows.parse_day(end_date, "end_date") if end_date else None
    # one client per load, shared by the usage types asked at the same time, and its pace with them
    client = ProviderClient(
        helpers.PROVIDER,
        base_url,
        {settings.API_KEY_HEADER: api_key},
        key_setting=settings.API_KEY_SETTING,
        rate_limiter=RateLimiter(settings.RATE_LIMIT, settings.RATE_PERIOD_S, burst=settings.RATE_BURST),
    )
    return usage_resource(client, tuple(usage_types), first, last, lookback_days)


def usage_resource(client: ProviderClient, usage_types: Sequence[str], first: dt.date,
                   last: Optional[dt.date], lookback_days: int):
    """The `usage_slices` resource bound to one client and date range (a fresh cursor)."""

    @dlt.resource(
        name=settings.USAGE_TABLE,
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        merge_key=list(settings.USAGE_MERGE_KEY),
        columns=row_key_hints(settings.USAGE_PRIMARY_KEY),
    )
    def usage_slices(usage_date=windows.day_cursor(first, last, lookback_days)) -> Iterator[pa.Table]:
        """Slices of each usage type split into UTC days; one Arrow table per usage type.

        One request per usage type: `Last <N> minutes` with N reaching a little before the
        first day's midnight and `num_of_slices = min(720, N)`; keeps the days of the window the
        slices fully cover. The first usage type is asked alone, so a rejected key fails after
        one request; the others are independent and asked at the same time.
        """
        window = windows.range_to_load(usage_date)
        if window is None or not usage_types:
            return
        now = windows.utc_now()
        if last is not None and windows.midnight(window.first) < now - dt.timedelta(days=settings.EXACT_RELATIVE_DAYS):
            yield from exact_days(client, usage_types, window, now)
            return
        minutes = helpers.window_minutes(now, window.first)

        def fetch(usage_type: str) -> pa.Table:
            params = helpers.usage_params(usage_type, minutes)
            body = client.get_json(settings.USAGE_PATH, params=params, window=window)
            try:
                rows = helpers.flatten_usage(
                    body, usage_type, minutes * helpers.MS_PER_MINUTE, params["num_of_slices"],
                    window.first, window.last, fetched_at=now,
                )
            except helpers.BodyError as exc:
                raise ProviderError(helpers.PROVIDER, f"{usage_type} usage: {exc}", settings.USAGE_PATH, window) from None
            days = sorted({row["usage_date"] for row in rows})
            if not days or days[0] != window.first:
                # a missing first day would never be read again once the cursor moved past it
                raise ProviderError(
                    helpers.PROVIDER, f"the {usage_type} slices answered do not cover {window.first} from midnight; "
                    "is the server's clock ahead of ours?", settings.USAGE_PATH, window)
            if days[-1] != window.last:
                # the server's "now" is behind ours: the next run reads the last day again
                logger.warning("bronto: %s slices end before %s is complete; loaded %s..%s",
                               usage_type, window.last, days[0], days[-1])
            return helpers.usage_table(rows)

        first_type, *other_types = usage_types
        yield fetch(first_type)
        if other_types:
            with ThreadPoolExecutor(len(other_types), thread_name_prefix="bronto-usage") as pool:
                yield from pool.map(fetch, other_types)

    return usage_slices


def exact_days(client: ProviderClient, usage_types: Sequence[str], window: windows.Window,
               now: dt.datetime) -> Iterator[pa.Table]:
    """A backfill's past days from /usage/organizations/logs: per usage type one request per
    LOGS_MAX_SLICES days, `from_ts`/`to_ts` on UTC midnights and one slice per day, the logs summed.

    That endpoint does not name the organization, so one minute of /usage is asked for first
    (which also fails fast on a rejected key).
    """
    probe = helpers.usage_params(usage_types[0], 1)
    body = client.get_json(settings.USAGE_PATH, params=probe, window=window)
    try:
        organization = helpers.organization_id(helpers.select_usage(body, usage_types[0]))
    except helpers.BodyError as exc:
        raise ProviderError(helpers.PROVIDER, f"{usage_types[0]} usage: {exc}", settings.USAGE_PATH, window) from None

    def fetch(job) -> pa.Table:
        usage_type, piece = job
        params = helpers.logs_params(usage_type, piece.first, piece.last)
        answer = client.get_json(settings.LOGS_USAGE_PATH, params=params, window=piece)
        try:
            rows = helpers.flatten_logs_usage(answer, organization, usage_type, piece.first, piece.last, now)
        except helpers.BodyError as exc:
            raise ProviderError(helpers.PROVIDER, f"{usage_type} usage: {exc}", settings.LOGS_USAGE_PATH, piece) from None
        return helpers.usage_table(rows)

    jobs = [(usage_type, piece) for piece in windows.split(window.first, window.last, settings.LOGS_MAX_SLICES)
            for usage_type in usage_types]
    with ThreadPoolExecutor(len(usage_types), thread_name_prefix="bronto-logs") as pool:
        yield from pool.map(fetch, jobs)


PROVIDER = Provider(
    name=helpers.PROVIDER,
    source=bronto_source,
    limits=settings.LIMITS,
    required_settings=settings.REQUIRED_SETTINGS,
    simulator="simulators.bronto:BrontoSimulator",
    min_requests=helpers.min_requests,
    longest_chain=helpers.longest_chain,
)
"""Bronto as `pipelines/` sees it: the source, its limits and settings, its simulator."""
