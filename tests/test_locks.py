"""The warehouse lock: who holds it, said right to every run it refuses; and a run that loses it
(its Postgres session ended from outside) stops instead of going on beside the next one."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pipelines import config
from pipelines.lock import warehouse_lock
from simulators.base import Fault
from tests.conftest import query, yesterday
from tests.test_cli import one_line_error, run
from tests.test_signals import PROMPT_S, THEN, Running, last_run, next_nightly_equals_truth, requests_after, sims  # noqa: F401


@pytest.fixture
def configured(monkeypatch):
    """One provider configured (nothing will be reached: every run here is refused the lock)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SOURCES__RAFAY__API_KEY", "rafay-key")
    monkeypatch.setenv("SOURCES__RAFAY__BASE_URL", f"http://127.0.0.1:{port}")


def test_runs_refused_the_duckdb_lock_leave_the_holders_name(configured):
    dest = config.destination("duckdb")
    lock_file = Path(dest.location + ".lock")
    with warehouse_lock(dest, "backfill"):
        held = lock_file.read_text()
        for _ in range(3):  # each refused run, not only the first, names the running one
            done = run("nightly")
            assert done.returncode == config.EXIT_LOCKED, done.stdout + done.stderr
            assert f"is busy: `backfill` (pid {os.getpid()}, started " in one_line_error(done)
            assert lock_file.read_text() == held, "a refused run changed the lock file"
    assert lock_file.read_text() == "", "the holder clears its name when it lets go"
    assert run("models").returncode == config.EXIT_OK


def test_the_postgres_lock_names_the_loaders_pid_not_the_backends(configured, postgres_url, monkeypatch):
    monkeypatch.setenv("DESTINATION", "postgres")
    with warehouse_lock(config.destination("postgres"), "backfill"):
        ((backend,),) = query("postgres", f"select pid from pg_stat_activity where application_name like "
                                          f"'usage-elt backfill pid {os.getpid()} %'")
        for _ in range(2):
            line = one_line_error(done := run("models"))
            assert done.returncode == config.EXIT_LOCKED
            assert f"is busy: `backfill` (pid {os.getpid()}, started " in line, line
            assert f"pid {backend}" not in line, line


def lock_backend(command: str) -> int:
    """The Postgres backend of the one session holding the warehouse lock for `command`."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = query("postgres", "select a.pid from pg_locks l join pg_stat_activity a on a.pid = l.pid "
                                 f"where l.locktype = 'advisory' and l.granted and a.application_name like 'usage-elt {command}%'")
        if rows:
            ((backend,),) = rows
            return backend
        time.sleep(0.05)
    raise AssertionError(f"no session holds the lock for {command}")


def test_a_run_whose_lock_session_is_terminated_stops(sims, postgres_url, monkeypatch, record_property, fault_report):
    monkeypatch.setenv("DESTINATION", "postgres")
    first = yesterday() - dt.timedelta(days=4)
    started = sims(["rafay", "bronto"], first)
    held = started["rafay"].inject(Fault(kind="block", after=4, delay_s=120))
    running = Running("nightly")
    assert held.reached.wait(60), "the held request never came"
    backend = lock_backend("nightly")
    assert query("postgres", f"select pg_terminate_backend({backend})") == [(True,)]
    terminated = running.signalled_at = time.monotonic()
    try:
        running.process.wait(PROMPT_S + 2)
    except subprocess.TimeoutExpired:
        pass  # let the run go on as it would, to see what it does without its lock
    held.release.set()
    seconds = running.end()
    record_property("seconds from pg_terminate_backend to exit", round(seconds, 2))

    assert running.process.returncode == config.EXIT_LOCKED, "\n".join(running.out) + running.stderr
    assert seconds < PROMPT_S, f"{seconds:.1f} s from losing the lock to exit"
    assert "Traceback" not in running.stderr, running.stderr
    (line,) = [line for line in running.err if line.startswith("error:")]
    assert line.startswith("error: lost the warehouse lock (its session (Postgres backend "), line
    assert "stopped the nightly" in line and "recorded in analytics.load_runs" in line, line
    assert not query("postgres", "select table_name from information_schema.tables where table_schema = 'analytics' "
                                 "and table_name in ('fct_daily_usage', 'model_loads')"), "models were built without the lock"
    for provider, sim in started.items():
        assert not requests_after(sim, terminated + 3.0), f"{provider} kept loading without the lock"
    runs = last_run("postgres")
    assert set(runs) == {"rafay", "bronto"}
    assert all(status == "interrupted" and "lost the warehouse lock" in error for _, status, error in runs.values()), runs

    next_nightly_equals_truth(started, first, "postgres")
    fault_report("lost Postgres lock (its session terminated)", 1, outcome=f"exit 3, one line, load_runs interrupted, {THEN}")


def test_the_heartbeat_leaves_a_run_that_holds_its_lock_alone(sims, postgres_url, monkeypatch):
    """A run longer than a few heartbeats, its lock never touched, ends as usual."""
    monkeypatch.setenv("DESTINATION", "postgres")
    first = yesterday() - dt.timedelta(days=3)
    started = sims(["bronto"], first, bronto={"latency_ms": 1500})
    started_at = time.monotonic()
    done = run("nightly")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    assert time.monotonic() - started_at > 5, "the run ended before the heartbeat checked the lock"
    assert last_run("postgres") == {"bronto": ("nightly", "ok", None)}
