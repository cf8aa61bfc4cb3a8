"""Fixtures: an isolated warehouse per test, simulators over real HTTP, a real Postgres database."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import uuid
from collections import defaultdict
from typing import Any, Dict, Iterator, List, Optional

import pytest

from tests.providers import PROVIDER_NAMES, ProviderCase, case

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch) -> Iterator[Dict[str, str]]:
    """Each test gets its own dlt working dir and DuckDB file, and no provider settings."""
    for name in list(os.environ):
        if name.startswith(("SOURCES__", "DESTINATION__")) or name in ("DESTINATION", "USAGE_NOW"):
            monkeypatch.delenv(name, raising=False)
    env = {
        "DLT_DATA_DIR": str(tmp_path / "dlt"),
        "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "warehouse.duckdb"),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env


def _pg_connect(url: str):
    import psycopg2

    return psycopg2.connect(url, connect_timeout=3)


def postgres_available() -> bool:
    try:
        _pg_connect(PG_ADMIN_URL).close()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture
def postgres_url(monkeypatch) -> Iterator[str]:
    """A fresh database on the local server, dropped afterwards; wired as the postgres destination."""
    if not postgres_available():
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"Postgres is required (REQUIRE_POSTGRES=1) but {PG_ADMIN_URL} is unreachable")
        pytest.skip("Postgres not reachable")
    name = f"usage_test_{uuid.uuid4().hex[:10]}"
    admin = _pg_connect(PG_ADMIN_URL)
    admin.autocommit = True
    admin.cursor().execute(f'create database "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
    try:
        yield url
    finally:
        admin.cursor().execute(f'drop database if exists "{name}" with (force)')
        admin.close()


@pytest.fixture(params=["duckdb", "postgres"])
def destination(request) -> str:
    """Both warehouses: DuckDB always, Postgres on the local server."""
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")
    return request.param


@pytest.fixture(params=PROVIDER_NAMES)
def provider_case(request) -> ProviderCase:
    return case(request.param)


@pytest.fixture
def api_key() -> str:
    return f"test-key-{secrets.token_hex(6)}"


@pytest.fixture
def simulator(provider_case, api_key, monkeypatch):
    """The case's simulator, started, with the source pointed at it."""
    sim = provider_case.make_simulator(api_key=api_key, seed=11)
    sim.start()
    for name, value in provider_case.env(sim).items():
        monkeypatch.setenv(name, value)
    yield sim
    sim.stop()


def query(destination: str, sql: str) -> List[tuple]:
    """Run SQL on the test's warehouse (read-only on DuckDB)."""
    if destination == "duckdb":
        import duckdb

        with duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"], read_only=True) as con:
            return con.execute(sql).fetchall()
    con = _pg_connect(os.environ["DESTINATION__POSTGRES__CREDENTIALS"])
    try:
        with con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        con.close()


def execute(destination: str, statement: str) -> None:
    """Run a writing statement on the test's warehouse, as someone with a SQL client would."""
    if destination == "duckdb":
        import duckdb

        with duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"]) as con:
            con.execute(statement)
        return
    with _pg_connect(os.environ["DESTINATION__POSTGRES__CREDENTIALS"]) as con, con.cursor() as cur:
        cur.execute(statement)
    con.close()


def yesterday() -> dt.date:
    from sources.windows import last_complete_day

    return last_complete_day()


def facts(destination: str, provider_case: ProviderCase) -> Dict[tuple, float]:
    rows = query(destination, provider_case.facts_sql.format(dataset=f"raw_{provider_case.name}"))
    out: Dict[tuple, float] = {}
    for usage_date, account_id, resource_type, resource_id, metric, quantity in rows:
        key = (usage_date, str(account_id), resource_type, str(resource_id), metric)
        assert key not in out, f"duplicate fact {key}"
        out[key] = float(quantity)
    return out


def assert_facts_equal(actual: Dict[tuple, Any], expected: Dict[tuple, Any], tolerance: float = 0.0) -> None:
    missing = sorted(set(expected) - set(actual))[:5]
    extra = sorted(set(actual) - set(expected))[:5]
    assert not missing, f"missing facts, e.g. {missing}"
    assert not extra, f"unexpected facts, e.g. {extra}"
    wrong = [
        (key, actual[key], expected[key])
        for key in expected
        if abs(actual[key] - expected[key]) > max(tolerance * abs(expected[key]), 1e-6)
    ]
    assert not wrong, f"{len(wrong)} figures differ, e.g. {wrong[:5]}"


# -- the fault-injection report ---------------------------------------------------------------------
FAULT_PROPERTY = "fault_injected"
FAULT_TEST = "fault_test"
"""Set on every test that reports faults, so that one failing is listed under the table."""
GROUND_TRUTH = "ended equal to the ground truth"


@pytest.fixture
def fault_report(record_property):
    """`fault_report(kind, injected, outcome=None)`: called by a fault test once the run it
    faulted ended as it must: equal to the simulators' ground truth (with any healthy rerun), or
    with the expected exit, which `outcome` says (e.g. "exit 143, load_runs interrupted");
    summed up after the session."""
    record_property(FAULT_TEST, True)

    def record(kind: str, injected: int, outcome: Optional[str] = None) -> None:
        assert injected > 0, f"no {kind} fault was served: the test injected nothing"
        record_property(FAULT_PROPERTY, (kind, injected, outcome or GROUND_TRUTH))

    return record


LONGEST_FIRST = (
    "test_soak.py", "test_soak_postgres.py", "test_cli.py", "test_signals.py", "test_pricing.py",
    "test_no_silent_loss.py", "test_faults_cli.py", "test_messages.py", "test_secrets.py",
    "test_analyst_locks.py", "test_focus.py", "test_readers.py", "test_alerts.py", "test_anomalies.py",
)
"""Files by their share of the suite's time, longest first (`pytest --durations`). `make test`
hands whole files to its workers in collection order (`--dist loadfile --no-loadscope-reorder`):
with the long ones first, the workers end together instead of one running a soak alone."""


def pytest_collection_modifyitems(items) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_terminal_summary(terminalreporter) -> None:
    """One line per fault kind: faults served and runs that ended equal to the ground truth (or
    with the exit expected of them); then each soak run's nights."""
    _fault_summary(terminalreporter)
    soaks = [
        value
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        for name, value in getattr(report, "user_properties", ())
        if name == "soak"
    ]
    if soaks:
        terminalreporter.section("soak")
        for summary, *nights in soaks:
            terminalreporter.write_line(summary)
            for line in nights:
                terminalreporter.write_line("  " + line)


def _fault_summary(terminalreporter) -> None:
    kinds: Dict[tuple, List[int]] = defaultdict(lambda: [0, 0])
    failed = []
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call" and outcome == "passed":
                continue
            faulting = "test_faults" in report.nodeid or (FAULT_TEST, True) in getattr(report, "user_properties", ())
            if outcome != "passed" and faulting and report.nodeid not in failed:
                failed.append(report.nodeid)
            for name, value in getattr(report, "user_properties", ()):
                if name == FAULT_PROPERTY and outcome == "passed":
                    kind, injected, ended = value
                    kinds[kind, ended][0] += injected
                    kinds[kind, ended][1] += 1
    if not kinds and not failed:
        return
    terminalreporter.section("fault injection")
    width = max((len(kind) for kind, _ in kinds), default=10)
    for (kind, ended), (injected, runs) in sorted(kinds.items()):
        said = ended if ended == GROUND_TRUTH else f"ended as expected: {ended}"
        terminalreporter.write_line(f"{kind:<{width}}  {injected:>4} injected over {runs:>2} faulted run(s); every run {said}")
    for nodeid in failed:
        terminalreporter.write_line(f"FAILED {nodeid}")
