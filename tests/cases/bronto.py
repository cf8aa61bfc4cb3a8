"""Bronto in the shared provider suite: relative windows ending "now", slices split into days.

Slice boundaries follow the request time, so the server's "now" decides the numbers: the case
pins one instant (today 07:13:27.481 UTC, off any minute boundary so that slices straddle
midnight) for both the simulator's clock and the source (`USAGE_NOW`). Days compare with the
truth within `tolerance`: a slice straddling midnight is shared between the days in proportion
to time, off by at most a quarter slice × the two days' rate difference (well under 1 % here).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Dict, List

from simulators.base import Request, Simulator
from simulators.bronto import BrontoSimulator
from sources import windows
from sources.bronto import helpers, settings
from tests.providers import ProviderCase

PINNED_TIME = dt.timedelta(hours=7, minutes=13, seconds=27, milliseconds=481)
RANGE = re.compile(r"^Last (\d+) minutes?$")


def pinned_now() -> dt.datetime:
    """Today (by the real clock) at 07:13:27.481 UTC."""
    return windows.midnight(dt.datetime.now(dt.timezone.utc).date()) + PINNED_TIME


def make_simulator(**overrides) -> BrontoSimulator:
    # the simulator follows USAGE_NOW, which env() pins: server and source agree on "now"
    overrides.setdefault("clock", windows.utc_now)
    return BrontoSimulator(**overrides)


def env(sim: Simulator) -> Dict[str, str]:
    return {**sim.source_env(), "USAGE_NOW": pinned_now().isoformat()}


def assert_requests(requests: List[Request], first: dt.date, last: dt.date) -> None:
    """One /usage request per usage type: a relative `Last <N> minutes` reaching back past
    first's midnight (never absolute), with `num_of_slices = min(720, N)`."""
    assert requests, "no requests"
    types = Counter()
    for request in requests:
        assert request.path == settings.USAGE_PATH, request.path
        assert request.authorized
        assert "from_ts" not in request.query and "to_ts" not in request.query, request.query
        match = RANGE.match(request.one("time_range") or "")
        assert match, f"not a relative range in minutes: {request.query}"
        minutes = int(match.group(1))
        assert minutes * 60 >= (windows.midnight(last + dt.timedelta(days=1)) - windows.midnight(first)).total_seconds()
        assert request.one("num_of_slices") == str(min(settings.MAX_SLICES, minutes)), request.query
        types[request.one("usage_type")] += 1
    assert types == Counter(settings.USAGE_TYPES), types


FACTS_SQL = """
select usage_date,
       organization_id as account_id,
       'organization' as resource_type,
       organization_id as resource_id,
       usage_type || '_bytes' as metric,
       sum(day_bytes) as quantity
from {dataset}.usage_slices
group by usage_date, organization_id, usage_type
"""

CASE = ProviderCase(
    name="bronto",
    make_simulator=make_simulator,
    env=env,
    key_setting=settings.API_KEY_SETTING,
    tables={settings.USAGE_TABLE: list(settings.USAGE_PRIMARY_KEY)},
    facts_sql=FACTS_SQL,
    assert_requests=assert_requests,
    min_requests=helpers.min_requests,
    tolerance=0.01,
    extra={"volatile_columns": ("fetched_at",)},
)
