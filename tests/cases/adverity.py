"""Adverity in the shared provider suite: page numbers stopped by `count`, days capped to yesterday,
the monthly figures of every month the days touch."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Dict, List, Tuple

from simulators.adverity import AdveritySimulator
from simulators.base import Request, Simulator
from sources import windows
from sources.adverity import helpers, settings
from tests.providers import ProviderCase

# big enough that the shared suite's five days take more than one page of 100 rows
SUITE_SIZE = {"n_workspaces": 4, "datastreams_per_workspace": 6}


def make_simulator(**overrides) -> AdveritySimulator:
    return AdveritySimulator(**{**SUITE_SIZE, **overrides})


def env(sim: Simulator) -> Dict[str, str]:
    return sim.source_env()


def daily(requests: List[Request]) -> List[Request]:
    return [request for request in requests if request.one("granularity") == settings.GRANULARITY]


def monthly(requests: List[Request]) -> List[Request]:
    return [request for request in requests if request.one("granularity") == settings.MONTHLY_GRANULARITY]


def _pages_of(requests: List[Request]) -> Dict[Tuple[str, str], List[int]]:
    """Page numbers asked per (date_from, date_to), checking what every request shares: the
    path, the key, the maximum page size, never a day after yesterday."""
    yesterday = windows.last_complete_day()
    pages: Dict[Tuple[str, str], List[int]] = defaultdict(list)
    for request in requests:
        assert request.path == settings.USAGE_PATH, request.path
        assert request.authorized
        assert request.one("page_size") == str(settings.PAGE_SIZE), request.query
        date_from, date_to = request.one("date_from"), request.one("date_to")
        assert dt.date.fromisoformat(date_to) <= yesterday, f"asked for {date_to}, after yesterday"
        pages[(date_from, date_to)].append(int(request.one("page")))
    for window, numbers in pages.items():
        assert numbers == list(range(1, len(numbers) + 1)), f"pages {numbers} of {window}"
    return pages


def monthly_range(first: dt.date, last: dt.date) -> Tuple[str, str]:
    """(date_from, date_to) of the monthly request of a load of first..last: the 1st of the
    first month through the last day of the last, or yesterday."""
    last = min(last, windows.last_complete_day())
    return first.replace(day=1).isoformat(), min(helpers.month_end(last), windows.last_complete_day()).isoformat()


def assert_requests(requests: List[Request], first: dt.date, last: dt.date) -> None:
    """Daily: one window over the whole of first..last (no range limit is documented). Monthly:
    one range over every month the days touch. Each paged 1..n with the maximum page size,
    never asking for today, and nothing else asked."""
    assert requests, "no requests"
    assert len(daily(requests)) + len(monthly(requests)) == len(requests), [r.query for r in requests]
    expected = [(first.isoformat(), min(last, windows.last_complete_day()).isoformat())]
    assert sorted(_pages_of(daily(requests))) == expected, f"daily windows {sorted(_pages_of(daily(requests)))} != {expected}"
    expected = [monthly_range(first, last)]
    assert sorted(_pages_of(monthly(requests))) == expected, f"monthly ranges {sorted(_pages_of(monthly(requests)))} != {expected}"


FACTS_SQL = """
select usage_date, workspace_id as account_id, 'datastream' as resource_type,
       datastream_key as resource_id, 'unique_rows' as metric, cast(unique_rows as double precision) as quantity
from {dataset}.usage
union all
select usage_date, workspace_id, 'datastream', datastream_key, 'total_rows', cast(total_rows as double precision)
from {dataset}.usage
"""

CASE = ProviderCase(
    name="adverity",
    make_simulator=make_simulator,
    env=env,
    key_setting=settings.API_KEY_SETTING,
    tables={settings.USAGE_TABLE: list(settings.USAGE_PRIMARY_KEY), settings.MONTHLY_TABLE: list(settings.MONTHLY_PRIMARY_KEY)},
    facts_sql=FACTS_SQL,
    assert_requests=assert_requests,
    min_requests=helpers.min_requests,
    extra={"volatile_columns": ("fetched_at",)},
)
