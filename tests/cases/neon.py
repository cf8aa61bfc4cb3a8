"""Neon in the shared provider suite."""

from __future__ import annotations

import datetime as dt
from typing import List

from simulators.neon import NeonSimulator
from simulators.base import Request
from sources import windows
from sources.neon import helpers, settings
from tests.providers import ProviderCase

PROJECTS_PATH = NeonSimulator.base_path + settings.PROJECTS_PATH


def make_simulator(**overrides) -> NeonSimulator:
    return NeonSimulator(**{"n_projects": 7, **overrides})


def assert_requests(requests: List[Request], first: dt.date, last: dt.date) -> None:
    """One window per <= 60 days covering first..last exactly, every page asked with limit=100,
    daily granularity, all eight metrics and the org; follow-ups carry the previous cursor."""
    assert requests, "no requests"
    assert all(r.path == PROJECTS_PATH for r in requests), {r.path for r in requests}
    covered = []
    for request in requests:
        assert request.one("limit") == "100", request.query
        assert request.one("granularity") == "daily", request.query
        assert request.one("org_id"), request.query
        metrics = [m for value in request.query["metrics"] for m in value.split(",")]
        assert sorted(metrics) == sorted(settings.METRICS), metrics
        start = dt.datetime.fromisoformat(request.one("from").replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(request.one("to").replace("Z", "+00:00"))
        assert start == windows.midnight(start.date()) and end == windows.midnight(end.date()), request.query
        assert 1 <= (end - start).days <= settings.MAX_WINDOW_DAYS, request.query
        if request.one("cursor") is None:
            covered.append((start.date(), end.date() - dt.timedelta(days=1)))
    assert covered == [(w.first, w.last) for w in windows.split(first, last, settings.MAX_WINDOW_DAYS)], covered


CASE = ProviderCase(
    name="neon",
    make_simulator=make_simulator,
    env=lambda sim: sim.source_env(),
    key_setting=settings.KEY_SETTING,
    tables={"project_consumption": list(settings.PROJECT_CONSUMPTION_KEY)},
    facts_sql=(
        "select usage_date, org_id as account_id, 'project' as resource_type, project_id as resource_id, "
        "metric_name as metric, value as quantity from {dataset}.project_consumption"
    ),
    assert_requests=assert_requests,
    min_requests=helpers.min_requests,
)
