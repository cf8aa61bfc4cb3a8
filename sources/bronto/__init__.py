"""Bronto: each log's ingestion, search and export bytes per UTC day, exact.

Every complete day is read from `GET /usage/organizations/logs` in an absolute window from
midnight to midnight, one slice per day; the organization's `GET /usage` is left only for a day
whose logs that endpoint cannot list whole.
"""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, MutableMapping, Optional, Sequence, Tuple, TypeVar, Union

import dlt
import pyarrow as pa

from sources import windows
from sources.bronto import helpers, settings
from sources.http import ProviderClient, ProviderError, RateLimiter
from sources.merge import row_key_hints
from sources.provider import Provider

Day = Union[str, dt.date, None]
Job = TypeVar("Job")
Answer = TypeVar("Answer")
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
    """Loads Bronto's usage per log and UTC day into the raw table `daily_usage`.

    Per usage type, one `/usage/organizations/logs` request per 1440 days: `from_ts`/`to_ts` on
    the UTC midnights around the days, one slice per day, the endpoint's largest `limit` (500
    logs). Each listed log's slice of a day is that day's bytes, exact: one row per log and day
    (`resource_type` `log`, `resource_id` the log id, `resource_name` its name). Nightly runs and
    backfills read the same way.

    An answer listing 500 logs may have left logs out. A window of several days that does is
    asked again day by day (it cannot tell which of its days are cut); a day that still lists
    500 is loaded for the whole organization instead (`resource_type` `organization`,
    `resource_id` the organization id) from `/usage`, whose window ends "now", split into days in
    proportion to time, with a warning naming the days. A day of a usage type holds one level
    only: the table merges on (usage_type, usage_date) with delete-insert, so a reload replaces
    the day whatever level it had.

    The logs endpoint does not name the organization: the first run asks one minute of `/usage`
    for its id and keeps it in the resource's state (with a fingerprint of the host and key, so
    another key asks again); later runs send only the logs requests.

    Upgrades: versions before per-log loading wrote the organization's slices to the raw table
    `usage_slices`, which stays as it was and is no longer written. `int_bronto__usage` reads a
    day from it only while `daily_usage` has no row of that day and usage type, so nothing counts
    twice, and a day reloaded since is read per log. The resource keeps its name,
    `usage_slices`, so that the cursor an upgraded warehouse holds carries on.

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
    # one client per load, shared by the requests asked at the same time, and its pace with them
    client = ProviderClient(
        helpers.PROVIDER,
        base_url,
        {settings.API_KEY_HEADER: api_key},
        key_setting=settings.API_KEY_SETTING,
        rate_limiter=RateLimiter(settings.RATE_LIMIT, settings.RATE_PERIOD_S, burst=settings.RATE_BURST),
    )
    fingerprint = helpers.key_fingerprint(base_url, api_key)
    return usage_resource(client, tuple(usage_types), first, last, lookback_days, fingerprint)


def usage_resource(client: ProviderClient, usage_types: Sequence[str], first: dt.date,
                   last: Optional[dt.date], lookback_days: int, fingerprint: str):
    """The resource bound to one client and date range (a fresh cursor)."""

    @dlt.resource(
        name=settings.USAGE_RESOURCE,
        table_name=settings.USAGE_TABLE,
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        merge_key=list(settings.USAGE_MERGE_KEY),
        columns=row_key_hints(settings.USAGE_PRIMARY_KEY),
    )
    def usage_slices(usage_date=windows.day_cursor(first, last, lookback_days)) -> Iterator[pa.Table]:
        """Each log's bytes of each complete day of the window; the organization's for a day whose
        logs cannot be listed whole. One Arrow table per answer.

        The first request is sent alone, so that a rejected key fails after one request; the
        others are independent and asked at the same time, paced by the client's rate limiter.
        """
        window = windows.range_to_load(usage_date)
        if window is None or not usage_types:
            return
        now = windows.utc_now()
        state = dlt.current.resource_state()
        organization = known_organization(state, fingerprint)
        probed = organization is None
        if probed:
            organization = name_organization(client, usage_types[0], window)
            state[settings.ORGANIZATION_STATE_KEY] = {"id": organization, "fingerprint": fingerprint}
        cut: Dict[str, List[dt.date]] = {}
        yield from logs_usage(client, usage_types, window, organization, now, cut, alone_first=not probed)
        if cut:
            yield from organization_usage(client, cut, organization, now)

    return usage_slices


def known_organization(state: MutableMapping[str, Any], fingerprint: str) -> Optional[str]:
    """The organization id the state keeps for this host and key; None when it keeps none."""
    kept = state.get(settings.ORGANIZATION_STATE_KEY)
    if isinstance(kept, dict) and kept.get("fingerprint") == fingerprint and isinstance(kept.get("id"), str):
        return kept["id"] or None
    return None


def name_organization(client: ProviderClient, usage_type: str, window: windows.Window) -> str:
    """The organization id, from one minute of /usage (which also fails fast on a rejected key)."""
    body = client.get_json(settings.USAGE_PATH, params=helpers.usage_params(usage_type, 1), window=window)
    with reading(usage_type, settings.USAGE_PATH, window):
        return helpers.organization_id(helpers.select_usage(body, usage_type))


def logs_usage(client: ProviderClient, usage_types: Sequence[str], window: windows.Window, organization: str,
               now: dt.datetime, cut: Dict[str, List[dt.date]], alone_first: bool) -> Iterator[pa.Table]:
    """Each log's days from /usage/organizations/logs: per usage type one request per
    LOGS_MAX_SLICES days; a window of several days that lists the limit of logs asked again day
    by day. The days that still list the limit are added to `cut` (per usage type), their rows
    left out."""

    def fetch(job: Tuple[str, windows.Window]) -> helpers.LogsUsage:
        usage_type, piece = job
        params = helpers.logs_params(usage_type, piece.first, piece.last)
        body = client.get_json(settings.LOGS_USAGE_PATH, params=params, window=piece)
        with reading(usage_type, settings.LOGS_USAGE_PATH, piece):
            return helpers.flatten_logs_usage(body, organization, usage_type, piece.first, piece.last, now)

    jobs = [(usage_type, piece) for piece in windows.split(window.first, window.last, settings.LOGS_MAX_SLICES)
            for usage_type in usage_types]
    by_day = []
    for (usage_type, piece), answer in zip(jobs, concurrently(fetch, jobs, alone_first)):
        if not answer.cut:
            if answer.rows:
                yield helpers.usage_table(answer.rows)
        elif piece.n_days == 1:
            cut.setdefault(usage_type, []).append(piece.first)
        else:
            # which of the days are cut, one answer cannot tell
            by_day += [(usage_type, windows.Window(day, day)) for day in windows.days(piece.first, piece.last)]
    for (usage_type, day), answer in zip(by_day, concurrently(fetch, by_day)):
        if answer.cut:
            cut.setdefault(usage_type, []).append(day.first)
        elif answer.rows:
            yield helpers.usage_table(answer.rows)


def organization_usage(client: ProviderClient, cut: Dict[str, List[dt.date]], organization: str,
                       now: dt.datetime) -> Iterator[pa.Table]:
    """The organization's slices of the days whose logs cannot be listed whole, split into days:
    per usage type one /usage request whose window starts just before the first such day."""
    for usage_type, days in sorted(cut.items()):
        logger.warning(
            "bronto: %s usage of %s is loaded for the whole organization, not per log: %s lists %d logs "
            "on those days, its limit, so logs beyond them may be missing", usage_type,
            windows.describe_days(days), settings.LOGS_USAGE_PATH, settings.LOGS_LIMIT)

    def fetch(usage_type: str) -> pa.Table:
        days = sorted(cut[usage_type])
        window = windows.Window(days[0], days[-1])
        minutes = helpers.window_minutes(now, window.first)
        params = helpers.usage_params(usage_type, minutes)
        body = client.get_json(settings.USAGE_PATH, params=params, window=window)
        with reading(usage_type, settings.USAGE_PATH, window):
            rows = helpers.flatten_usage(body, usage_type, minutes * helpers.MS_PER_MINUTE, params["num_of_slices"],
                                         window.first, window.last, fetched_at=now)
        answered = rows[0]["organization_id"] if rows else organization
        if answered != organization:
            raise ProviderError(
                helpers.PROVIDER, f"{settings.USAGE_PATH} answers for organization {answered!r}, the logs were "
                f"loaded for {organization!r}; is {settings.API_KEY_SETTING} another organization's key?",
                settings.USAGE_PATH, window)
        wanted = set(days)
        rows = [row for row in rows if row["usage_date"] in wanted]
        covered = {row["usage_date"] for row in rows}
        if days[0] not in covered:
            # a missing first day would never be read again once the cursor moved past it
            raise ProviderError(
                helpers.PROVIDER, f"the {usage_type} slices answered do not cover {days[0]} from midnight; "
                "is the server's clock ahead of ours?", settings.USAGE_PATH, window)
        missing = [day for day in days if day not in covered]
        if missing:
            # the server's "now" is behind ours: the next run reads the last day again
            logger.warning("bronto: %s slices end before %s is complete; it is read again by the next run",
                           usage_type, windows.describe_days(missing))
        return helpers.usage_table(rows)

    yield from concurrently(fetch, sorted(cut))


@contextmanager
def reading(usage_type: str, endpoint: str, window: windows.Window) -> Iterator[None]:
    """A body that cannot be read, as the ProviderError naming the usage type, endpoint and window."""
    try:
        yield
    except helpers.BodyError as exc:
        raise ProviderError(helpers.PROVIDER, f"{usage_type} usage: {exc}", endpoint, window) from None


def concurrently(fetch: Callable[[Job], Answer], jobs: Sequence[Job], alone_first: bool = False) -> Iterator[Answer]:
    """`fetch` of each job, in the jobs' order, the jobs asked at the same time (the first one
    alone first with `alone_first`)."""
    jobs = list(jobs)
    if alone_first and jobs:
        yield fetch(jobs.pop(0))
    if jobs:
        with ThreadPoolExecutor(min(len(jobs), settings.MAX_CONCURRENT_REQUESTS), thread_name_prefix="bronto") as pool:
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
