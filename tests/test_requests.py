"""Request counts: a full load and the nightly after it send exactly the fewest requests the APIs'
rules allow, per provider, as each provider computes it (`Provider.min_requests`, the function
`make bench` reports against too).

A regression in paging efficiency (a page beyond the last, a per-day Neon request, a window cut
in two, a re-fetch outside the lookback window, Rafay offsets not stepped by the rows served)
changes a count and fails here.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import sources
from bench.minimum import minimum_requests
from pipelines import config
from simulators import start_all
from simulators.rafay import MAX_LIMIT, RafaySimulator
from sources import windows
from sources.rafay import helpers as rafay_helpers
from sources.rafay import rafay_source
from tests.cases import rafay as rafay_case

ROOT = Path(__file__).resolve().parent.parent
DAYS = 35
"""More than a month: a range cut into monthly windows would cost an extra short page."""

SMALL = {
    # 300 projects: the last page is full, and Neon's end of paging costs one more request
    "neon": {"n_projects": 300},
    # 10 x 3 datastreams x 35 days: more than one page of 100, the last one short
    "adverity": {"n_workspaces": 10, "datastreams_per_workspace": 3},
    # more instances than one page of the pipeline's default page size on some days
    "rafay": {"n_compute_instances": 450, "n_service_instances": 30, "history_days": DAYS},
    "bronto": {},
}


@pytest.fixture
def small_sims(monkeypatch, api_key):
    sims = start_all({provider: f"{api_key}-{provider}" for provider in SMALL}, seed=3, sizes=SMALL)
    first = windows.last_complete_day() - dt.timedelta(days=DAYS - 1)
    for sim in sims.values():
        for name, value in sim.source_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(config.env_name(sim.provider, "start_date"), first.isoformat())
    yield sims, first
    for sim in sims.values():
        sim.stop()


def nightly() -> None:
    done = subprocess.run([sys.executable, "-m", "pipelines", "nightly"], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def sent(sims) -> dict:
    counts = {provider: len(sim.requests) for provider, sim in sims.items()}
    for sim in sims.values():
        sim.reset_log()
    return counts


def test_full_load_and_nightly_send_the_fewest_requests(small_sims):
    sims, first = small_sims
    last = windows.last_complete_day()
    expected = {provider: m.requests for provider, m in minimum_requests(sims, first, last).items()}
    assert expected["neon"] == 4 and expected["adverity"] > 1  # the set exercises paging
    nightly()
    assert sent(sims) == expected

    # the nightly re-reads only its lookback window: the last complete day and the two before it
    lookback = windows.Window(last - dt.timedelta(days=config.DEFAULT_LOOKBACK_DAYS), last)
    expected = {provider: m.requests for provider, m in minimum_requests(sims, lookback.first, lookback.last).items()}
    nightly()
    assert sent(sims) == expected


RAFAY_LARGE_DAYS = {"n_compute_instances": 1300, "n_service_instances": 150}
"""About 900 compute instances a day: several pages of 100, two of 500."""


@pytest.mark.parametrize("max_limit", [500, 100])
def test_rafay_sends_the_fewest_requests_whatever_the_servers_page_limit(api_key, max_limit):
    """Asked for the largest page the simulator accepts, a controller that serves at most 500 (or
    100) rows a page is read in steps of what it serves: offsets 0, 500, ... (0, 100, ...), the
    requests exactly the provider's minimum for that controller."""
    first, last = windows.last_complete_day() - dt.timedelta(days=2), windows.last_complete_day()
    with RafaySimulator(api_key=api_key, max_limit=max_limit, **RAFAY_LARGE_DAYS) as sim:
        source = rafay_source(api_key=api_key, base_url=sim.base_url, start_date=first, end_date=last,
                              instance_page_size=MAX_LIMIT, profile_page_size=MAX_LIMIT)
        for _ in source:
            pass
        assert sources.get("rafay").min_requests is rafay_helpers.min_requests
        assert len(sim.requests) == rafay_helpers.min_requests(sim, first, last, MAX_LIMIT, MAX_LIMIT)

        offsets = defaultdict(list)
        for request in sim.requests:
            assert request.one("limit") == str(MAX_LIMIT), request.query  # always the large page
            offsets[(request.path, rafay_case.request_day(request))].append(int(request.one("offset")))
        stepped = 0
        for (path, day), sent in offsets.items():
            n_rows = rafay_case.rows_per_window(sim, path, day)
            pages = rafay_helpers.pages_for(n_rows, max_limit)
            assert sorted(sent) == [page * max_limit for page in range(pages)], (path, day, n_rows)
            stepped += pages > 1
        assert stepped >= 3, "every day's compute instances should take more than one page"
        assert max(len(sent) for sent in offsets.values()) == rafay_helpers.longest_chain(
            sim, first, last, MAX_LIMIT, MAX_LIMIT)


def test_rafay_at_its_default_page_sizes_sends_the_providers_minimum(api_key):
    """The provider's own `min_requests` (the client's default page sizes) against a controller
    clamping them to 100 rows a page."""
    first = last = windows.last_complete_day()
    with RafaySimulator(api_key=api_key, max_limit=100, **RAFAY_LARGE_DAYS) as sim:
        for _ in rafay_source(api_key=api_key, base_url=sim.base_url, start_date=first, end_date=last):
            pass
        assert len(sim.requests) == sources.get("rafay").min_requests(sim, first, last) > 8
