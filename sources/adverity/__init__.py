"""Adverity: daily and monthly row usage per workspace and datastream, from the customer's own
instance."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any, Dict, Iterator, List, Optional, Union

import dlt
import pyarrow as pa
from dlt.common.jsonpath import compile_path

from sources import windows
from sources.http import ProviderClient, ProviderError
from sources.merge import row_key_hints
from sources.provider import Provider, check_runtime
from sources.adverity import helpers, settings

Day = Union[str, dt.date, None]

ITEMS = compile_path("items")
"""The pages' rows, compiled once: dlt would parse a selector string again for every page."""
BATCH_ROWS = 10_000
"""Rows gathered from consecutive pages before a table is yielded: each yielded item costs dlt a
few milliseconds, as much as a whole page of 100 rows costs to fetch."""


@dlt.source(name="adverity", section="adverity", max_table_nesting=0)
def adverity_source(
    api_key: str = dlt.secrets.value,
    base_url: Optional[str] = settings.DEFAULT_BASE_URL,
    start_date: Day = None,
    end_date: Day = None,
    lookback_days: int = 2,
    auth_scheme: str = settings.DEFAULT_AUTH_SCHEME,
):
    """Loads Adverity's usage (`GET /api/v1/usage/`) into the raw tables `usage` (daily) and
    `monthly_usage` (the API's own monthly figures).

    `usage`: one row per day × workspace × datastream with `unique_rows` and `total_rows`, for
    the key's workspace and every workspace beneath it. `monthly_usage`: one row per month ×
    workspace × datastream, for every month the run's days touch, read whole (month to date for
    the current one): unique rows are counted per month, so a month is not the sum of its days.
    Rows the API cannot charge to a datastream keep `datastream_id` null and get
    `datastream_key = 'unattributed'`.

    Args:
        api_key: the instance's API key (SOURCES__ADVERITY__API_KEY).
        base_url: the customer's instance, e.g. https://acme.datatap.adverity.com
            (SOURCES__ADVERITY__BASE_URL); required, there is no default.
        start_date: first day of a first nightly run, or of a backfill (YYYY-MM-DD); default the
            last week of complete days.
        end_date: last day (inclusive) of a backfill; None for a nightly run up to yesterday.
        lookback_days: complete days a nightly run reads again, as recent days can still change.
        auth_scheme: `Token` (keys made through the API, the default) or `Bearer` (keys made in
            the UI) (SOURCES__ADVERITY__AUTH_SCHEME).
    """
    if not (base_url or "").strip():
        raise ProviderError(
            helpers.PROVIDER,
            f"{settings.BASE_URL_SETTING} is missing; set it to your Adverity instance, e.g. https://acme.datatap.adverity.com",
        )
    headers = helpers.auth_header(api_key, auth_scheme)
    first = windows.parse_day(start_date, "SOURCES__ADVERITY__START_DATE") if start_date else windows.default_start_date()
    last = windows.parse_day(end_date, "end_date") if end_date else None
    # no rate limiter: none is documented; one call at a time is asked for, and the two
    # resources (dlt takes turns between them) share one client whose calls wait for each other
    client = one_call_at_a_time(ProviderClient(helpers.PROVIDER, base_url, headers, key_setting=settings.API_KEY_SETTING))
    return usage_resource(client, first, last, lookback_days), monthly_resource(client, first, last, lookback_days)


def one_call_at_a_time(client: ProviderClient) -> ProviderClient:
    """`client` with each call (its retries included) waiting for the one in flight: the daily
    pages read ahead on a thread of their own while dlt may already be running the monthly
    resource, and Adverity asks for one call at a time."""
    session = client.rest.session
    send, lock = session.send, threading.Lock()

    def send_alone(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return send(*args, **kwargs)

    session.send = send_alone  # type: ignore[method-assign]
    return client


def usage_resource(client: ProviderClient, first: dt.date, last: Optional[dt.date], lookback_days: int):
    """The `usage` resource bound to one client and date range (a fresh cursor per resource)."""

    @dlt.resource(
        name=settings.USAGE_TABLE,
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        merge_key=list(settings.USAGE_MERGE_KEY),
        columns=row_key_hints(settings.USAGE_PRIMARY_KEY),
    )
    def usage(usage_date=windows.day_cursor(first, last, lookback_days)) -> Iterator[pa.Table]:
        """Daily rows per workspace × datastream; one Arrow table per BATCH_ROWS rows.

        The whole range is one request window (never past yesterday), paged by page number
        with the maximum page size until the body's `count` is reached: no range limit is
        documented, and cutting the range would cost up to one short page per piece.
        """
        window = windows.range_to_load(usage_date)
        if window is None:
            return
        pages = client.paginate(
            settings.USAGE_PATH,
            params=helpers.usage_params(window),
            paginator=helpers.CountPaginator(settings.PAGE_SIZE),
            data_selector=ITEMS,
            window=window,
            read_ahead=settings.READ_AHEAD_PAGES,
        )
        rows = []
        for page in pages:
            rows += [row for row in helpers.flatten_usage_page(page) if window.first <= row["usage_date"] <= window.last]
            if len(rows) >= BATCH_ROWS:
                yield helpers.usage_table(rows)
                rows = []
        if rows:
            yield helpers.usage_table(rows)

    return usage


def monthly_resource(client: ProviderClient, first: dt.date, last: Optional[dt.date], lookback_days: int):
    """The `monthly_usage` resource: the months of each run's days, read whole.

    Its rows are months and carry no day cursor: a cursor on the month would drop every month
    whose 1st comes before the run's first day, and would stop at the current month's 1st. The
    cursor is held by `monthly_usage_days`, which loads nothing and hands the run's day window
    on; it moves like the daily table's (same start, lookback and end), so both read the same
    days.
    """

    @dlt.resource(name=settings.MONTHLY_WINDOW, selected=False)
    def monthly_usage_days(usage_date=windows.day_cursor(first, last, lookback_days)) -> Iterator[Dict[str, Any]]:
        """The run's day window, once; its last day is where the cursor moves to."""
        window = windows.range_to_load(usage_date)
        if window is not None:
            yield {"usage_date": window.last, "window": window}

    @dlt.transformer(
        name=settings.MONTHLY_TABLE,
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        merge_key=list(settings.MONTHLY_MERGE_KEY),
        columns=row_key_hints(settings.MONTHLY_PRIMARY_KEY),
    )
    def monthly_usage(days: Dict[str, Any]) -> Iterator[pa.Table]:
        """One row per month × workspace × datastream of every month the window touches: one
        request range from the 1st of its first month through the end of its last (yesterday
        for the current month), paged by page number to the body's `count`."""
        window = days["window"]
        months = helpers.months_of(window)
        fetched_at = windows.utc_now()
        pages = client.paginate(
            settings.USAGE_PATH,
            params=helpers.monthly_params(months),
            paginator=helpers.CountPaginator(settings.PAGE_SIZE),
            data_selector=ITEMS,
            window=f"{months} ({settings.MONTHLY_GRANULARITY})",
        )
        rows: List[Dict[str, Any]] = []
        for page in pages:
            rows += helpers.flatten_monthly_page(page, months, fetched_at)
            if len(rows) >= BATCH_ROWS:
                yield helpers.usage_table(rows, settings.MONTHLY_SCHEMA)
                rows = []
        if rows:
            yield helpers.usage_table(rows, settings.MONTHLY_SCHEMA)

    return monthly_usage_days | monthly_usage


def _check_settings(lookup) -> None:
    """The auth scheme's form, then the checks every provider shares."""
    if lookup("auth_scheme") is not None:
        helpers.auth_header("", lookup("auth_scheme"))
    check_runtime(lookup)


PROVIDER = Provider(
    name="adverity",
    source=adverity_source,
    limits=settings.LIMITS,
    required_settings=settings.REQUIRED_SETTINGS,
    check_settings=_check_settings,
    simulator="simulators.adverity:AdveritySimulator",
    min_requests=helpers.min_requests,
    longest_chain=helpers.longest_chain,
)
"""Adverity as `pipelines/` sees it: the source, its limits and settings, its simulator."""
