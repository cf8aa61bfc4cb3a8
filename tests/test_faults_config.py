"""Bad input: every configuration mistake ends in one line that names the setting and the fix,
with the documented exit code (2: nothing ran) and no traceback. Complements tests/test_cli.py, which covers the backfill ranges, an unknown
provider, a future START_DATE and an unknown DESTINATION."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

from pipelines import config
from pipelines.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "pg-pass-3f9a1c"


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def configured(monkeypatch) -> Dict[str, str]:
    """Every provider configured with plausible values (nothing will be reached)."""
    nowhere = f"http://127.0.0.1:{closed_port()}"
    env = {
        "SOURCES__NEON__API_KEY": "neon-key", "SOURCES__NEON__ORG_ID": "org-quiet-sun-1", "SOURCES__NEON__BASE_URL": nowhere,
        "SOURCES__ADVERITY__API_KEY": "adverity-key", "SOURCES__ADVERITY__BASE_URL": nowhere,
        "SOURCES__RAFAY__API_KEY": "rafay-key", "SOURCES__RAFAY__BASE_URL": nowhere,
        "SOURCES__BRONTO__API_KEY": "bronto-key", "SOURCES__BRONTO__BASE_URL": nowhere,
        "RUNTIME__REQUEST_MAX_ATTEMPTS": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def nothing_ran() -> None:
    assert not Path(os.environ["DESTINATION__DUCKDB__CREDENTIALS"]).exists(), "the warehouse was touched"
    pipelines = Path(os.environ["DLT_DATA_DIR"]) / "pipelines"
    assert not pipelines.exists() or not any(pipelines.iterdir()), "a pipeline ran"


MISTAKES = [
    # (settings to change (None removes), command line, what the one line must say)
    ({"SOURCES__NEON__ORG_ID": None}, ["nightly"], "SOURCES__NEON__ORG_ID is missing or empty; set it"),
    ({"SOURCES__ADVERITY__BASE_URL": None}, ["nightly"], "SOURCES__ADVERITY__BASE_URL is missing or empty; set it"),
    ({"SOURCES__RAFAY__API_KEY": "   "}, ["nightly"], "SOURCES__RAFAY__API_KEY is missing or empty; set it"),
    ({"SOURCES__BRONTO__API_KEY": None}, ["backfill", "--provider", "bronto", "--start", "2026-01-01", "--end", "2026-01-02"],
     "SOURCES__BRONTO__API_KEY"),
    ({"SOURCES__NEON__BASE_URL": "http://"}, ["nightly"], "SOURCES__NEON__BASE_URL='http://' is not a URL; use e.g. https://"),
    ({"SOURCES__RAFAY__BASE_URL": "ftp://console.example.com"}, ["nightly"], "SOURCES__RAFAY__BASE_URL='ftp://console.example.com' is not a URL"),
    ({"SOURCES__ADVERITY__START_DATE": "2026-02-30"}, ["nightly"], "SOURCES__ADVERITY__START_DATE='2026-02-30' is not a valid day; use YYYY-MM-DD"),
    ({"SOURCES__BRONTO__START_DATE": "yesterday"}, ["nightly"], "SOURCES__BRONTO__START_DATE='yesterday' is not a valid day; use YYYY-MM-DD"),
    ({"SOURCES__NEON__LOOKBACK_DAYS": "two"}, ["nightly"], "SOURCES__NEON__LOOKBACK_DAYS='two' must be a whole number of days"),
    ({"SOURCES__NEON__ORG_ID": "Org_With_Capitals"}, ["nightly"], "neon: SOURCES__NEON__ORG_ID must match"),
    ({"SOURCES__ADVERITY__AUTH_SCHEME": "Basic"}, ["nightly"],
     "adverity: SOURCES__ADVERITY__AUTH_SCHEME='Basic' is not supported; use Token or Bearer"),
    ({}, ["models", "--start", "2026-13-01"], "START='2026-13-01' is not a valid day; use YYYY-MM-DD"),
    ({}, ["models", "--start", "2026-03-05", "--end", "2026-03-01"], "START=2026-03-05 is after END=2026-03-01; give START <= END"),
    ({}, ["nightly", "--destination", "bigquery"], "unknown destination 'bigquery'; use --destination duckdb or --destination postgres"),
    ({}, ["nightly", "--providers", "neon,salesforce"], "unknown provider 'salesforce'; choose from neon, adverity, rafay, bronto or all"),
    ({"DESTINATION": "postgres"}, ["nightly"], "DESTINATION__POSTGRES__CREDENTIALS is missing; set it to postgresql://"),
    ({"DESTINATION": "postgres", "DESTINATION__POSTGRES__CREDENTIALS": "localhost:5432/warehouse"}, ["nightly"],
     "DESTINATION__POSTGRES__CREDENTIALS is not a Postgres URL; use postgresql://user:pass@host:port/db"),
    ({"DESTINATION": "postgres", "DESTINATION__POSTGRES__CREDENTIALS": "postgresql://postgres@127.0.0.1:5432/postgres"},
     ["nightly"], "DESTINATION__POSTGRES__CREDENTIALS has no password"),
    ({"DESTINATION__DUCKDB__CREDENTIALS": "/proc/no-such-dir/warehouse.duckdb"}, ["nightly"],
     "DESTINATION__DUCKDB__CREDENTIALS='/proc/no-such-dir/warehouse.duckdb': cannot create its folder"),
]


MISTAKE_IDS = [
    "neon org id missing", "adverity base url missing", "rafay key blank", "bronto key missing (backfill)",
    "neon base url without host", "rafay base url not http", "impossible start date", "malformed start date",
    "lookback not a number", "neon org id malformed", "adverity auth scheme unknown", "models start malformed", "models start after end", "unknown destination",
    "unknown provider", "postgres credentials missing", "postgres url malformed", "postgres url without password",
    "duckdb folder not creatable",
]


@pytest.mark.parametrize("changes, argv, expected", MISTAKES, ids=MISTAKE_IDS)
def test_a_configuration_mistake_is_one_line_and_exit_2(configured, monkeypatch, capsys, changes, argv, expected):
    for name, value in changes.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    code = main(argv)
    captured = capsys.readouterr()
    assert code == config.EXIT_CONFIG, captured.out + captured.err
    assert expected in one_error_line(captured.err)
    if "DESTINATION__DUCKDB__CREDENTIALS" not in changes:
        nothing_ran()


def test_an_unreachable_postgres_fails_at_once_with_exit_2(configured):
    """A closed port: one line naming the setting and the fix, without the password; no
    traceback, nothing loaded."""
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/warehouse"
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "nightly"], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DESTINATION": "postgres", "DESTINATION__POSTGRES__CREDENTIALS": url},
    )
    assert done.returncode == config.EXIT_CONFIG, done.stdout + done.stderr
    line = one_error_line(done.stderr)
    assert line.startswith("error: DESTINATION__POSTGRES__CREDENTIALS: cannot connect to postgresql://postgres:***@127.0.0.1:")
    assert "Connection refused" in line and "check the host, port, database, user and password" in line
    assert PASSWORD not in done.stdout + done.stderr
    nothing_ran()


def test_a_missing_postgres_database_is_a_configuration_error(configured, postgres_url, capsys, monkeypatch):
    monkeypatch.setenv("DESTINATION", "postgres")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_url.rsplit("/", 1)[0] + "/no_such_database_here")
    code = main(["nightly"])
    captured = capsys.readouterr()
    assert code == config.EXIT_CONFIG
    line = one_error_line(captured.err)
    assert "DESTINATION__POSTGRES__CREDENTIALS: cannot connect" in line and 'database "no_such_database_here" does not exist' in line
