"""Request counts: a full load and the nightly after it send exactly the fewest requests the APIs'
rules allow, per provider, as each provider computes it (`Provider.min_requests`, the function
`make bench` reports against too).

A regression in paging efficiency (a page beyond the last, a per-day Neon request, a window cut
in two, a re-fetch outside the lookback window) changes a count and fails here.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.minimum import minimum_requests
from pipelines import config
from simulators import start_all
from sources import windows

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
