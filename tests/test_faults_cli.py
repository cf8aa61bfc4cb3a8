"""Faults the nightly command must survive as a whole: a provider down for a whole run, and the
process killed (SIGKILL) while extracting, normalizing or loading.

The simulators follow `USAGE_NOW`, so a test moves the clock from night to night: what a failed
or killed night missed must be caught up by the next healthy one, in that one command. The
moment of each kill is chosen deterministically: a request the simulator holds until the test
has killed the client (extract), or a dlt tracking hook that kills the process when the
pipeline starts a step, or just before it records the half-way load job as done.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import dlt
import pytest

from pipelines import config
from pipelines.load import pipeline_for
from pipelines.nightly import run_nightly
from simulators.base import FOREVER, Fault, Simulator
from sources import windows
from tests.conftest import assert_facts_equal, facts, query, yesterday
from tests.providers import case, truth_rows
from tests.test_faults import FAST_RETRIES, SMALL

ROOT = Path(__file__).resolve().parent.parent
PINNED_TIME = dt.timedelta(hours=7, minutes=13, seconds=27, milliseconds=481)
"""Off any minute boundary, so Bronto's slices straddle midnight."""
START_BACK = 6
"""The first day loaded is this many days before the last night's yesterday."""
LOOKBACK_DAYS = 2

CRASH_HARNESS = r"""
import os, signal, sys
sys.path.insert(0, os.getcwd())
pipeline_name, moment = sys.argv[1], sys.argv[2]
from dlt.common.storages import load_package
from dlt.pipeline import trace


def die():
    os.kill(os.getpid(), signal.SIGKILL)


class KillAtStep:
    # a dlt tracking module: called as every step of every pipeline starts and ends
    @staticmethod
    def on_start_trace(trace, step, pipeline):
        pass

    @staticmethod
    def on_start_trace_step(trace, step, pipeline):
        if pipeline.pipeline_name == pipeline_name and step == moment:
            die()

    @staticmethod
    def on_end_trace_step(trace, step, pipeline, step_info, send_state):
        pass

    @staticmethod
    def on_end_trace(trace, pipeline, send_state):
        pass


trace.TRACKING_MODULES.append(KillAtStep)

if moment == "load-jobs":
    complete_job = load_package.PackageStorage.complete_job

    def complete_job_or_die(self, load_id, file_name):
        # the job's SQL has run in the warehouse; dlt has not yet recorded it as done
        if os.sep + pipeline_name + os.sep in self.storage.storage_path:
            jobs = self.get_load_package_jobs(load_id)
            if 2 * (len(jobs["completed_jobs"]) + 1) >= sum(len(found) for found in jobs.values()):
                die()
        return complete_job(self, load_id, file_name)

    load_package.PackageStorage.complete_job = complete_job_or_die

if moment == "restore":
    import shutil
    from dlt.pipeline.pipeline import Pipeline

    wipe_working_folder = Pipeline._wipe_working_folder

    def die_while_wiping(self):
        # the local state is being dropped (to restore the warehouse's): the kill comes when
        # the delete has taken some folders and not others
        if self.pipeline_name == pipeline_name:
            shutil.rmtree(os.path.join(self.working_dir, "load", "normalized"), ignore_errors=True)
            die()
        return wipe_working_folder(self)

    Pipeline._wipe_working_folder = die_while_wiping

if moment == "normalize-commit":
    from dlt.common.storages import load_storage

    commit_new_load_package = load_storage.LoadStorage.commit_new_load_package

    def commit_and_die(self, load_id):
        # the normalized package is in place; dlt has not yet deleted the extracted one
        commit_new_load_package(self, load_id)
        if os.sep + pipeline_name + os.sep in self.storage.storage_path:
            die()

    load_storage.LoadStorage.commit_new_load_package = commit_and_die

from pipelines.__main__ import main

sys.exit(main(sys.argv[3:]))
"""


# -- helpers ---------------------------------------------------------------------------------------
def night(monkeypatch, day: dt.date) -> None:
    """Make `day` today, for the simulators and for the commands."""
    monkeypatch.setenv("USAGE_NOW", (windows.midnight(day) + PINNED_TIME).isoformat())


def run(*args: str, harness: Sequence[str] = ()) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", CRASH_HARNESS, *harness] if harness else [sys.executable, "-m", "pipelines"]
    return subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True, env=dict(os.environ), timeout=300)


@pytest.fixture
def sims(monkeypatch, api_key):
    """start(providers): their simulators on the moving clock, sources pointed at them, the
    first day of every first run set, fast retries."""
    started: Dict[str, Simulator] = {}
    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(name, value)

    def start(providers: Sequence[str], first_day: dt.date) -> Dict[str, Simulator]:
        for provider in providers:
            provider_case = case(provider)
            sim = provider_case.make_simulator(
                api_key=f"{api_key}-{provider}", seed=7, clock=windows.utc_now, **SMALL.get(provider, {})
            ).start()
            started[provider] = sim
            for name, value in provider_case.env(sim).items():
                if name != "USAGE_NOW":  # the test's clock, not the case's
                    monkeypatch.setenv(name, value)
            monkeypatch.setenv(config.env_name(provider, "start_date"), first_day.isoformat())
            monkeypatch.setenv(config.env_name(provider, "lookback_days"), str(LOOKBACK_DAYS))
        return started

    yield start
    for sim in started.values():
        sim.stop()


def raw_equals_truth(provider: str, sim: Simulator, first: dt.date, last: dt.date, destination: str = "duckdb") -> None:
    provider_case = case(provider)
    assert_facts_equal(facts(destination, provider_case), truth_rows(sim, first, last), provider_case.tolerance)


def models_equal_truth(provider: str, sim: Simulator, first: dt.date, last: dt.date, destination: str = "duckdb") -> None:
    rows = query(
        destination,
        "select usage_date, account_id, resource_type, resource_id, metric, quantity "
        f"from analytics.fct_daily_usage where provider = '{provider}'",
    )
    actual = {tuple(row[:5]): float(row[5]) for row in rows}
    assert len(actual) == len(rows), f"{provider}: duplicate facts in analytics.fct_daily_usage"
    assert_facts_equal(actual, truth_rows(sim, first, last), case(provider).tolerance)


def pipeline(provider: str, destination: str = "duckdb") -> dlt.Pipeline:
    return pipeline_for(provider, config.destination(destination))


def assert_state_consistent(provider: str, last: dt.date, destination: str = "duckdb") -> None:
    """Nothing pending, nothing half-extracted, every cursor at `last`, and the warehouse holds
    the same state as the working folder."""
    working = pipeline(provider, destination)
    assert not working.has_pending_data, f"{provider}: load packages still pending"
    normalize_dir = Path(working.working_dir) / "normalize"
    leftovers = [p.name for p in normalize_dir.iterdir() if p.is_dir() and p.name != "extracted"] if normalize_dir.exists() else []
    assert not leftovers, f"{provider}: partial extracts left behind: {leftovers}"
    state = working.state
    resources = state["sources"][provider]["resources"]
    cursors = {name: r["incremental"]["usage_date"]["last_value"] for name, r in resources.items()}
    assert set(cursors.values()) == {last}, cursors
    # the state dlt would restore: the newest of a completed load (an aborted package's is not)
    ((version_hash,),) = query(
        destination,
        f"select s.version_hash from raw_{provider}._dlt_pipeline_state s join raw_{provider}._dlt_loads l "
        "on l.load_id = s._dlt_load_id where l.status = 0 order by l.load_id desc limit 1",
    )
    assert version_hash == state["_version_hash"], f"{provider}: the warehouse state differs from the working folder's"


def summary_line(stdout: str, provider: str) -> List[str]:
    return next(line for line in stdout.splitlines() if line.startswith(f"{provider} ")).split()


# -- a provider down for the whole night -------------------------------------------------------------
def test_providers_down_all_night_are_named_and_caught_up_the_next_night(monkeypatch, sims, fault_report):
    today = yesterday() + dt.timedelta(days=1)
    first_night, down_night, next_night = today - dt.timedelta(days=5), today - dt.timedelta(days=1), today
    first_day = first_night - dt.timedelta(days=3)
    night(monkeypatch, first_night)
    started = sims(config.provider_names(), first_day)
    assert run_nightly().exit_code == config.EXIT_OK

    night(monkeypatch, down_night)
    adverity, rafay = started["adverity"], started["rafay"]
    adverity.stop()  # connection refused all night
    outage = rafay.inject(Fault(status=503, body={"error": "maintenance"}, times=FOREVER))
    done = run("nightly")
    assert done.returncode == config.EXIT_FAILED, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    failed = sorted(line for line in done.stdout.splitlines() if line.startswith("FAILED "))
    assert len(failed) == 2, done.stdout
    assert failed[0].startswith(f"FAILED adverity: cannot reach {adverity.base_url}"), failed[0]
    attempts = FAST_RETRIES["RUNTIME__REQUEST_MAX_ATTEMPTS"]
    assert failed[1].startswith(f"FAILED rafay: HTTP 503: maintenance after {attempts} attempt(s)"), failed[1]
    assert "\nmodels: " in done.stdout, "the other providers' models are built"
    missed_last = down_night - dt.timedelta(days=1)
    for provider in ("neon", "bronto"):
        assert summary_line(done.stdout, provider)[1] == "ok"
        models_equal_truth(provider, started[provider], first_day, missed_last)
    statuses = dict(query("duckdb", f"select provider, status from analytics.load_runs where started_at >= "
                                    f"(select max(started_at) from analytics.load_runs)"))
    assert statuses == {"neon": "ok", "adverity": "failed", "rafay": "failed", "bronto": "ok"}

    night(monkeypatch, next_night)
    adverity.start()  # back on the same port
    rafay.clear_faults()
    done = run("nightly")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    last = next_night - dt.timedelta(days=1)
    for provider, sim in started.items():
        raw_equals_truth(provider, sim, first_day, last)
        models_equal_truth(provider, sim, first_day, last)
        assert_state_consistent(provider, last)
    assert outage.served >= int(attempts)
    fault_report("provider down all night (one refusing, one answering 503)", 2)


# -- SIGKILL ---------------------------------------------------------------------------------------
CRASHES = {
    # moment: (killed provider, a provider nightly runs after it)
    "extract": ("rafay", "neon"),
    "normalize": ("neon", "bronto"),
    "normalize-commit": ("adverity", "neon"),
    "restore": ("rafay", "neon"),
    "load": ("bronto", "adverity"),
    "load-jobs": ("rafay", "adverity"),
}


@pytest.mark.parametrize(
    "moment, destination",
    [(moment, "duckdb") for moment in CRASHES] + [("load", "postgres"), ("load-jobs", "postgres")],
)
def test_a_nightly_killed_mid_run_is_completed_by_the_next(moment, destination, request, monkeypatch, sims, fault_report):
    killed, after = CRASHES[moment]
    if destination == "postgres":
        request.getfixturevalue("postgres_url")
    monkeypatch.setenv("DESTINATION", destination)
    today = yesterday() + dt.timedelta(days=1)
    first_night, crash_night, next_night = today - dt.timedelta(days=2), today - dt.timedelta(days=1), today
    first_day = next_night - dt.timedelta(days=START_BACK)
    night(monkeypatch, first_night)
    started = sims((killed, after), first_day)
    assert run_nightly([killed, after]).exit_code == config.EXIT_OK

    night(monkeypatch, crash_night)
    providers = f"{killed},{after}"
    if moment == "extract":
        # the simulator holds a request in the middle of the night's extraction; the test kills
        # the process while it waits for the answer
        held = started[killed].inject(Fault(kind="block", after=6))
        process = subprocess.Popen([sys.executable, "-m", "pipelines", "nightly", "--providers", providers], cwd=ROOT,
                                   env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert held.reached.wait(120), "the held request never came"
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
        held.release.set()
        returncode = process.returncode
    else:
        done = run("nightly", "--providers", providers, harness=(f"{killed}_usage_{destination}", moment))
        returncode = done.returncode
    assert returncode == -signal.SIGKILL, f"the run was not killed ({returncode})"
    pending = pipeline(killed, destination)
    expected_pending = {"extract": (0, 0), "normalize": (1, 0), "normalize-commit": (1, 1), "restore": None, "load": (0, 1), "load-jobs": (0, 1)}[moment]
    if expected_pending is None:  # killed while dropping the local state to restore the warehouse's
        assert not os.path.isdir(os.path.join(pending.working_dir, "load", "normalized")), "the working folder is whole"
    else:
        assert (len(pending.list_extracted_load_packages()), len(pending.list_normalized_load_packages())) == expected_pending
    started[killed].clear_faults()

    night(monkeypatch, next_night)
    done = run("nightly", "--providers", providers)
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    # a package cut while its jobs ran is aborted and its days read again (a job that had
    # committed could otherwise run twice); any other package left behind is completed
    recovery = {
        "extract": "removing the partial extract of an interrupted run",
        "normalize": "completing 1 load package(s) left by an interrupted run",
        "normalize-commit": "normalized already; removing its extracted copy",
        "restore": "working folder was left incomplete by an interrupted run",
        "load": "completing 1 load package(s) left by an interrupted run",
        "load-jobs": "was cut while loading; aborting it and reading its days again",
    }[moment]
    assert any(f"{killed}_usage_{destination}: " in line and recovery in line for line in done.stderr.splitlines()), done.stderr
    last = next_night - dt.timedelta(days=1)
    for provider in (killed, after):
        raw_equals_truth(provider, started[provider], first_day, last, destination)
        models_equal_truth(provider, started[provider], first_day, last, destination)
        assert_state_consistent(provider, last, destination)
    # the killed night's package covered from its cursor minus the lookback; the summary and the
    # rebuilt models include those days, not only the ones read again this night
    if moment not in ("extract", "restore"):
        crashed_first = first_night - dt.timedelta(days=1 + LOOKBACK_DAYS)
        assert summary_line(done.stdout, killed)[4] == crashed_first.isoformat(), done.stdout
    fault_report(f"SIGKILL during {moment.replace('-', ' ')} ({destination})", 1)
