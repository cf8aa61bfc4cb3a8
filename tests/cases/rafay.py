"""Rafay in the shared provider suite: small pages so that every day pages several times."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Dict, List, Tuple

from simulators.base import Request, Simulator, day_start, parse_instant
from simulators.rafay import RafaySimulator
from sources.rafay import helpers, settings
from tests.providers import ProviderCase

INSTANCE_PAGE_SIZE = 5
PROFILE_PAGE_SIZE = 2

ENDPOINTS: Dict[str, Tuple[str, str, int]] = {
    # path: (kind, level, page size the case configures)
    settings.COMPUTE_INSTANCE_PATH: ("compute", "instance", INSTANCE_PAGE_SIZE),
    settings.SERVICE_INSTANCE_PATH: ("service", "instance", INSTANCE_PAGE_SIZE),
    settings.COMPUTE_PROFILE_PATH: ("compute", "profile", PROFILE_PAGE_SIZE),
    settings.SERVICE_PROFILE_PATH: ("service", "profile", PROFILE_PAGE_SIZE),
}

FACTS_SQL = """
select usage_date, instance_organization_id as account_id, 'compute_instance' as resource_type,
       instance_id as resource_id, 'usage_hours' as metric, raw_usage as quantity
from {dataset}.compute_instance_usage
union all
select usage_date, instance_organization_id, 'service_instance', instance_id, 'usage_hours', raw_usage
from {dataset}.service_instance_usage
union all
select usage_date, instance_organization_id, 'compute_instance', instance_id, metric, quantity
from {dataset}.compute_instance_usage_parameters where metric is not null
union all
select usage_date, instance_organization_id, 'service_instance', instance_id, metric, quantity
from {dataset}.service_instance_usage_parameters where metric is not null
"""
PROFILE_FACTS_SQL = """
select usage_date, instance_organization_id as account_id, 'compute_profile' as resource_type,
       profile_id as resource_id, 'usage_hours' as metric, raw_usage as quantity
from {dataset}.compute_profile_usage
union all
select usage_date, instance_organization_id, 'service_profile', profile_id, 'usage_hours', raw_usage
from {dataset}.service_profile_usage
union all
select usage_date, instance_organization_id, 'compute_profile', profile_id, metric, quantity
from {dataset}.compute_profile_usage_parameters where metric is not null
union all
select usage_date, instance_organization_id, 'service_profile', profile_id, metric, quantity
from {dataset}.service_profile_usage_parameters where metric is not null
"""
"""The profile endpoints' raw rows in the shape of `RafaySimulator.profile_truth()`."""


def request_day(request: Request) -> dt.date:
    """The UTC day a request asked for; fails unless the window is exactly that one day."""
    range_from = parse_instant(request.one("range_from") or "")
    range_to = parse_instant(request.one("range_to") or "")
    day = range_from.date()
    assert range_from == day_start(day), f"range_from {range_from} is not a UTC midnight"
    assert range_to == day_start(day + dt.timedelta(days=1)), f"window {range_from}..{range_to} is not one day"
    return day


def assert_requests(requests: List[Request], first: dt.date, last: dt.date) -> None:
    """One window per UTC day and endpoint, each paged from offset 0 in steps of `limit`."""
    offsets: Dict[Tuple[str, dt.date], set] = defaultdict(set)
    for request in requests:
        assert request.path in ENDPOINTS, f"unexpected path {request.path}"
        day = request_day(request)
        assert first <= day <= last, f"{day} is outside {first}..{last}"
        limit = ENDPOINTS[request.path][2]
        assert request.one("limit") == str(limit), request.query
        offsets[(request.path, day)].add(int(request.one("offset") or -1))
    n_days = (last - first).days + 1
    assert set(offsets) == {
        (path, first + dt.timedelta(days=i)) for path in ENDPOINTS for i in range(n_days)
    }, "every endpoint must be asked for every day"
    for (path, day), seen in offsets.items():
        limit = ENDPOINTS[path][2]
        assert seen == set(range(0, len(seen) * limit, limit)), f"{path} {day}: offsets {sorted(seen)}"


def rows_per_window(sim: RafaySimulator, path: str, day: dt.date) -> int:
    kind, level, _ = ENDPOINTS[path]
    rows = sim.instance_rows if level == "instance" else sim.profile_rows
    return len(rows(kind, day_start(day), day_start(day + dt.timedelta(days=1))))


def min_requests(sim: Simulator, first: dt.date, last: dt.date) -> int:
    """The provider's fewest requests at the case's page sizes."""
    return helpers.min_requests(sim, first, last, INSTANCE_PAGE_SIZE, PROFILE_PAGE_SIZE)


CASE = ProviderCase(
    name="rafay",
    make_simulator=RafaySimulator,
    env=lambda sim: {
        "SOURCES__RAFAY__API_KEY": sim.api_key,
        "SOURCES__RAFAY__BASE_URL": sim.base_url,
        "SOURCES__RAFAY__INSTANCE_PAGE_SIZE": str(INSTANCE_PAGE_SIZE),
        "SOURCES__RAFAY__PROFILE_PAGE_SIZE": str(PROFILE_PAGE_SIZE),
    },
    key_setting=settings.KEY_SETTING,
    tables={
        "compute_instance_usage": settings.INSTANCE_PRIMARY_KEY,
        "service_instance_usage": settings.INSTANCE_PRIMARY_KEY,
        "compute_profile_usage": settings.PROFILE_PRIMARY_KEY,
        "service_profile_usage": settings.PROFILE_PRIMARY_KEY,
        "compute_instance_usage_parameters": settings.INSTANCE_PARAMETER_PRIMARY_KEY,
        "service_instance_usage_parameters": settings.INSTANCE_PARAMETER_PRIMARY_KEY,
        "compute_profile_usage_parameters": settings.PROFILE_PARAMETER_PRIMARY_KEY,
        "service_profile_usage_parameters": settings.PROFILE_PARAMETER_PRIMARY_KEY,
    },
    facts_sql=FACTS_SQL,
    assert_requests=assert_requests,
    min_requests=min_requests,
)
