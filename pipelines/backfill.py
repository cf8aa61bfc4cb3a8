"""Backfills: an inclusive day range per provider, loaded statelessly, then the models rebuilt.

Every incremental gets an `end_value`, which makes dlt filter without reading or writing the
saved cursor: the nightly job's position is untouched. Ranges an API cannot serve are refused
before anything loads.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import List, Optional, Sequence

from pipelines import config, models
from pipelines.load import LoadResult, load_provider
from sources import windows

log = logging.getLogger("pipelines")


def servable_range(provider: str, first: dt.date, last: dt.date, now: Optional[dt.datetime] = None) -> None:
    """Raise ConfigError when `first..last` is a range the provider's API cannot serve."""
    yesterday = windows.last_complete_day(now)
    if last > yesterday:
        raise config.ConfigError(
            f"END={last} is not a complete UTC day yet; the last complete day is {yesterday}"
        )
    settings = config.settings_module(provider)
    earliest = getattr(settings, "EARLIEST_DAY", None)
    history_days = getattr(settings, "DAILY_HISTORY_DAYS", None)
    if history_days is not None:
        oldest = windows.utc_today() - dt.timedelta(days=history_days)
        if earliest is not None:
            oldest = max(oldest, earliest)
        if first < oldest:
            raise config.ConfigError(
                f"{provider} keeps daily data for {history_days} days; earliest day you can backfill is {oldest} "
                f"(START={first})"
            )
    elif earliest is not None and first < earliest:
        raise config.ConfigError(f"{provider} has no data before {earliest}; earliest day you can backfill is {earliest}")


def plan(provider_arg: str, start: str, end: str) -> tuple:
    """Validate everything up front: (providers, first, last); ConfigError on any problem."""
    if not start or not end:
        raise config.ConfigError("backfill needs START and END, e.g. make backfill PROVIDER=all START=2026-01-01 END=2026-01-31")
    try:
        first = windows.parse_day(start, "START")
        last = windows.parse_day(end, "END")
    except windows.WindowError as exc:
        raise config.ConfigError(str(exc)) from None
    if first > last:
        raise config.ConfigError(f"START={first} is after END={last}; give START <= END")
    if (provider_arg or "").strip().lower() in ("", "all"):
        providers, skipped = config.configured_providers(config.PROVIDERS)
        for provider, key in skipped.items():
            log.info("skipping %s: not configured (%s is not set)", provider, key)
        if not providers:
            raise config.ConfigError("no provider is configured: set SOURCES__<PROVIDER>__API_KEY (see README)")
    else:
        providers = config.parse_providers(provider_arg)
    for provider in providers:
        config.check_provider(provider)
        servable_range(provider, first, last)
    return providers, first, last


def run_backfill(providers: Sequence[str], first: dt.date, last: dt.date, dest: config.Destination) -> List[LoadResult]:
    """Load `first..last` for each provider; the cursor stays where it is."""
    results = []
    for provider in providers:
        log.info("backfill %s %s..%s", provider, first, last)
        results.append(load_provider(provider, dest=dest, start_date=first, end_date=last))
    return results
