"""Analysts reading the DuckDB warehouse while a nightly runs.

DuckDB lets other processes open a file read-only only while no process has it open for
writing. The nightly holds the file while it loads and builds the models, and lets go while it
reads the providers' APIs, which with real latencies is most of a night: an analyst's
read-only session opens then, and the load waits for the sessions open when it needs the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import List, Tuple

import duckdb
import pytest

from pipelines import config
from tests.conftest import query
from tests.test_cli import ROOT, one_line_error, run

LATENCY_S = 0.15
"""Each simulated answer's latency: the API time a nightly spends with the file free."""


def read_only_attempts(running: subprocess.Popen, database: str) -> List[Tuple[float, bool]]:
    """(when, opened) of an analyst's read-only connections, tried every 20 ms from the run's
    start until it ends; each reads a table and closes at once."""
    attempts = []
    while running.poll() is None:
        at = time.monotonic()
        try:
            with duckdb.connect(database, read_only=True) as con:
                con.execute("select count(*) from analytics.fct_daily_usage").fetchone()
            attempts.append((at, True))
        except duckdb.Error:
            attempts.append((at, False))
        time.sleep(0.02)
    return attempts


def test_the_warehouse_opens_read_only_while_the_providers_are_read(provider_case, simulator):
    database = os.environ["DESTINATION__DUCKDB__CREDENTIALS"]
    first = run("nightly")  # the warehouse and its tables exist from here on
    assert first.returncode == config.EXIT_OK, first.stdout + first.stderr
    simulator.requests.clear()
    simulator.latency_s = LATENCY_S
    running = subprocess.Popen([sys.executable, "-m", "pipelines", "nightly"], cwd=ROOT, env=dict(os.environ),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    attempts = read_only_attempts(running, database)
    out, err = running.communicate()
    # neither the start nor a load failed for the readers: each waited its moment
    assert running.returncode == config.EXIT_OK, out + err
    assert simulator.requests, "the nightly asked the API nothing"
    reading = (simulator.requests[0].at, simulator.requests[-1].at + LATENCY_S)
    during = [opened for at, opened in attempts if reading[0] <= at <= reading[1]]
    assert during and any(during), (
        f"no read-only connection opened while {provider_case.name}'s API was read "
        f"({len(during)} tried in {reading[1] - reading[0]:.1f} s)")
    assert query("duckdb", "select count(*) from analytics.fct_daily_usage")[0][0] > 0


@pytest.mark.parametrize("limit", ["lots", "96 potatoes"])
def test_a_memory_limit_duckdb_cannot_use_is_a_configuration_error(limit):
    done = run("nightly", env={"DESTINATION__DUCKDB__MEMORY_LIMIT": limit, "SOURCES__NEON__API_KEY": "k",
                                "SOURCES__NEON__ORG_ID": "org-1"})
    assert done.returncode == config.EXIT_CONFIG
    assert one_line_error(done) == (f"error: DESTINATION__DUCKDB__MEMORY_LIMIT={limit!r} is not valid; give a memory size "
                                    "such as 96MB or 1GB")
