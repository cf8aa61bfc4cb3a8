"""Secrets never leave the process that needs them, are masked without corrupting the text
around them, and sit in a `secrets.toml` that only its owner may read.

The scenarios of the suite run as a scheduler would run them, with recognisable API keys (good
ones and wrong ones) and a recognisable Postgres password: nightly and backfill loads, models,
checks and status on DuckDB and Postgres, rejected keys, a vendor that quotes the key back in
its error, an unreachable warehouse, with debug logging on. Then every captured output, every
file under DLT_DATA_DIR (logs, dlt's traces, state, schemas and load packages) and beside the
warehouse, and every text column of every table of both warehouses (dlt's compressed state
included) is searched for them.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import os
import secrets
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Dict, List
from urllib.parse import urlsplit

import pytest

from pipelines import config
from simulators.base import FOREVER, Fault, Simulator
from tests.conftest import query, yesterday
from sources.http import ProviderClient, ProviderError, redact
from tests.providers import PROVIDER_NAMES, case
from tests.test_faults import FAST_RETRIES, SMALL, walk
from tests.test_faults_config import closed_port

ROOT = Path(__file__).resolve().parent.parent
MARK = f"Zq{secrets.token_hex(5)}"
"""Part of every secret below, and of nothing else."""
KEYS = {provider: f"{MARK}-key-{provider}" for provider in PROVIDER_NAMES}
WRONG_KEY = f"{MARK}-wrong-key"
"""A key the API rejects."""
PG_PASSWORD = f"{MARK}-pg"


@pytest.fixture
def sims(monkeypatch):
    started: Dict[str, Simulator] = {}
    for provider in PROVIDER_NAMES:
        provider_case = case(provider)
        sim = provider_case.make_simulator(api_key=KEYS[provider], seed=5, **SMALL.get(provider, {})).start()
        started[provider] = sim
        for name, value in provider_case.env(sim).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(config.env_name(provider, "start_date"), (yesterday() - dt.timedelta(days=3)).isoformat())
    for name, value in {**FAST_RETRIES, "LOG_LEVEL": "DEBUG", "RUNTIME__LOG_LEVEL": "DEBUG"}.items():
        monkeypatch.setenv(name, value)
    yield started
    for sim in started.values():
        sim.stop()


def with_password(url: str, port: int = 0) -> str:
    """`url` with PG_PASSWORD as its password (any works with trust auth), and maybe another port."""
    parts = urlsplit(url)
    netloc = f"{parts.username}:{PG_PASSWORD}@{parts.hostname}:{port or parts.port or 5432}"
    return parts._replace(netloc=netloc).geturl()


class Outputs:
    """Runs commands as cron would, keeping everything they print, also in a log file."""

    def __init__(self):
        self.captured: List[str] = []
        self.log_file = Path(os.environ["DLT_DATA_DIR"]) / "logs" / "nightly.log"
        self.log_file.parent.mkdir(parents=True, exist_ok=True)

    def run(self, *args: str, env: Dict[str, str] = None) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, **(env or {})}, timeout=300)
        self.captured += [done.stdout, done.stderr]
        with self.log_file.open("a") as log:
            log.write(done.stdout + done.stderr)
        return done


def leaks_in_files(root: Path) -> List[str]:
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            try:
                data += gzip.decompress(data)
            except OSError:
                pass
        if MARK.encode() in data:
            found.append(str(path))
    return found


TEXT_TYPES = ("varchar", "text", "character varying", "json", "jsonb")


def leaks_in_warehouse(destination: str) -> List[str]:
    found = []
    columns = query(destination, "select table_schema, table_name, column_name, data_type from information_schema.columns "
                                 "where table_schema not in ('information_schema', 'pg_catalog')")
    for schema, table, column, data_type in columns:
        if data_type.lower() not in TEXT_TYPES:
            continue
        (hits,), = query(destination, f'select count(*) from "{schema}"."{table}" where cast("{column}" as varchar) like \'%{MARK}%\'')
        if hits:
            found.append(f"{schema}.{table}.{column}")
        if table == "_dlt_pipeline_state" and column == "state":
            # dlt keeps the pipeline state compressed: look inside too
            for (state,) in query(destination, f'select "state" from "{schema}"."{table}"'):
                if MARK in zlib.decompress(base64.b64decode(state)).decode():
                    found.append(f"{schema}.{table}.state (decompressed)")
    return found


def test_no_secret_appears_in_any_output_file_or_table(sims, monkeypatch, tmp_path, postgres_url):
    outputs = Outputs()
    last = yesterday()

    # a normal night (loads, models, checks) and a backfill, on DuckDB
    assert outputs.run("nightly").returncode == 0
    assert outputs.run("backfill", "--provider", "all", "--start", (last - dt.timedelta(days=5)).isoformat(),
                       "--end", (last - dt.timedelta(days=4)).isoformat()).returncode == 0

    # a night where every provider fails: a wrong key, a vendor quoting the key it refused, and
    # bodies quoting the key in a field
    wrong = {config.env_name("rafay", "api_key"): WRONG_KEY}
    echo = sims["adverity"].inject(Fault(status=401, body={"detail": f"Invalid token {KEYS['adverity']}."}, times=FOREVER))
    quoted = [
        sims["bronto"].inject(Fault(kind="mutate", times=FOREVER, mutate=lambda body: walk(
            body, lambda obj: {**obj, "value": KEYS["bronto"]} if "@timestamp" in obj else obj))),
        sims["neon"].inject(Fault(kind="mutate", times=FOREVER, mutate=lambda body: walk(
            body, lambda obj: {**obj, "value": KEYS["neon"]} if "metric_name" in obj else obj))),
    ]
    done = outputs.run("nightly", env=wrong)
    assert done.returncode == config.EXIT_FAILED and echo.served and all(fault.served for fault in quoted)
    assert len([line for line in done.stdout.splitlines() if line.startswith("FAILED ")]) == len(PROVIDER_NAMES), done.stdout
    assert "Invalid token ***." in done.stdout, done.stdout
    for sim in sims.values():
        sim.clear_faults()

    # Postgres with a password in the URL; then a Postgres that is not there
    pg = {"DESTINATION": "postgres", "DESTINATION__POSTGRES__CREDENTIALS": with_password(postgres_url)}
    assert outputs.run("nightly", env=pg).returncode == 0
    assert outputs.run("status", env=pg).returncode == 0
    down = dict(pg, DESTINATION__POSTGRES__CREDENTIALS=with_password(postgres_url, port=closed_port()))
    assert outputs.run("nightly", env=down).returncode == config.EXIT_CONFIG

    leaks = [f"output of run {i // 2 + 1}" for i, text in enumerate(outputs.captured) if MARK in text]
    leaks += leaks_in_files(tmp_path)
    leaks += [f"duckdb {where}" for where in leaks_in_warehouse("duckdb")]
    leaks += [f"postgres {where}" for where in leaks_in_warehouse("postgres")]
    assert not leaks, f"a secret appears in: {leaks}"
    # the search itself works: the log file holds what the runs printed
    assert outputs.log_file.stat().st_size > 0 and (Path(os.environ["DLT_DATA_DIR"]) / "pipelines").exists()


# -- masking: whole tokens in known positions ----------------------------------------------------
@pytest.mark.parametrize("password", ["x", "5432"])
def test_a_short_password_is_masked_in_the_url_and_leaves_the_rest_of_the_line_alone(password, postgres_url):
    """A password `x` must not turn "exist" into "e***ist", nor `5432` hide the port."""
    database = f"no_such_db_{secrets.token_hex(3)}"
    parts = urlsplit(postgres_url)
    url = parts._replace(netloc=f"{parts.username}:{password}@{parts.hostname}:{parts.port or 5432}",
                         path=f"/{database}").geturl()
    with pytest.raises(config.ConfigError) as raised:
        config.check_postgres(url)
    message = str(raised.value)
    assert f"cannot connect to {parts.scheme}://{parts.username}:***@{parts.hostname}:{parts.port or 5432}/{database} " in message
    assert f'port {parts.port or 5432} failed' in message and f'database "{database}" does not exist' in message, message


def test_a_key_is_masked_as_a_whole_token_wherever_it_stands_and_nowhere_else():
    key = f"k{secrets.token_hex(2)}"  # short, as no real key is: masked all the same
    ProviderClient("toy", "http://127.0.0.1:9", {"Toy-Key": key}, key_setting="SOURCES__TOY__API_KEY")
    quoted = f"Invalid token {key}. sent Toy-Key: {key}, {{'toy-key': '{key}'}}, ?key={key}&page=2"
    assert str(ProviderError("toy", quoted)) == "toy: Invalid token ***. sent Toy-Key: ***, {'toy-key': '***'}, ?key=***&page=2"
    around = f"{key}0 0{key} {key}_1 x-{key}"  # longer tokens that merely contain the key
    assert str(ProviderError("toy", around)) == f"toy: {around}"


def test_a_credential_header_is_masked_by_its_name_whatever_its_value():
    text = "headers {'Authorization': 'Bearer abc', 'Accept': 'application/json'} Authorization: Token def password=ghi"
    assert redact(text) == "headers {'Authorization': 'Bearer ***', 'Accept': 'application/json'} Authorization: Token *** password=***"


def test_a_url_is_never_printed_with_its_password(monkeypatch):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    base_url = f"http://user:pw-{secrets.token_hex(3)}@127.0.0.1:{closed_port()}"  # registered nowhere
    api = ProviderClient("toy", base_url, {"Toy-Key": f"{MARK}-toy"}, key_setting="SOURCES__TOY__API_KEY")
    with pytest.raises(ProviderError) as raised:
        api.get_json("/v1/usage", {})
    assert f"cannot reach http://user:***@127.0.0.1:{urlsplit(base_url).port} after 1 attempts" in str(raised.value)
    assert redact("postgresql://me:p@ss:w@db.example.com:5432/usage at 5432") == (
        "postgresql://me:***@db.example.com:5432/usage at 5432")


# -- .dlt/secrets.toml readable by others ------------------------------------------------------------
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600])
def test_a_secrets_toml_others_may_read_is_warned_about_once_and_the_run_goes_on(mode, tmp_path, api_key):
    import duckdb

    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    secrets_toml = project / ".dlt" / "secrets.toml"
    secrets_toml.write_text(f'[sources.neon]\napi_key = "{api_key}"\n')
    secrets_toml.chmod(mode)
    duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"]).close()  # a warehouse, empty
    done = subprocess.run([sys.executable, "-m", "pipelines", "status"], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    assert "no runs recorded" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "secrets.toml" in line]
    if mode == 0o600:
        assert warnings == []
    else:
        (warning,) = warnings
        assert " WARNING " in warning and warning.endswith(f"(mode {mode:04o}); run chmod 600 {secrets_toml}"), warning
    assert api_key not in done.stdout + done.stderr


def test_the_secrets_toml_warning_comes_once_per_run(tmp_path, monkeypatch, caplog):
    import dlt
    from dlt.common.configuration.providers.toml import SecretsTomlProvider

    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text('[sources.neon]\napi_key = "k"\n')
    (tmp_path / ".dlt" / "secrets.toml").chmod(0o644)
    read = SecretsTomlProvider(settings_dir=str(tmp_path / ".dlt"))
    monkeypatch.setattr(type(dlt.secrets), "config_providers", property(lambda accessor: [read]))
    config.warn_if_secrets_readable.cache_clear()
    try:
        for _ in range(3):
            config.destination("duckdb")
    finally:
        config.warn_if_secrets_readable.cache_clear()
    assert [r.getMessage() for r in caplog.records if "chmod 600" in r.getMessage()] == [
        f"{tmp_path / '.dlt' / 'secrets.toml'} is open to users other than its owner (mode 0644); "
        f"run chmod 600 {tmp_path / '.dlt' / 'secrets.toml'}"
    ]
