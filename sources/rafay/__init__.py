"""Rafay partner usage metrics: daily instance and profile usage of every tenant org."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Iterator, List, Optional, Tuple, Union

import dlt
import pyarrow as pa
from dlt.common.jsonpath import compile_path

from sources import windows
from sources.http import ProviderClient, ProviderError
from sources.merge import row_key_hints
from sources.provider import Provider

from . import helpers, settings

WHOLE_BODY = compile_path("$")
"""The page's selector, compiled once: dlt would parse a selector string again for every page."""
BATCH_ROWS = 20_000
"""Rows (usage and parameters) gathered over consecutive days before they are yielded: each
yielded item costs dlt a few milliseconds, and a day holds only a few thousand rows."""


@dlt.source(name="rafay", section="rafay", max_table_nesting=0)
def rafay_source(
    api_key: str = dlt.secrets.value,
    base_url: Optional[str] = None,
    start_date: Optional[Union[str, dt.date]] = None,
    end_date: Optional[Union[str, dt.date]] = None,
    lookback_days: int = 2,
    max_workers: int = settings.DEFAULT_MAX_WORKERS,
    service_profile_path: str = settings.SERVICE_PROFILE_PATH,
    instance_page_size: Optional[int] = None,
    profile_page_size: Optional[int] = None,
):
    """Daily usage hours from a Rafay controller's partner billing API.

    Loads four tables, one per endpoint (`settings.ENDPOINTS`): `compute_instance_usage`,
    `service_instance_usage` (one row per instance and UTC day it ran) and
    `compute_profile_usage`, `service_profile_usage` (one row per profile, tenant org and day),
    each with a sibling `<table>_parameters` (one row per parameter: CPU, GPU, Memory, Disk,
    ServiceID, ...).

    The API aggregates usage over the requested range, so every day is its own request window
    (midnight to midnight UTC); days are independent and fetched `max_workers` at a time.

    Args:
        api_key: the partner API key, sent as `x-api-key`.
        base_url: the console domain of the controller, e.g. `https://console.example.com`
            (no default: every customer has its own).
        start_date: first day of a first nightly run (`YYYY-MM-DD`); default the last week.
        end_date: inclusive last day of a backfill; None for a nightly run.
        lookback_days: days before the last loaded one that a nightly run reads again.
        max_workers: days fetched concurrently per table.
        service_profile_path: path of the service-profile usage endpoint (the vendor's own
            collection calls the compute path here; the default is the service path).
        instance_page_size, profile_page_size: `limit` per page; None for the endpoints' own.
    """
    if not base_url:
        raise ProviderError(
            helpers.PROVIDER,
            f"no base URL configured; set {settings.BASE_URL_SETTING} to the controller's console "
            "domain, e.g. https://console.example.com",
        )
    if "://" not in base_url:
        base_url = "https://" + base_url
    first_day = windows.parse_day(start_date, "start_date") if start_date else windows.default_start_date()
    last_day = windows.parse_day(end_date, "end_date") if end_date is not None else None
    # one client per load, shared by the days fetched at the same time
    client = ProviderClient(
        helpers.PROVIDER, base_url, {settings.API_KEY_HEADER: api_key}, key_setting=settings.KEY_SETTING
    )
    page_sizes = {"instance": instance_page_size, "profile": profile_page_size}
    resources = []
    for endpoint in settings.ENDPOINTS:
        endpoint = replace(
            endpoint,
            path=service_profile_path if endpoint.path == settings.SERVICE_PROFILE_PATH else endpoint.path,
            page_size=page_sizes[endpoint.level] or endpoint.page_size,
        )
        resource = dlt.resource(
            endpoint_usage,
            name=endpoint.table_name,
            write_disposition=settings.MERGE,
            merge_key=settings.MERGE_KEY,
            columns=row_key_hints(helpers.LEVELS[endpoint.level].primary_key),
        )(client, endpoint, max_workers, usage_date=windows.day_cursor(first_day, last_day, lookback_days))
        resource.__doc__ = endpoint.doc
        resources.append(resource)
    return resources


def endpoint_usage(
    client: ProviderClient,
    endpoint: settings.Endpoint,
    max_workers: int,
    usage_date: dlt.sources.incremental[dt.date] = dlt.sources.incremental("usage_date"),
) -> Iterator[object]:
    """One endpoint's days into the table of its name and `<table>_parameters`: a window per day,
    fetched `max_workers` at a time, yielded in day order, several days to a table. (Each
    endpoint's own docstring, in `settings.ENDPOINTS`, says what one row is.)"""
    window = windows.range_to_load(usage_date)
    if window is None:
        return
    level = helpers.LEVELS[endpoint.level]
    parameter_hints = dlt.mark.make_hints(
        table_name=endpoint.table_name + settings.PARAMETERS_TABLE_SUFFIX,
        write_disposition=settings.MERGE,
        columns=row_key_hints(level.parameter_primary_key),
        merge_key=settings.MERGE_KEY,
    )

    def fetch_day(day_window: windows.Window) -> Tuple[pa.Table, pa.Table]:
        # each page becomes Arrow at once: a day of a large controller spans many pages, and
        # rows held as Python dicts take ten times the memory
        tables: List[pa.Table] = []
        parameter_tables: List[pa.Table] = []
        paginator = helpers.UsagePaginator(endpoint.page_size, level.key_fields, endpoint.path, day_window)
        pages = client.paginate(endpoint.path, helpers.window_params(day_window), paginator, WHOLE_BODY, day_window)
        for page in pages:
            for envelope in page:
                page_rows, page_parameters = level.flatten(envelope, day_window.first, endpoint.path, day_window)
                tables.append(helpers.to_table(page_rows, level.schema))
                parameter_tables.append(helpers.to_table(page_parameters, level.parameter_schema))
        return (pa.concat_tables(tables) if tables else helpers.to_table([], level.schema),
                pa.concat_tables(parameter_tables) if parameter_tables else helpers.to_table([], level.parameter_schema))

    def batch(tables: List[pa.Table], parameter_tables: List[pa.Table]) -> Iterator[object]:
        table, parameter_table = pa.concat_tables(tables), pa.concat_tables(parameter_tables)
        if table.num_rows:
            yield table
        if parameter_table.num_rows:
            yield dlt.mark.with_hints(parameter_table, parameter_hints, create_table_variant=True)

    day_windows = windows.split(window.first, window.last, settings.MAX_WINDOW_DAYS)
    tables: List[pa.Table] = []
    parameter_tables: List[pa.Table] = []
    held = 0
    for table, parameter_table in helpers.ordered_map(fetch_day, day_windows, max_workers):
        tables.append(table)
        parameter_tables.append(parameter_table)
        held += table.num_rows + parameter_table.num_rows
        if held >= BATCH_ROWS:
            yield from batch(tables, parameter_tables)
            tables, parameter_tables, held = [], [], 0
    if tables:
        yield from batch(tables, parameter_tables)


PROVIDER = Provider(
    name="rafay",
    source=rafay_source,
    limits=settings.LIMITS,
    required_settings=settings.REQUIRED_SETTINGS,
    simulator="simulators.rafay:RafaySimulator",
    min_requests=helpers.min_requests,
    longest_chain=helpers.longest_chain,
)
"""Rafay as `pipelines/` sees it: the source, its limits and settings, its simulator."""
