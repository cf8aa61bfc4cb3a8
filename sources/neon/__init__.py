"""Neon: daily consumption per project (and, optionally, the legacy account totals)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Iterator, List, Optional

import dlt
import pyarrow as pa
from dlt.common.jsonpath import compile_path

from sources import windows
from sources.http import ProviderClient, ProviderError, RateLimiter
from sources.merge import row_key_hints
from sources.provider import Provider, check_runtime
from sources.neon import settings
from sources.neon.helpers import (
    PROVIDER as NAME,
    NeonCursorPaginator,
    check_org_id,
    flatten_account_periods,
    flatten_projects,
    legacy_params,
    longest_chain,
    min_requests,
    parse_metrics,
    project_params,
    to_table,
)

log = logging.getLogger(settings.LOGGER_NAME)

MERGE = {"disposition": "merge", "strategy": "delete-insert"}
PROJECTS = compile_path("projects")
"""The pages' projects, compiled once: dlt would parse a selector string again for every page."""
FLATTEN_PROJECTS = 10
"""Projects flattened into rows at a time (see project_consumption)."""


@dlt.source(name="neon", section="neon", max_table_nesting=0)
def neon_source(
    api_key: str = dlt.secrets.value,
    org_id: str = dlt.config.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    start_date: Optional[Any] = None,
    end_date: Optional[Any] = None,
    lookback_days: int = 2,
    metrics: Optional[Any] = None,
    include_legacy: bool = False,
    rate_per_minute: int = settings.CLIENT_RATE_PER_MINUTE,
) -> Any:
    """Neon consumption history of one organization, by UTC day.

    `project_consumption`: every project's daily figures for the chosen `metrics` (all eight by
    default) from `/consumption_history/v2/projects`. With `include_legacy`, also
    `account_consumption` from the deprecated `/consumption_history/account`, which is skipped
    with one warning once Neon has retired it.

    Nightly (no `end_date`) loads from the saved cursor minus `lookback_days`; with `end_date`
    it loads exactly `start_date..end_date` and leaves the cursor alone.

    `rate_per_minute` (SOURCES__NEON__RATE_PER_MINUTE) paces the client under the account's
    limit: the default stays under Neon's documented 30 a minute; raise it only for an account
    whose limit was raised.
    """
    org_id = check_org_id(org_id)
    metric_names = parse_metrics(metrics)
    first = windows.parse_day(start_date, "start_date") if start_date is not None else windows.default_start_date()
    last = windows.parse_day(end_date, "end_date") if end_date is not None else None
    client = ProviderClient(
        NAME,
        base_url,
        headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
        key_setting=settings.KEY_SETTING,
        rate_limiter=RateLimiter(int(rate_per_minute), 60.0, burst=settings.CLIENT_BURST),
    )
    resources = [
        project_consumption(client, org_id, metric_names, usage_date=windows.day_cursor(first, last, lookback_days))
    ]
    if include_legacy:
        resources.append(account_consumption(client, org_id, usage_date=windows.day_cursor(first, last, lookback_days)))
    return resources


@dlt.resource(
    name="project_consumption",
    write_disposition=MERGE,
    merge_key=list(settings.PROJECT_CONSUMPTION_MERGE_KEY),
    columns=row_key_hints(settings.PROJECT_CONSUMPTION_KEY),
)
def project_consumption(
    client: ProviderClient,
    org_id: str,
    metrics: List[str],
    usage_date: dlt.sources.incremental[dt.date] = dlt.sources.incremental("usage_date"),
) -> Iterator[pa.Table]:
    """Daily value per project and metric; one Arrow table per page of up to 100 projects.

    Requests at most 60 days at a time (the API's daily limit); a range the API refuses (older
    than 60 days, or before 2024-03-01) fails with a ProviderError that says so.
    """
    window_to_load = windows.range_to_load(usage_date)
    if window_to_load is None:
        return
    for window in windows.split(window_to_load.first, window_to_load.last, settings.MAX_WINDOW_DAYS):
        params = project_params(org_id, window, metrics)
        paginator = NeonCursorPaginator()
        try:
            for page in client.paginate(settings.PROJECTS_PATH, params, paginator, PROJECTS, window):
                # a few projects at a time: a page of 100 projects over 60 days is 48,000 rows,
                # which as Python dicts would take ten times their Arrow size
                tables = []
                for start in range(0, len(page), FLATTEN_PROJECTS):
                    rows = flatten_projects(org_id, page[start:start + FLATTEN_PROJECTS], window)
                    if rows:
                        tables.append(to_table(rows, settings.PROJECT_CONSUMPTION_SCHEMA))
                if tables:
                    yield pa.concat_tables(tables)
        except ProviderError as error:
            raise _explain(error, window) from None
        log.debug("neon: window %s done after %d page(s): %s", window, paginator.pages, paginator.stop_reason)


@dlt.resource(
    name="account_consumption",
    write_disposition=MERGE,
    merge_key=list(settings.ACCOUNT_CONSUMPTION_MERGE_KEY),
    columns=row_key_hints(settings.ACCOUNT_CONSUMPTION_KEY),
)
def account_consumption(
    client: ProviderClient,
    org_id: str,
    usage_date: dlt.sources.incremental[dt.date] = dlt.sources.incremental("usage_date"),
) -> Iterator[pa.Table]:
    """Legacy account-level daily totals (active/compute time, written data, storage).

    The endpoint is deprecated (sunset 2026-06-01): when it answers 404 or 410 this logs one
    warning, yields nothing and the rest of the load goes on.
    """
    window_to_load = windows.range_to_load(usage_date)
    if window_to_load is None:
        return
    for window in windows.split(window_to_load.first, window_to_load.last, settings.MAX_WINDOW_DAYS):
        try:
            body = client.get_json(settings.LEGACY_ACCOUNT_PATH, legacy_params(org_id, window), window)
        except ProviderError as error:
            if error.status in (404, 410):
                log.warning(
                    "neon: the legacy endpoint %s answered HTTP %s (retired); account_consumption skipped",
                    settings.LEGACY_ACCOUNT_PATH,
                    error.status,
                )
                return
            raise _explain(error, window) from None
        if not isinstance(body, dict) or not isinstance(body.get("periods"), list):
            raise ProviderError(NAME, "response has no 'periods' list", settings.LEGACY_ACCOUNT_PATH, window)
        rows = flatten_account_periods(org_id, body["periods"], window)
        if rows:
            yield to_table(rows, settings.ACCOUNT_CONSUMPTION_SCHEMA)


def _explain(error: ProviderError, window: windows.Window) -> ProviderError:
    """Say what to change for the statuses whose cause is known."""
    if error.status == 406:
        return ProviderError(
            NAME,
            f"the API refuses this range (HTTP 406): daily history covers only the last "
            f"{settings.MAX_WINDOW_DAYS} days and nothing before {settings.EARLIEST_DAY.isoformat()}; "
            f"choose a start date on or after {_oldest_day().isoformat()}",
            error.endpoint,
            window,
            status=406,
        )
    if error.status == 404:
        return ProviderError(
            NAME,
            f"organization not found or the key's user is not a member (HTTP 404); check {settings.ORG_SETTING}",
            error.endpoint,
            window,
            status=404,
        )
    return error


def _oldest_day() -> dt.date:
    return max(settings.EARLIEST_DAY, windows.utc_today() - dt.timedelta(days=settings.DAILY_HISTORY_DAYS))


def _check_settings(lookup) -> None:
    """The org id's form, then the checks every provider shares."""
    if lookup("org_id") is not None:
        check_org_id(lookup("org_id"))
    check_runtime(lookup)


PROVIDER = Provider(
    name=NAME,
    source=neon_source,
    limits=settings.LIMITS,
    required_settings=settings.REQUIRED_SETTINGS,
    check_settings=_check_settings,
    simulator="simulators.neon:NeonSimulator",
    min_requests=min_requests,
    longest_chain=longest_chain,
)
"""Neon as `pipelines/` sees it: the source, its limits and settings, its simulator."""
