"""The commands as users run them: exit codes, one-line errors, skipped and failed providers,
backfills that leave the cursor alone, the warehouse lock, the run record."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines import config
from simulators.base import Fault
from tests.conftest import assert_facts_equal, query, yesterday
from tests.providers import all_cases, case, truth_rows

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env=None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.fixture
def sims(monkeypatch, api_key):
    """All four simulators, started, with every source configured to use them."""
    started = {}
    for provider_case in all_cases():
        sim = provider_case.make_simulator(api_key=f"{api_key}-{provider_case.name}", seed=5).start()
        started[provider_case.name] = sim
        for name, value in provider_case.env(sim).items():
            monkeypatch.setenv(name, value)
    start = yesterday() - dt.timedelta(days=3)
    for provider in started:
        monkeypatch.setenv(config.env_name(provider, "start_date"), start.isoformat())
    yield started
    for sim in started.values():
        sim.stop()


def fact_rows(destination="duckdb", provider=None):
    where = f"where provider = '{provider}'" if provider else ""
    return query(destination, f"select usage_date, provider, account_id, resource_type, resource_id, metric, quantity from analytics.fct_daily_usage {where}")


def test_nightly_loads_every_configured_provider_and_names_the_skipped(monkeypatch, sims):
    for provider in ("neon", "rafay"):
        monkeypatch.delenv(config.env_name(provider, "api_key"))
    done = run("nightly")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "neon       skipped (not configured: SOURCES__NEON__API_KEY is not set)" in done.stdout
    assert "rafay      skipped (not configured: SOURCES__RAFAY__API_KEY is not set)" in done.stdout
    providers = {row[1] for row in fact_rows()}
    assert providers == {"adverity", "bronto"}


def test_naming_an_unconfigured_provider_is_a_configuration_error(monkeypatch, sims):
    monkeypatch.delenv("SOURCES__NEON__API_KEY")
    done = run("nightly", "--providers", "neon")
    assert done.returncode == config.EXIT_CONFIG
    assert "SOURCES__NEON__API_KEY is missing" in one_line_error(done)


def test_a_failing_provider_does_not_stop_the_others(monkeypatch, sims):
    monkeypatch.setenv("SOURCES__ADVERITY__API_KEY", "not-the-key")
    done = run("nightly")
    assert done.returncode == config.EXIT_FAILED
    assert "FAILED adverity: the API rejected the credentials" in done.stdout
    assert "not-the-key" not in done.stdout + done.stderr
    assert {row[1] for row in fact_rows()} == {"neon", "rafay", "bronto"}


@pytest.mark.parametrize(
    "setting, value, expected",
    [
        ("SOURCES__NEON__START_DATE", "2026-13-01", "SOURCES__NEON__START_DATE='2026-13-01' is not a valid day"),
        ("SOURCES__RAFAY__START_DATE", "2999-01-01", "SOURCES__RAFAY__START_DATE=2999-01-01 is not a complete day yet"),
        ("SOURCES__BRONTO__BASE_URL", "api.eu.bronto.io", "SOURCES__BRONTO__BASE_URL='api.eu.bronto.io' is not a URL"),
        ("SOURCES__ADVERITY__API_KEY", "", "SOURCES__ADVERITY__API_KEY is missing or empty"),
        ("DESTINATION", "snowflake", "unknown destination 'snowflake'"),
    ],
)
def test_configuration_mistakes_exit_2_with_one_line(monkeypatch, sims, setting, value, expected):
    monkeypatch.setenv(setting, value)
    done = run("nightly")
    assert done.returncode == config.EXIT_CONFIG, done.stdout + done.stderr
    assert expected in one_line_error(done)
    assert not Path(os.environ["DESTINATION__DUCKDB__CREDENTIALS"]).exists(), "nothing may run on bad config"


def test_unknown_provider_is_refused(sims):
    done = run("nightly", "--providers", "neon,snowflake")
    assert done.returncode == config.EXIT_CONFIG
    assert "unknown provider 'snowflake'" in one_line_error(done)


def cursor_state(provider: str) -> dict:
    """The nightly cursor (dlt state) of every resource of a provider's pipeline."""
    warehouse = config.Destination("duckdb", os.environ["DESTINATION__DUCKDB__CREDENTIALS"])
    path = Path(warehouse.pipelines_dir) / f"{provider}_usage_duckdb" / "state.json"
    state = json.loads(path.read_text())
    resources = state["sources"][provider]["resources"]
    return {name: r.get("incremental") for name, r in resources.items()}


def test_backfill_then_nightly_then_backfill_again(sims):
    last = yesterday()
    assert run("nightly").returncode == 0
    cursors = {provider: cursor_state(provider) for provider in sims}
    first = last - dt.timedelta(days=9)
    end = last - dt.timedelta(days=4)  # the day before the nightly START_DATE
    done = run("backfill", "--provider", "all", "--start", first.isoformat(), "--end", end.isoformat())
    assert done.returncode == 0, done.stdout + done.stderr
    assert {provider: cursor_state(provider) for provider in sims} == cursors, "backfill moved the nightly cursor"
    assert run("nightly").returncode == 0
    once = sorted(fact_rows())
    assert run("backfill", "--provider", "all", "--start", first.isoformat(), "--end", end.isoformat()).returncode == 0
    assert sorted(fact_rows()) == once
    for provider, sim in sims.items():
        provider_case = case(provider)
        actual = {
            (d, a, t, r, m): q for d, p, a, t, r, m, q in fact_rows(provider=provider)
        }
        assert_facts_equal(actual, truth_rows(sim, first, last), provider_case.tolerance)


REFUSED_BACKFILLS = [
    (["--provider", "neon", "--start", "2024-01-01", "--end", "2024-01-31"], "neon keeps daily data for 60 days; earliest day you can backfill is"),
    (["--provider", "all", "--start", "2026-05-10", "--end", "2026-05-01"], "START=2026-05-10 is after END=2026-05-01"),
    (["--provider", "all", "--start", "2026-02-30", "--end", "2026-03-01"], "START='2026-02-30' is not a valid day"),
    (["--provider", "all", "--start", "last week", "--end", "2026-03-01"], "START='last week' is not a valid day"),
    (["--provider", "snowflake", "--start", "2026-01-01", "--end", "2026-01-02"], "unknown provider 'snowflake'"),
    (["--provider", "rafay", "--start", "2026-01-01", "--end", "2999-01-02"], "END=2999-01-02 is not a complete UTC day yet"),
]


def test_refused_backfills_change_nothing(sims):
    """Each refusal on the same loaded warehouse: exit 2, its one line, the facts as they were."""
    assert run("nightly").returncode == 0
    before = sorted(fact_rows())
    for args, expected in REFUSED_BACKFILLS:
        done = run("backfill", *args)
        assert done.returncode == config.EXIT_CONFIG, (args, done.stdout + done.stderr)
        assert expected in one_line_error(done), args
        assert sorted(fact_rows()) == before, args


def a_running_nightly() -> subprocess.Popen:
    """A nightly run started in the background, once it holds the warehouse lock."""
    running = subprocess.Popen([sys.executable, "-m", "pipelines", "nightly"], cwd=ROOT, env=dict(os.environ),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock_file = Path(os.environ["DESTINATION__DUCKDB__CREDENTIALS"] + ".lock")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (lock_file.exists() and lock_file.read_text()):
        time.sleep(0.05)
    return running


def test_two_nightly_runs_at_once_one_waits_out(sims):
    slow = sims["adverity"]
    slow.latency_s = 0.3  # keeps the first run busy long enough
    first = a_running_nightly()
    second = run("nightly")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    assert second.returncode == config.EXIT_LOCKED
    assert f"`nightly` (pid {first.pid}" in one_line_error(second)
    slow.latency_s = 0
    # the warehouse ends correct: a later run still finds nothing duplicated
    assert run("nightly").returncode == 0
    rows = fact_rows()
    assert len(rows) == len({r[:6] for r in rows})


@contextlib.contextmanager
def an_analysts_session():
    """Another process with the DuckDB warehouse open, as an analyst's notebook keeps it."""
    analyst = subprocess.Popen(
        [sys.executable, "-c", "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); print('open', flush=True); time.sleep(60)",
         os.environ["DESTINATION__DUCKDB__CREDENTIALS"]], stdout=subprocess.PIPE, text=True,
    )
    try:
        assert analyst.stdout.readline().strip() == "open"
        yield analyst
    finally:
        analyst.kill()
        analyst.wait()


def test_an_open_duckdb_session_blocks_with_a_clear_message(sims):
    assert run("nightly", "--providers", "adverity").returncode == 0
    with an_analysts_session() as analyst:
        done = run("nightly", "--providers", "adverity")
        assert done.returncode == config.EXIT_LOCKED
        line = one_line_error(done)
        assert f"open in process {analyst.pid}" in line and "read_only=True" in line


def test_status_shows_every_provider_after_a_nightly(sims):
    assert run("nightly").returncode == 0
    done = run("status")
    assert done.returncode == 0
    for provider in sims:
        line = next(l for l in done.stdout.splitlines() if l.startswith(f"{provider} "))
        assert yesterday().isoformat() in line
    (runs,), = query("duckdb", "select count(*) from analytics.load_runs where status = 'ok'")
    assert runs == 4


def test_every_command_works_on_postgres(sims, postgres_url):
    env = {"DESTINATION": "postgres"}
    last = yesterday()
    assert run("nightly", env=env).returncode == 0
    first = last - dt.timedelta(days=8)
    end = last - dt.timedelta(days=4)
    done = run("backfill", "--provider", "all", "--start", first.isoformat(), "--end", end.isoformat(), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert run("models", "--start", first.isoformat(), "--end", last.isoformat(), env=env).returncode == 0
    done = run("check", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    status = run("status", env=env)
    assert status.returncode == 0
    for provider, sim in sims.items():
        assert any(l.startswith(f"{provider} ") and last.isoformat() in l for l in status.stdout.splitlines())
        actual = {(d, a, t, r, m): q for d, p, a, t, r, m, q in fact_rows("postgres", provider)}
        assert_facts_equal(actual, truth_rows(sim, first, last), case(provider).tolerance)
    (runs,), = query("postgres", "select count(*) from analytics.load_runs where command = 'backfill' and status = 'ok'")
    assert runs == 4


def test_postgres_lock_names_the_running_command(sims, postgres_url):
    import psycopg2
    import zlib

    holder = psycopg2.connect(postgres_url, application_name="usage-elt nightly")
    holder.autocommit = True
    try:
        holder.cursor().execute("select pg_advisory_lock(%s)", (zlib.crc32(b"usage-elt warehouse lock"),))
        done = run("nightly", env={"DESTINATION": "postgres"})
        assert done.returncode == config.EXIT_LOCKED
        assert "is busy: `usage-elt nightly`" in one_line_error(done)
    finally:
        holder.close()
    assert run("nightly", env={"DESTINATION": "postgres"}).returncode == 0


def test_backfill_reports_progress_in_plain_lines_under_cron(sims):
    last = yesterday()
    first = last - dt.timedelta(days=20)
    done = run("backfill", "--provider", "rafay", "--start", first.isoformat(), "--end", last.isoformat())
    assert done.returncode == 0, done.stderr
    lines = [l for l in done.stderr.splitlines() if "backfill " in l and " windows: rafay " in l]
    assert [l.split("backfill ")[1].split(" ")[0] for l in lines] == ["1/3", "2/3", "3/3"]
    assert "\r" not in done.stderr
    assert all("rows" in l and "requests" in l for l in lines)


# -- exit codes that agree ---------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["nightly", "backfill", "models", "check"])
def test_no_provider_configured_is_exit_2_for_every_command(command):
    day = (yesterday() - dt.timedelta(days=1)).isoformat()
    done = run(command, *(["--start", day, "--end", day] if command == "backfill" else []))
    assert done.returncode == config.EXIT_CONFIG, done.stdout + done.stderr
    assert "no provider is configured: set SOURCES__<PROVIDER>__API_KEY for at least one of neon, " in one_line_error(done)
    assert not Path(os.environ["DESTINATION__DUCKDB__CREDENTIALS"]).exists(), "nothing may run"


@pytest.mark.parametrize("command", ["status", "check"])
def test_a_warehouse_that_does_not_exist_is_a_configuration_error(command, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCES__RAFAY__API_KEY", "rafay-key")  # configured; nothing will be reached
    monkeypatch.setenv("SOURCES__RAFAY__BASE_URL", "http://127.0.0.1:9")
    missing = tmp_path / "elsewhere" / "warehouse.duckdb"
    done = run(command, env={"DESTINATION__DUCKDB__CREDENTIALS": str(missing)})
    assert done.returncode == config.EXIT_CONFIG, done.stdout + done.stderr
    assert f"the DuckDB warehouse {missing} does not exist; set DESTINATION__DUCKDB__CREDENTIALS" in one_line_error(done)
    assert done.stdout == "", "no other warehouse is shown instead"
    assert not missing.exists()


def test_status_and_check_on_a_duckdb_file_held_elsewhere_are_busy_like_nightly(sims):
    assert run("nightly", "--providers", "adverity").returncode == 0
    with an_analysts_session():
        nightly = run("nightly", "--providers", "adverity")
        assert nightly.returncode == config.EXIT_LOCKED
        for command in ("status", "check"):
            done = run(command)
            assert done.returncode == config.EXIT_LOCKED, done.stdout + done.stderr
            assert one_line_error(done) == one_line_error(nightly)
    assert run("status").returncode == 0


def test_status_during_a_nightly_reads_between_its_loads(sims):
    """The nightly holds the DuckDB file only while it loads and models: `status` run while it
    reads the APIs gets its moment, and the nightly's next load waits for it."""
    sims["adverity"].latency_s = 0.3  # keeps the run reading the API for a while
    nightly = a_running_nightly()
    time.sleep(0.5)  # past the lock, into the reading of the APIs
    status = run("status", "--wait", "120")  # the loads of the other providers may hold it a few seconds
    out, err = nightly.communicate(timeout=300)
    assert nightly.returncode == 0, out + err
    assert status.returncode == config.EXIT_OK, status.stdout + status.stderr
    assert "Traceback" not in status.stderr, status.stderr


# -- the run record, however the run ends ------------------------------------------------------------
NO_SPACE_IN_MODELS = r"""
import os, sys
sys.path.insert(0, os.getcwd())
from pipelines import models


def no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")


models.build_pending = no_space
from pipelines.__main__ import main

sys.exit(main(sys.argv[1:]))
"""


def load_runs_of_last_run(destination="duckdb"):
    rows = query(destination, "select provider, account, status, error_message from analytics.load_runs where run_id = "
                              "(select run_id from analytics.load_runs order by started_at desc limit 1)")
    return {config.label_of(provider, account): (status, error) for provider, account, status, error in rows}


def test_a_run_failing_in_a_late_step_records_every_account(sims):
    done = subprocess.run([sys.executable, "-c", NO_SPACE_IN_MODELS, "nightly"], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ), timeout=300)
    assert done.returncode == config.EXIT_FAILED, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("FAILED ")]
    assert line.startswith("FAILED models step failed: disk full: no space left on the device of "), done.stdout
    runs = load_runs_of_last_run()
    assert set(runs) == set(sims)
    assert all(status == "failed" and line.startswith(f"FAILED {error}") for status, error in runs.values()), runs


def one_negative_figure(body):
    """Neon's first metric value made negative, which the fact table's tests refuse."""
    for project in body["projects"]:
        for period in project["periods"]:
            for consumption in period["consumption"]:
                for metric in consumption["metrics"]:
                    metric["value"] = -5
                    return body
    return body


def test_a_providers_failing_models_are_recorded_as_its_failure(sims):
    negative = sims["neon"].inject(Fault(kind="mutate", mutate=one_negative_figure, path_contains="projects"))
    done = run("nightly")
    assert done.returncode == config.EXIT_FAILED, done.stdout + done.stderr
    assert negative.served == 1
    runs = load_runs_of_last_run()
    status, error = runs.pop("neon")
    assert status == "failed" and error.startswith("models step failed: ") and "quantity_not_negative" in error, error
    assert set(runs.values()) == {("ok", None)}, runs


@pytest.mark.parametrize("command", [["nightly"], ["backfill", "--start", str(yesterday()), "--end", str(yesterday())]])
def test_a_malformed_rate_card_stops_a_load_before_it_asks_any_api(sims, monkeypatch, tmp_path, command):
    card = tmp_path / "card.csv"
    card.write_text("provider,metric,pricing_unit,unit_price,currency,effective_from,effective_to\n"
                    "neon,compute_unit_seconds,CU-hour,-1,USD,2026-01-01,\n")
    monkeypatch.setenv("PRICING__RATE_CARD", str(card))
    done = run(*command)
    assert done.returncode == config.EXIT_CONFIG, done.stdout + done.stderr
    assert f"{card}, line 2:" in one_line_error(done)
    assert not any(sim.requests for sim in sims.values()), "a provider was read before the card was checked"
