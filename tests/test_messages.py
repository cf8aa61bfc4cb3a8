"""Messages that name the cause: what the API sent that could not be loaded, in one line that
is never cut inside a word, without dlt's wrapping around it."""

from __future__ import annotations

import datetime as dt
import os
import re

import pytest

from pipelines import config
from simulators.base import FOREVER, Fault
from tests import test_faults, test_no_silent_loss
from tests.providers import case
from tests.test_faults import nightly, one_line, walk

# the fault suite's fixtures: small simulators, fast retries
fast_retries, start_sim = test_faults.fast_retries, test_faults.start_sim
provider_case, simulator = test_faults.provider_case, test_faults.simulator

TOO_LARGE = {
    # provider: (the API's field, a value its raw column cannot hold, the field the message names)
    "neon": ("value", 2**70, "value"),
    "adverity": ("total_rows", 10**20, "total_rows"),
    "rafay": ("raw_usage", 10**400, "raw_usage"),
    "bronto": ("count", 2**70, "slice_count"),
}
WRAPPERS = ("PipelineStepFailed", "ResourceExtractionError", "Pipeline execution failed", "caused an exception")


def serve(field: str, value) -> Fault:
    return Fault(kind="mutate", mutate=lambda body: walk(body, lambda obj: {**obj, field: value} if field in obj else obj),
                 times=FOREVER)


def test_a_value_out_of_range_names_the_field_and_the_value(provider_case, simulator):
    field, value, named = TOO_LARGE[provider_case.name]
    simulator.inject(serve(field, value))
    result = nightly(provider_case)
    assert result.status == "failed"
    message = one_line(result.error)
    assert message.startswith(f"{provider_case.name}: "), message
    assert f"'{named}'" in message and str(value)[:30] in message, message
    assert not any(wrapper in message for wrapper in WRAPPERS), message
    assert result.days == set(), "a failed load shows no day"


@pytest.mark.parametrize("literal", [float("nan"), float("inf")])
def test_a_nan_literal_is_named_and_not_called_truncated(provider_case, simulator, literal):
    field = TOO_LARGE[provider_case.name][0]
    simulator.inject(serve(field, literal))
    result = nightly(provider_case)
    assert result.status == "failed"
    message = one_line(result.error)
    word = "NaN" if literal != literal else "Infinity"
    assert re.search(rf"malformed response body: {word} at line \d+ column \d+", message), message
    assert "truncated" not in message, message


def test_a_long_vendor_message_is_cut_between_words(provider_case, simulator):
    words = [f"reason{index:03d}" for index in range(120)]
    simulator.inject(Fault(status=400, body={"message": " ".join(words), "detail": " ".join(words),
                                             "details": " ".join(words)}, times=FOREVER))
    message = one_line(nightly(provider_case).error)
    assert "…" in message, message
    kept = message.split(": ", 2)[-1].split("…")[0].split()
    assert kept and all(word in words for word in kept), message


def test_a_failed_load_shows_no_day(provider_case, simulator):
    """A load that fails after some windows were read shows none of their days: nothing of it
    was loaded."""
    body, headers, _ = test_faults.MALFORMED["truncated JSON"]
    simulator.inject(Fault(kind="raw", raw=body, headers=headers, after=test_faults.FAULT_AFTER[provider_case.name]))
    result = nightly(provider_case)
    assert result.status == "failed" and result.rows == 0
    assert result.days == set(), sorted(result.days)


TEXT_FIELD = {
    # provider: a text field of the API that the raw table keeps, and the column it lands in
    "neon": ("period_plan", "project_consumption", "period_plan"),
    "adverity": ("workspace_name", "usage", "workspace_name"),
    "rafay": ("instance_name", "compute_instance_usage", "instance_name"),
    "bronto": ("name", "daily_usage", "resource_name"),
}


def test_a_nul_character_fails_a_postgres_load_once_naming_table_column_and_value(provider_case, simulator,
                                                                                  postgres_url, monkeypatch):
    from pipelines import config
    from pipelines.load import load_provider, pipeline_for

    monkeypatch.setenv("DESTINATION", "postgres")
    field, table_name, column = TEXT_FIELD[provider_case.name]
    simulator.inject(serve(field, "north\x00east"))
    first, _ = test_faults.run_days()
    result = load_provider(provider_case.name, start_date=first)
    assert result.status == "failed"
    message = one_line(result.error)
    assert f"table {table_name}, column {column}" in message and "'north\\x00east'" in message, message
    assert "NUL" in message, message
    assert result.days == set()
    assert not pipeline_for(provider_case.name, config.destination("postgres")).has_pending_data, \
        "a package left pending is loaded again, and fails again, by every run"
    simulator.clear_faults()
    assert load_provider(provider_case.name, start_date=first).status == "ok"


# -- the lines a run prints -----------------------------------------------------------------------
from tests import test_cli  # noqa: E402

sims = test_cli.sims


def said(done, text: str) -> int:
    return (done.stdout + done.stderr).count(text)


def test_a_nightly_says_each_thing_once_and_nothing_misleading(sims, monkeypatch):
    monkeypatch.setenv("SOURCES__ADVERITY__API_KEY", "not-the-key")
    monkeypatch.delenv("SOURCES__RAFAY__API_KEY")
    for night in (1, 2):
        done = test_cli.run("nightly")
        assert done.returncode == 1, done.stdout + done.stderr
        assert said(done, "SOURCES__RAFAY__API_KEY is not set") == 1, done.stdout + done.stderr
        assert said(done, "the API rejected the credentials") == 1, done.stdout + done.stderr
        assert "interrupted run" not in done.stderr, f"night {night}: nothing was interrupted\n{done.stderr}"
        assert "checks passed" not in done.stdout
    done = test_cli.run("models")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all..all" not in done.stdout and "empty view" not in done.stdout, done.stdout
    without_data = [line.split(":")[0].strip() for line in done.stdout.splitlines() if "no raw data yet" in line]
    assert without_data == ["adverity", "rafay"], done.stdout


def test_a_healthy_nightly_says_its_checks_passed(sims):
    done = test_cli.run("nightly")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checks passed" in done.stdout.splitlines()[-1], done.stdout
    done = test_cli.run("models")
    assert "no raw data yet" not in done.stdout, done.stdout


def test_an_empty_backfill_is_a_warning_in_the_summary_and_in_load_runs(monkeypatch, api_key):
    from tests.conftest import query, yesterday

    sim = case("neon").make_simulator(api_key=api_key, seed=3, n_projects=0).start()
    try:
        for name, value in case("neon").env(sim).items():
            monkeypatch.setenv(name, value)
        first, last = yesterday() - dt.timedelta(days=3), yesterday()
        done = test_cli.run("backfill", "--provider", "neon", "--start", first.isoformat(), "--end", last.isoformat())
    finally:
        sim.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("WARNING ")]
    assert f"neon: no rows over {first}..{last}" in line, done.stdout
    ((status, warning),) = query("duckdb", "select status, warning from analytics.load_runs")
    assert status == "ok" and warning == line[len("WARNING "):]


# -- a full disk ----------------------------------------------------------------------------------
def nightly_on_a_small_disk(folder, size: str, env: dict):
    """`nightly` with `folder` a tmpfs of `size` (in a mount namespace of its own, as any user may)."""
    import subprocess
    import sys

    command = f"mount -t tmpfs -o size={size} tmpfs {folder} && exec {sys.executable} -m pipelines nightly"
    return subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", command], cwd=test_cli.ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def assert_disk_full_said(done, folder) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.startswith("provider   status"), f"no summary:\n{done.stdout}\n{done.stderr}"
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED ")]
    assert failed and all(f"disk full: no space left on the device of {folder}/" in line for line in failed), done.stdout
    assert not [line for line in done.stderr.splitlines() if line.startswith("error:")], done.stderr


def test_a_full_dlt_folder_says_disk_full_with_the_path_and_records_the_run(sims, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    done = nightly_on_a_small_disk(small, "64k", {"DLT_DATA_DIR": str(small)})
    assert_disk_full_said(done, small)
    rows = test_cli.query("duckdb", "select provider, status, error_message from analytics.load_runs")
    assert {provider for provider, _, _ in rows} == set(sims)
    assert all(status == "failed" and f"disk full: no space left on the device of {small}/" in error
               for _, status, error in rows), rows


def status_replaced(body: str) -> str:
    """A harness running the command line with `cmd_status` defined by `body` (which may call
    the real one as `run`)."""
    return (
        "import os, sys\n"
        "sys.path.insert(0, os.getcwd())\n"
        "from pipelines import __main__ as cli\n"
        "run = cli.cmd_status\n"
        f"{body}\n"
        "cli.cmd_status = status\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )


WRITER_DYING_ON_A_FULL_DISK = status_replaced("""
class Writer:
    # a file writer left for the garbage collector, whose close fails as pyarrow's does
    def __del__(self):
        raise OSError(28, "No space left on device")


def status(args):
    Writer()
    return run(args)
""")


def test_an_error_while_cleaning_up_prints_no_traceback():
    """A writer closed by the garbage collector after a full disk (pyarrow's ParquetWriter
    does so) failing again: the run has already said why, and its output stays one line."""
    done = test_no_silent_loss.cli("status", harness=WRITER_DYING_ON_A_FULL_DISK)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


UNEXPECTED_ERROR_QUOTING_SECRETS = status_replaced("""
from sources.secrets import register_secret

KEY = "sk-live-7f3a9c2e51d04b8e"
register_secret(KEY)  # as a provider's client does with its key


def status(args):
    raise RuntimeError(f"upstream said: token {KEY} refused at postgresql://loader:hunter2pass@db.internal/usage")
""")


def test_an_unexpected_error_is_printed_with_its_secrets_masked():
    """An error no step turned into a line of its own is printed as one line, and like every
    other line it masks the keys and passwords it quotes."""
    done = test_no_silent_loss.cli("status", harness=UNEXPECTED_ERROR_QUOTING_SECRETS)
    assert done.returncode == config.EXIT_FAILED, done.stdout + done.stderr
    assert "sk-live-7f3a9c2e51d04b8e" not in done.stderr and "hunter2pass" not in done.stderr, done.stderr
    assert "error: RuntimeError: upstream said: token *** refused at postgresql://loader:***@db.internal/usage" in done.stderr


def test_a_full_warehouse_disk_says_disk_full_with_the_path_and_prints_the_summary(sims, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    done = nightly_on_a_small_disk(small, "1m", {"DESTINATION__DUCKDB__CREDENTIALS": str(small / "warehouse.duckdb")})
    assert_disk_full_said(done, small)


# -- schema drift ---------------------------------------------------------------------------------
from tests.test_alerts import Receiver  # noqa: E402


def test_schema_drift_is_recorded_summarised_and_alerted_once(provider_case, simulator, monkeypatch):
    """New fields everywhere and the fields the source can do without gone: the run loads as
    ever, and its summary line, its load_runs row and its one alert name the endpoint and the
    fields; the next run, seeing the same answers, reports nothing."""
    name = provider_case.name
    receiver = Receiver()
    monkeypatch.setenv("ALERTS__WEBHOOK_URL", receiver.url)
    monkeypatch.delenv("ALERTS__ON_SUCCESS", raising=False)
    try:
        first = test_cli.run("nightly", "--providers", name)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "SCHEMA DRIFT" not in first.stdout and receiver.bodies == [], first.stdout
        drop_unneeded = test_faults.without(*test_faults.NOT_NEEDED[name])
        simulator.inject(Fault(kind="mutate", mutate=lambda body: test_faults.with_new_fields(drop_unneeded(body)),
                               times=FOREVER))
        drifted = test_cli.run("nightly", "--providers", name)
        assert drifted.returncode == 0, drifted.stdout + drifted.stderr
        (line,) = [line for line in drifted.stdout.splitlines() if line.startswith("SCHEMA DRIFT ")]
        assert line.startswith(f"SCHEMA DRIFT {name}: "), line
        assert re.search(r"new fields [^;]*\bintroduced_in_v2\b", line) and "extra_stats" in line, line
        gone = re.search(r"fields gone ([^;]*)", line)
        assert gone and any(re.search(rf"(^|[.\] ]){re.escape(field)}(,|$| )", gone.group(1))
                            for field in test_faults.NOT_NEEDED[name]), line
        ((recorded,),) = test_cli.query("duckdb", "select schema_changes from analytics.load_runs "
                                                  "where schema_changes is not null")
        assert line == f"SCHEMA DRIFT {name}: {recorded}"
        (text,) = receiver.texts()
        assert "schema drift" in text and f"{name} (account default)" in text and "introduced_in_v2" in text, text
        again = test_cli.run("nightly", "--providers", name)
        assert again.returncode == 0 and "SCHEMA DRIFT" not in again.stdout, again.stdout + again.stderr
        assert len(receiver.bodies) == 1, receiver.texts()
    finally:
        receiver.close()
