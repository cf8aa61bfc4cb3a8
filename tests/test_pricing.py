"""From usage to cost, against the simulators' truth: the rate card (a price that changes in the
window, an account's own price), ownership rules with overlapping globs, FX rates, budgets and
their crossings, the cost queries of docs/queries/, and every malformed settings file refused
(exit 2, one line naming file and line, the warehouse as it was), on DuckDB and on Postgres.

One warehouse per engine is loaded once from all four simulators with the clock pinned, and each
test builds the models over it with its own files."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

import sources
from pipelines import config, models, pricing
from tests.providers import case

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 11, 6, 30, tzinfo=UTC)
START = dt.date(2026, 2, 26)
LAST = dt.date(2026, 3, 10)
CHANGE = dt.date(2026, 3, 4)
"""The general price of every metric changes on this day (the card's rows meet the day before)."""
OVERRIDE = (dt.date(2026, 3, 1), dt.date(2026, 3, 7))
"""The days one account of each provider has a price of its own."""
ROLLUPS = {"compute_profile", "service_profile"}
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")


# -- the warehouses -----------------------------------------------------------------------------
class Loaded:
    def __init__(self, engine: str, env: Dict[str, str], sims: Dict[str, object], directory: Path):
        self.engine, self.env, self.sims, self.directory = engine, env, sims, directory

    def truth(self) -> List[dict]:
        rows = []
        for provider, sim in self.sims.items():
            for row in sim.truth(START, LAST):
                if row["resource_type"] not in ROLLUPS:
                    rows.append({**row, "provider": provider, "account_id": str(row["account_id"]),
                                 "resource_id": str(row["resource_id"]), "quantity": float(row["quantity"])})
        return rows


def _postgres_database(engine_dbs: list) -> str:
    import psycopg2

    try:
        admin = psycopg2.connect(PG_ADMIN_URL, connect_timeout=3)
    except Exception:  # noqa: BLE001
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"Postgres is required (REQUIRE_POSTGRES=1) but {PG_ADMIN_URL} is unreachable")
        pytest.skip("Postgres not reachable")
    admin.autocommit = True
    name = f"usage_test_{uuid.uuid4().hex[:10]}"
    admin.cursor().execute(f'create database "{name}"')
    engine_dbs.append((admin, name))
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def loaded(request, tmp_path_factory):
    """All four providers loaded from START through LAST, the clock pinned at NOW."""
    from simulators import start_all

    directory = tmp_path_factory.mktemp(f"pricing-{request.param}")
    dbs: list = []
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOURCES__", "DESTINATION", "PRICING__")) and k not in ("USAGE_NOW", "DLT_DATA_DIR")}
    env.update({"USAGE_NOW": NOW.isoformat(), "DLT_DATA_DIR": str(directory / "dlt"), "DESTINATION": request.param,
                "DESTINATION__DUCKDB__CREDENTIALS": str(directory / "warehouse.duckdb"),
                "RUNTIME__DLTHUB_TELEMETRY": "false"})
    if request.param == "postgres":
        env["DESTINATION__POSTGRES__CREDENTIALS"] = _postgres_database(dbs)
    sims = start_all({provider: f"pricing-{provider}-0123456789" for provider in sources.names()}, seed=5,
                     clock=lambda: NOW)
    try:
        for provider, sim in sims.items():
            env.update(sim.source_env())
            env[f"SOURCES__{provider.upper()}__START_DATE"] = START.isoformat()
        done = subprocess.run([sys.executable, "-m", "pipelines", "nightly"], cwd=ROOT, capture_output=True,
                              text=True, env=env, timeout=900)
    finally:
        for sim in sims.values():
            sim.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    yield Loaded(request.param, env, sims, directory)
    for admin, name in dbs:
        admin.cursor().execute(f'drop database if exists "{name}" with (force)')
        admin.close()


@pytest.fixture
def warehouse(loaded, monkeypatch, tmp_path):
    """The loaded warehouse as the test's destination, with no pricing files set."""
    for name in list(os.environ):
        if name.startswith("PRICING__"):
            monkeypatch.delenv(name)
    for name in list(os.environ):
        if name.startswith(("SOURCES__", "DESTINATION")):
            monkeypatch.delenv(name)
    for name, value in loaded.env.items():
        if name.startswith(("SOURCES__", "DESTINATION", "USAGE_NOW", "DLT_DATA_DIR")):
            monkeypatch.setenv(name, value)
    return loaded


def dest():
    return config.destination(os.environ["DESTINATION"])


def query(sql: str) -> List[tuple]:
    from pipelines import warehouse as wh

    with wh.sql_client(dest()) as client:
        return [tuple(row) for row in client.execute_sql(sql) or []]


def write(path: Path, lines: List[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def build() -> models.BuildReport:
    report = models.build(dest())
    assert not report.errors, report.errors
    return report


# -- the test's own rate card -------------------------------------------------------------------
def pricing_unit(provider: str, metric: str) -> Tuple[str, float]:
    """The largest pricing unit of the metric's unit (the fact's own when it has no other)."""
    units = pricing.pricing_units(pricing.unit_of(provider, metric))
    name = max(units, key=lambda u: (units[u], u))
    return name, float(units[name])


def price(provider: str, metric: str, n: int) -> float:
    return round(0.013 * (1 + (sum(map(ord, provider + metric)) + 7 * n) % 97), 6)


def card_for(truth: List[dict], tmp_path: Path) -> Tuple[Path, Dict]:
    """A card pricing every metric of the truth: a general price until CHANGE - 1, another from
    CHANGE on, and one account per provider with its own price on the OVERRIDE days; in USD,
    Adverity's in EUR. Returns the path and {(provider, metric): (unit, factor, prices)}."""
    metrics = sorted({(row["provider"], row["metric"]) for row in truth})
    special = {provider: sorted({row["account_id"] for row in truth if row["provider"] == provider})[0]
               for provider, _ in metrics}
    lines = ["provider,metric,pricing_unit,unit_price,currency,effective_from,effective_to,account_id"]
    plan = {}
    for provider, metric in metrics:
        unit, factor = pricing_unit(provider, metric)
        currency = "EUR" if provider == "adverity" else "USD"
        before, after, own = price(provider, metric, 0), price(provider, metric, 1), price(provider, metric, 2)
        lines += [f"{provider},{metric},{unit},{before},{currency},2026-01-01,{CHANGE - dt.timedelta(days=1)},",
                  f"{provider},{metric},{unit},{after},{currency},{CHANGE},,",
                  f"{provider},{metric},{unit},{own},{currency},{OVERRIDE[0]},{OVERRIDE[1]},{special[provider]}"]
        plan[(provider, metric)] = (unit, factor, before, after, own, special[provider], currency)
    return write(tmp_path / "rate_card.csv", lines), plan


def expected_cost(row: dict, plan: Dict) -> float:
    unit, factor, before, after, own, special, _ = plan[(row["provider"], row["metric"])]
    day = row["usage_date"]
    if row["account_id"] == special and OVERRIDE[0] <= day <= OVERRIDE[1]:
        unit_price = own
    else:
        unit_price = before if day < CHANGE else after
    return row["quantity"] / factor * unit_price


def tolerance(provider: str) -> float:
    return max(case(provider).tolerance, 1e-9) if provider == "bronto" else 1e-12


EUR_RATES = {"2026-02": 1.08, "2026-03": 1.09, "2026-03-05": 1.1}


def priced_warehouse(warehouse, monkeypatch, tmp_path, owners_lines=None, fx=True, budgets_lines=None):
    truth = warehouse.truth()
    path, plan = card_for(truth, tmp_path)
    monkeypatch.setenv("PRICING__RATE_CARD", str(path))
    if fx:
        monkeypatch.setenv("PRICING__FX_RATES", str(write(tmp_path / "fx.csv", ["date,currency,rate"] + [
            f"{day},EUR,{rate}" for day, rate in EUR_RATES.items()])))
    if owners_lines is not None:
        monkeypatch.setenv("PRICING__OWNERS", str(write(tmp_path / "owners.csv", owners_lines)))
    if budgets_lines is not None:
        monkeypatch.setenv("PRICING__BUDGETS", str(write(tmp_path / "budgets.csv", budgets_lines)))
    build()
    return truth, plan


def eur_rate(day: dt.date) -> float:
    return EUR_RATES.get(day.isoformat(), EUR_RATES[day.strftime("%Y-%m")])


# -- cost ---------------------------------------------------------------------------------------
def test_cost_per_provider_and_metric_is_the_truth_times_each_days_price(warehouse, monkeypatch, tmp_path):
    truth, plan = priced_warehouse(warehouse, monkeypatch, tmp_path)
    expected, reporting = defaultdict(float), defaultdict(float)
    for row in truth:
        cost = expected_cost(row, plan)
        expected[(row["provider"], row["metric"])] += cost
        reporting[row["provider"]] += cost * (eur_rate(row["usage_date"]) if row["provider"] == "adverity" else 1.0)
    actual = {(p, m): (float(c), n) for p, m, c, n in query(
        "select provider, metric, sum(cost), count(*) - count(cost) from analytics.fct_daily_cost group by provider, metric")}
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert actual[key][1] == 0, f"{key}: unpriced rows"
        assert actual[key][0] == pytest.approx(value, rel=tolerance(key[0]), abs=1e-12), key
    for provider, value in reporting.items():
        (total, currency), = query(f"select sum(reporting_cost), max(reporting_currency) from analytics.fct_daily_cost "
                                   f"where provider = '{provider}'")
        assert currency == "USD" and float(total) == pytest.approx(value, rel=max(tolerance(provider), 1e-12))
    # the price of the day of each row, its unit and the quantity in it
    rows = query("select provider, metric, account_id, usage_date, pricing_unit, pricing_quantity, quantity, unit_price, "
                 "currency from analytics.fct_daily_cost")
    for provider, metric, account_id, day, unit, quantity_in_unit, quantity, unit_price, currency in rows:
        unit_, factor, before, after, own, special, currency_ = plan[(provider, metric)]
        want = own if account_id == special and OVERRIDE[0] <= day <= OVERRIDE[1] else before if day < CHANGE else after
        assert (unit, currency, float(unit_price)) == (unit_, currency_, want)
        assert float(quantity_in_unit) == float(quantity) / factor
    assert not models.test_all(dest())
    assert not pricing.warnings(dest())


def test_a_changed_card_reprices_the_whole_history_with_make_models(warehouse, monkeypatch, tmp_path):
    truth, plan = priced_warehouse(warehouse, monkeypatch, tmp_path)
    (before,), = query("select sum(cost) from analytics.fct_daily_cost")
    text = (tmp_path / "rate_card.csv").read_text().splitlines()
    doubled = [text[0]] + [re.sub(r"^([^,]*,[^,]*,[^,]*,)([^,]*)", lambda m: m.group(1) + repr(float(m.group(2)) * 2), line)
                           for line in text[1:]]
    write(tmp_path / "rate_card.csv", doubled)
    done = subprocess.run([sys.executable, "-m", "pipelines", "models"], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (after, first), = query("select sum(cost), min(usage_date) from analytics.fct_daily_cost")
    assert first == START
    assert float(after) == pytest.approx(2 * float(before), rel=1e-9)


def test_without_a_card_nothing_is_priced_and_check_warns(warehouse):
    build()
    (rows, priced), = query("select count(*), count(cost) from analytics.fct_daily_cost")
    assert rows > 0 and priced == 0
    assert not models.test_all(dest()), "unpriced rows are a warning, not a failure"
    lines = pricing.warnings(dest())
    assert len(lines) == 1 and lines[0].startswith("warning unpriced_usage:"), lines
    assert query("select count(*) from analytics.focus") == [(0,)]


def test_a_missing_fx_rate_is_reported_never_guessed(warehouse, monkeypatch, tmp_path):
    priced_warehouse(warehouse, monkeypatch, tmp_path, fx=False)
    (missing, adverity), = query("select count(*) - count(reporting_cost), count(*) from analytics.fct_daily_cost "
                                 "where provider = 'adverity'")
    assert missing == adverity > 0
    assert query("select count(*) from analytics.fct_daily_cost where provider <> 'adverity' "
                 "and (reporting_cost is null or reporting_cost <> cost)") == [(0,)]
    lines = pricing.warnings(dest())
    assert [line.split(":")[0] for line in lines] == ["warning cost_without_fx_rate"] and "EUR" in lines[0]


# -- ownership ----------------------------------------------------------------------------------
def test_ownership_most_specific_rule_wins_over_overlapping_globs(warehouse, monkeypatch, tmp_path):
    resources = sorted({(r["provider"], r["account_id"], r["resource_type"], r["resource_id"]) for r in warehouse.truth()})
    rafay = [r for r in resources if r[0] == "rafay"]
    one = rafay[0]
    prefix = one[3][:2]
    lines = [
        "provider,account_id,resource_type,resource_id,team",
        "*,*,*,*,everyone",                                   # the least specific
        "rafay,*,*,*,platform",
        f"rafay,*,*,{prefix}*,platform-prefix",               # a glob over the resources of rafay
        f"rafay,*,{one[2]},{prefix}*,platform-typed",          # the same glob, with the type exact
        f"rafay,{one[1]},{one[2]},{one[3]},the-one",            # exact: wins over every glob
        "neon,*,project,*,data",
        "neon,*,proj?ct,*,never",                             # a glob where neon's rule is exact
        "bronto,*,log,*,observability",
        "bronto,*,log,*_?*,observability-named",              # more literal characters than `*`
    ]
    priced_warehouse(warehouse, monkeypatch, tmp_path, owners_lines=lines)
    rules = pricing.owners(tmp_path / "owners.csv")
    teams = {(p, a, t, r): team for p, a, t, r, team in query(
        "select distinct provider, account_id, resource_type, resource_id, team from analytics.fct_daily_cost")}
    assert set(teams) == set(resources)
    for resource in resources:
        assert teams[resource] == pricing.team_of(rules, *resource), resource
    assert teams[one] == "the-one"
    assert {teams[r] for r in resources if r[0] == "neon" and r[2] == "project"} == {"data"}
    assert {teams[r] for r in resources if r[0] == "adverity"} == {"everyone"}
    typed = [r for r in rafay if r != one and r[2] == one[2] and r[3].startswith(prefix)]
    assert all(teams[r] == "platform-typed" for r in typed)
    # nothing matched: unallocated
    write(tmp_path / "owners.csv", lines[:1] + ["rafay,*,*,*,platform"])
    build()
    assert {team for (team,) in query("select distinct team from analytics.fct_daily_cost where provider <> 'rafay'")} \
        == {"unallocated"}


# -- budgets ------------------------------------------------------------------------------------
def test_budget_status_paces_the_month_and_names_each_crossing_once(warehouse, monkeypatch, tmp_path):
    truth = warehouse.truth()
    _, plan = card_for(truth, tmp_path)
    spend = defaultdict(float)
    for row in truth:
        if row["usage_date"] >= dt.date(2026, 3, 1):
            cost = expected_cost(row, plan) * (eur_rate(row["usage_date"]) if row["provider"] == "adverity" else 1.0)
            spend["all"] += cost
            spend[f"provider:{row['provider']}"] += cost
    projected = {scope: value / 10 * 31 for scope, value in spend.items()}
    budgets = ["scope,month,amount,currency",
               f"all,2026-03,{projected['all'] * 2},USD",                          # under every threshold
               f"provider:neon,2026-03,{projected['provider:neon'] / 0.9},USD",    # projected at 90 %
               f"provider:rafay,2026-03,{spend['provider:rafay'] * 0.5},USD",      # spent twice the budget
               "team:unallocated,2026-02,1000000,USD"]
    priced_warehouse(warehouse, monkeypatch, tmp_path, budgets_lines=budgets)
    status = {row[0] + " " + str(row[1]): row[2:] for row in query(
        "select scope, month, through_date, days_elapsed, days_in_month, spend_to_date, projected_spend, "
        "percent_of_budget, projected_over_80, actual_over_100 from analytics.budget_status")}
    through, elapsed, days, spent, pace, percent, over_80, over_100 = status["all 2026-03-01"]
    assert (through, elapsed, days) == (LAST, 10, 31)
    assert float(spent) == pytest.approx(spend["all"], rel=1e-9)
    assert float(pace) == pytest.approx(projected["all"], rel=1e-9)
    assert float(percent) == pytest.approx(100 * spend["all"] / (projected["all"] * 2), rel=1e-9)
    assert (over_80, over_100) == (False, False)
    assert status["provider:neon 2026-03-01"][-2:] == (True, False)
    assert status["provider:rafay 2026-03-01"][-2:] == (True, True)
    assert status["team:unallocated 2026-02-01"][:3] == (dt.date(2026, 2, 28), 28, 28)
    crossings = pricing.new_budget_crossings(dest())
    assert sorted((c.scope, c.threshold) for c in crossings) == [
        ("provider:neon", "projected_80"), ("provider:rafay", "actual_100"), ("provider:rafay", "projected_80")]
    assert all(c.text().startswith("budget provider:") for c in crossings)
    build()
    assert pricing.new_budget_crossings(dest()) == [], "a crossing is named once"


# -- malformed files ----------------------------------------------------------------------------
CARD_HEADER = "provider,metric,pricing_unit,unit_price,currency,effective_from,effective_to,account_id"
GOOD_ROW = "neon,compute_unit_seconds,CU-hour,0.16,USD,2026-01-01,,"
MALFORMED = {
    "unknown_provider": ("RATE_CARD", [CARD_HEADER, GOOD_ROW, "heroku,dyno_hours,hour,1,USD,2026-01-01,,"], 3),
    "unknown_metric": ("RATE_CARD", [CARD_HEADER, "neon,cpu_seconds,hour,1,USD,2026-01-01,,"], 2),
    "bad_date": ("RATE_CARD", [CARD_HEADER, "neon,compute_unit_seconds,CU-hour,1,USD,2026-02-30,,"], 2),
    "overlap": ("RATE_CARD", [CARD_HEADER, GOOD_ROW, "neon,compute_unit_seconds,CU-hour,0.2,USD,2026-03-01,,"], 3),
    "negative_price": ("RATE_CARD", [CARD_HEADER, "# a comment", "neon,compute_unit_seconds,CU-hour,-1,USD,2026-01-01,,"], 3),
    "unknown_unit": ("RATE_CARD", [CARD_HEADER, "bronto,search_bytes,PB,1,USD,2026-01-01,,"], 2),
    "bad_currency": ("RATE_CARD", [CARD_HEADER, "neon,compute_unit_seconds,CU-hour,1,usd,2026-01-01,,"], 2),
    "unknown_column": ("RATE_CARD", [CARD_HEADER + ",discount", GOOD_ROW + ",1"], 1),
    "owners_empty_team": ("OWNERS", ["provider,account_id,resource_type,resource_id,team", "neon,*,*,*,"], 2),
    "fx_bad_rate": ("FX_RATES", ["date,currency,rate", "2026-03,EUR,0"], 2),
    "budget_bad_scope": ("BUDGETS", ["scope,month,amount,currency", "department:x,2026-03,10,USD"], 2),
}


def test_every_malformed_file_is_a_configuration_error_naming_file_and_line(warehouse, monkeypatch, tmp_path):
    """Each case of MALFORMED against one priced warehouse: exit 2, one line naming the file and
    its line, and the cost marts and model versions as they were."""
    priced_warehouse(warehouse, monkeypatch, tmp_path)
    costs = ("select provider, metric, sum(cost), count(*) from analytics.fct_daily_cost group by provider, metric "
             "order by provider, metric")
    snapshot = query(costs)
    versions = query("select model, digest from analytics.model_versions order by model")
    wrong = []
    for name, (setting, lines, line) in sorted(MALFORMED.items()):
        path = write(tmp_path / f"{name}.csv", lines)
        with monkeypatch.context() as case:
            case.setenv(f"PRICING__{setting}", str(path))
            done = subprocess.run([sys.executable, "-m", "pipelines", "models"], cwd=ROOT, capture_output=True,
                                  text=True, env=dict(os.environ), timeout=300)
        errors = done.stderr.strip().splitlines()
        if done.returncode != 2 or len(errors) != 1 or f"{path}, line {line}:" not in errors[0]:
            wrong.append(f"{name}: exit {done.returncode}: {done.stdout}{done.stderr}")
        elif query(costs) != snapshot or query("select model, digest from analytics.model_versions order by model") != versions:
            wrong.append(f"{name}: the warehouse changed")
    assert not wrong, "\n".join(wrong)


def test_units_vocabulary_converts_exactly():
    assert pricing.pricing_units("cu_seconds")["CU-hour"] == 3600
    assert pricing.pricing_units("bytes") == {"bytes": 1, "GB": 10 ** 9, "GiB": 2 ** 30, "TB": 10 ** 12, "TiB": 2 ** 40}
    assert pricing.pricing_units("byte_months")["GB-month"] == 10 ** 9
    assert pricing.pricing_units("rows")["1M rows"] == 10 ** 6
    assert pricing.pricing_units("gpu_hours") == {"gpu_hours": 1, "hour": 1}
    assert pricing.unit_of("rafay", "gpu_hours") == "gpu_hours"
    assert pricing.unit_of("bronto", "ingestion_bytes") == "bytes"
    assert pricing.unit_of("neon", "compute_unit_seconds") == "cu_seconds"
    assert pricing.unit_of("neon", "gpu_hours") is None


def test_the_example_card_is_a_template_that_prices_nothing():
    assert pricing.rate_card(pricing.EXAMPLE_RATE_CARD) == []
    for name in ("owners", "fx_rates", "budgets"):
        assert (ROOT / "pricing" / f"{name}.example.csv").exists()


# -- the example queries (docs/queries/costs/) --------------------------------------------------
QUERIES = ROOT / "docs" / "queries" / "costs"
TODAY = NOW.date()


def as_of(name: str) -> str:
    text = (QUERIES / name).read_text()
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    assert len(re.findall(r"\bcurrent_date\b", code)) == 1 and re.search(r"as_of as \(\s*select current_date as today", code)
    return re.sub(r"(select\s+)current_date(\s+as\s+today)", rf"\1date '{TODAY.isoformat()}'\2", text)


def reporting(row: dict, plan: Dict) -> float:
    return expected_cost(row, plan) * (eur_rate(row["usage_date"]) if row["provider"] == "adverity" else 1.0)


def test_cost_queries_answer_from_the_truth(warehouse, monkeypatch, tmp_path):
    owners = ["provider,account_id,resource_type,resource_id,team", "rafay,*,*,*,platform", "neon,*,*,*,data"]
    truth = warehouse.truth()
    _, plan = card_for(truth, tmp_path)
    budgets = ["scope,month,amount,currency", "all,2026-03,1000,USD", "team:data,2026-03,5,USD"]
    priced_warehouse(warehouse, monkeypatch, tmp_path, owners_lines=owners, budgets_lines=budgets)
    rules = pricing.owners(tmp_path / "owners.csv")
    month = defaultdict(float)
    movers = defaultdict(lambda: [0.0, 0.0])
    for row in truth:
        key = (row["provider"], row["account_id"], row["resource_type"], row["resource_id"])
        if row["usage_date"] >= dt.date(2026, 3, 1):
            month[(pricing.team_of(rules, *key), row["provider"])] += reporting(row, plan)
        if row["usage_date"] == TODAY - dt.timedelta(days=2):
            movers[key][0] += reporting(row, plan)
        if row["usage_date"] == TODAY - dt.timedelta(days=1):
            movers[key][1] += reporting(row, plan)
    got = {(team, provider): float(cost) for team, provider, _, cost, _ in query(as_of("cost_by_team_and_provider_this_month.sql"))}
    assert set(got) == set(month)
    for key, value in month.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key
    top = query(as_of("top_cost_movers_yesterday.sql"))
    changes = sorted((abs(y - b) for b, y in movers.values()), reverse=True)[:20]
    assert [float(abs(row[-1])) for row in top] == pytest.approx(changes, rel=1e-9, abs=1e-12)
    for provider, account, kind, resource, before, after, _ in top:
        assert (float(before), float(after)) == pytest.approx(tuple(movers[(provider, account, kind, resource)]), rel=1e-9, abs=1e-12)
    pace = {row[0]: row for row in query(as_of("budget_pace.sql"))}
    data = sum(v for (team, _), v in month.items() if team == "data")
    assert float(pace["team:data"][4]) == pytest.approx(data, rel=1e-9)
    assert float(pace["team:data"][5]) == pytest.approx(data / 10 * 31, rel=1e-9)
    assert float(pace["all"][4]) == pytest.approx(sum(month.values()), rel=1e-9)
