"""Bronto in the shared provider suite: every day per log, from absolute midnight-to-midnight windows.

Each log's bytes of a day are the slice of that whole day, so the days compare with the truth
exactly (`tolerance` only absorbs float formatting). The organization's /usage, whose slices
follow the server's "now", is asked only for its id on a first run (and for days whose logs the
endpoint cannot list whole, which the suite's simulator has none of); the case still pins one
instant (today 07:13:27.481 UTC) for both the simulator's clock and the source (`USAGE_NOW`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Dict, List

from simulators.base import Request, Simulator
from simulators.bronto import BrontoSimulator
from sources import windows
from sources.bronto import helpers, settings
from tests.providers import ProviderCase

PINNED_TIME = dt.timedelta(hours=7, minutes=13, seconds=27, milliseconds=481)


def pinned_now() -> dt.datetime:
    """Today (by the real clock) at 07:13:27.481 UTC."""
    return windows.midnight(dt.datetime.now(dt.timezone.utc).date()) + PINNED_TIME


def make_simulator(**overrides) -> BrontoSimulator:
    # the simulator follows USAGE_NOW, which env() pins: server and source agree on "now"
    overrides.setdefault("clock", windows.utc_now)
    return BrontoSimulator(**overrides)


def env(sim: Simulator) -> Dict[str, str]:
    return {**sim.source_env(), "USAGE_NOW": pinned_now().isoformat()}


def midnight_ms(day: dt.date) -> str:
    return str(int(helpers.to_ms(windows.midnight(day))))


def assert_requests(requests: List[Request], first: dt.date, last: dt.date) -> None:
    """A first load of first..last (up to 1440 days, no day with more logs than the limit): one
    minute of /usage names the organization, then one /usage/organizations/logs request per usage
    type with `from_ts`/`to_ts` on the midnights around the days, one slice per day and the
    largest `limit`."""
    assert requests, "no requests"
    probe, *logs = requests
    assert probe.path == settings.USAGE_PATH and probe.authorized, probe
    assert probe.one("time_range") == "Last 1 minute" and probe.one("num_of_slices") == "1", probe.query
    types = Counter()
    for request in logs:
        assert request.path == settings.LOGS_USAGE_PATH, request.path
        assert request.authorized
        assert "time_range" not in request.query and "timeRange" not in request.query, request.query
        assert request.one("from_ts") == midnight_ms(first), request.query
        assert request.one("to_ts") == midnight_ms(last + dt.timedelta(days=1)), request.query
        assert request.one("num_of_slices") == str((last - first).days + 1), request.query
        assert request.one("limit") == str(settings.LOGS_LIMIT), request.query
        types[request.one("usage_type")] += 1
    assert types == Counter(settings.USAGE_TYPES), types


FACTS_SQL = """
select usage_date,
       organization_id as account_id,
       resource_type,
       resource_id,
       usage_type || '_bytes' as metric,
       sum(day_bytes) as quantity
from {dataset}.daily_usage
group by usage_date, organization_id, resource_type, resource_id, usage_type
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
    tolerance=1e-9,
    extra={"volatile_columns": ("fetched_at",)},
)
