"""Several accounts per provider: two Neon organizations and two Rafay consoles in one night.

Each account is its own simulator tenant (its own key and data). Settings an account leaves out
fall back to the provider level (dlt's section lookup); each account has its own pipeline,
cursor and raw dataset; one failing account does not stop the others.
"""

from __future__ import annotations

import datetime as dt
from typing import Dict, List

import pytest

from pipelines import config
from pipelines.__main__ import main
from pipelines.nightly import run_nightly
from simulators.base import Simulator, Tenants
from tests.conftest import assert_facts_equal, query, yesterday
from tests.providers import case, truth_rows
from tests.test_faults import SMALL

ACCOUNTS = {"neon": ("eu", "us"), "rafay": ("emea", "apac")}
SHARED_HOST = {"neon"}
"""Neon serves every organization from one host (each key sees its own); Rafay has a console
per customer and region."""
START = yesterday() - dt.timedelta(days=3)


@pytest.fixture
def tenants(monkeypatch, api_key):
    """Two tenants per provider, each an account: keys, org ids and data of their own."""
    started: Dict[str, Simulator] = {}
    hosts = []
    for provider, names in ACCOUNTS.items():
        monkeypatch.setenv(f"SOURCES__{provider.upper()}__ACCOUNTS", ",".join(names))
        # provider-level settings every account falls back to
        monkeypatch.setenv(f"SOURCES__{provider.upper()}__START_DATE", START.isoformat())
        sims = []
        for seed, account in enumerate(names, start=21):
            extra = {"org_id": f"org-{account}-{seed}"} if provider == "neon" else {}
            sims.append(case(provider).make_simulator(api_key=f"{api_key}-{account}", seed=seed,
                                                      **{**SMALL.get(provider, {}), **extra}))
            started[f"{provider}.{account}"] = sims[-1]
        if provider in SHARED_HOST:  # two organizations of one API host, told apart by their keys
            hosts.append(Tenants(*sims).start())
        else:  # a console per region: a host each
            hosts.extend(sim.start() for sim in sims)
        for account, sim in zip(names, sims):
            for name, value in sim.source_env().items():
                monkeypatch.setenv(name.replace(f"SOURCES__{provider.upper()}__", f"SOURCES__{provider.upper()}__{account.upper()}__"), value)
    yield started
    for host in hosts:
        host.stop()


def fct(destination: str, provider: str) -> Dict[tuple, float]:
    rows = query(destination, "select usage_date, account_id, resource_type, resource_id, metric, quantity "
                              f"from analytics.fct_daily_usage where provider = '{provider}'")
    out = {tuple(row[:5]): float(row[5]) for row in rows}
    assert len(out) == len(rows), "two rows share the fact grain"
    return out


def truth_of(tenants: Dict[str, Simulator], labels: List[str]) -> Dict[tuple, float]:
    merged: Dict[tuple, float] = {}
    for label in labels:
        rows = truth_rows(tenants[label], START, yesterday())
        assert not set(rows) & set(merged), "the two tenants' truths overlap"
        merged.update(rows)
    return merged


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_two_neon_orgs_and_two_rafay_consoles_equal_both_truths(tenants, destination, request, monkeypatch):
    if destination == "postgres":
        request.getfixturevalue("postgres_url")
    monkeypatch.setenv("DESTINATION", destination)
    report = run_nightly(["neon", "rafay"])
    assert report.exit_code == config.EXIT_OK, report.lines()
    assert [r.provider for r in report.results] == ["neon.eu", "neon.us", "rafay.emea", "rafay.apac"]
    assert tenants["neon.eu"].base_url == tenants["neon.us"].base_url, "the Neon orgs share one host"
    for provider, names in ACCOUNTS.items():
        labels = [f"{provider}.{name}" for name in names]
        assert_facts_equal(fct(destination, provider), truth_of(tenants, labels))
        for label in labels:  # each tenant was asked with its own key, and only for its own data
            assert tenants[label].requests and all(r.authorized for r in tenants[label].requests)
    datasets = {schema for (schema,) in query(destination, "select distinct table_schema from information_schema.tables "
                                                           "where table_schema like 'raw_%'")}
    assert {"raw_neon_eu", "raw_neon_us", "raw_rafay_emea", "raw_rafay_apac"} <= datasets
    accounts = set(query(destination, "select distinct provider, account_id, status from analytics.usage_completeness"))
    assert accounts == {("neon", "eu", "loaded"), ("neon", "us", "loaded"), ("rafay", "emea", "loaded"), ("rafay", "apac", "loaded")}
    runs = set(query(destination, "select provider, account, status from analytics.load_runs"))
    assert runs == {("neon", "eu", "ok"), ("neon", "us", "ok"), ("rafay", "emea", "ok"), ("rafay", "apac", "ok")}

    # a second night reads each account from its own cursor: nothing new, nothing doubled
    again = run_nightly(["neon", "rafay"])
    assert again.exit_code == config.EXIT_OK, again.lines()
    assert_facts_equal(fct(destination, "neon"), truth_of(tenants, ["neon.eu", "neon.us"]))


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_a_wrong_key_on_one_account_fails_it_by_name_and_the_other_loads(tenants, destination, request, monkeypatch, capsys):
    if destination == "postgres":
        request.getfixturevalue("postgres_url")
    monkeypatch.setenv("SOURCES__NEON__US__API_KEY", "not-the-key")
    code = main(["nightly", "--providers", "neon", "--destination", destination])
    out = capsys.readouterr().out
    assert code == config.EXIT_FAILED
    failed = [line for line in out.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 1 and failed[0].startswith("FAILED neon.us: "), out
    assert "not-the-key" not in out
    assert_facts_equal(fct(destination, "neon"), truth_of(tenants, ["neon.eu"]))
    assert "completeness: neon (account us)" in out


def test_one_account_runs_alone_and_unknown_accounts_are_refused(tenants, capsys):
    assert main(["nightly", "--providers", "neon.eu"]) == config.EXIT_OK
    assert "neon.eu " in capsys.readouterr().out
    assert set(query("duckdb", "select distinct account from analytics.load_runs")) == {("eu",)}
    assert main(["nightly", "--providers", "neon.asia"]) == config.EXIT_CONFIG
    assert "neon has no account 'asia'; SOURCES__NEON__ACCOUNTS lists eu, us" in capsys.readouterr().err
    assert main(["backfill", "--provider", "rafay.apac", "--start", START.isoformat(), "--end", START.isoformat()]) == config.EXIT_OK
    assert set(query("duckdb", "select distinct provider, account from analytics.load_runs where command = 'backfill'")) == {("rafay", "apac")}


def test_an_account_without_its_key_is_a_configuration_error(tenants, monkeypatch, capsys):
    monkeypatch.delenv("SOURCES__RAFAY__APAC__API_KEY")
    assert main(["nightly"]) == config.EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert err == "error: rafay.apac: SOURCES__RAFAY__APAC__API_KEY is missing or empty; set it in the environment or .dlt/secrets.toml", err
    monkeypatch.setenv("SOURCES__RAFAY__ACCOUNTS", "emea,Asia Pacific")
    assert main(["nightly"]) == config.EXIT_CONFIG
    assert "SOURCES__RAFAY__ACCOUNTS: 'asia pacific' is not an account name" in capsys.readouterr().err


def test_accounts_of_one_provider_load_side_by_side_each_within_its_own_limit(tenants):
    """The accounts' limits are their own (Neon's rate is per account), so their loads overlap
    in time rather than queue behind each other; each stays under its own limit, and each
    account's run record counts the requests its own tenant answered."""
    for sim in tenants.values():
        sim.latency_s = 0.1  # every answer takes a while, as a real API's does
    report = run_nightly(["neon", "rafay"])
    assert report.exit_code == config.EXIT_OK, report.lines()
    for provider, (first, second) in ACCOUNTS.items():
        one, other = tenants[f"{provider}.{first}"].requests, tenants[f"{provider}.{second}"].requests
        assert len(one) >= 2 and len(other) >= 2
        # one after the other, the second account's first request would come after the first's last
        assert max(one[0].at, other[0].at) < min(one[-1].at, other[-1].at), (
            f"{provider}'s accounts loaded one after the other")
    assert tenants["neon.eu"].throttled == tenants["neon.us"].throttled == 0, "an account went over its rate"
    recorded = {(provider, account): n for provider, account, n in
                query("duckdb", "select provider, account, requests from analytics.load_runs")}
    assert recorded == {tuple(label.split(".")): len(sim.requests) for label, sim in tenants.items()}
