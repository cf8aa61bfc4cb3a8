"""analytics.usage_anomalies and the alerts that name it, from real nightly runs against a Neon
simulator whose series are flat (each project and metric one figure every day): a flat history
raises no anomaly; one project made 10x for one day is exactly one anomaly, with its factor and
cost impact, named in the webhook's message once; a budget set just under the projected spend is
alerted once over two nights. On DuckDB and on Postgres."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Dict, Tuple

import pytest

from pipelines import alerts, config, pricing
from simulators.neon import NeonSimulator
from tests.conftest import query
from tests.test_alerts import TODAY, night, receiver, run, sims  # noqa: F401 - fixtures
from tests.test_alerts import no_alert_or_pricing_settings  # noqa: F401 - autouse fixture

HISTORY_DAYS = 20
PRICE = 0.25
SPIKED_METRIC = "compute_unit_seconds"


class FlatNeon(NeonSimulator):
    """Every project's metric the same figure every day, times `spikes[(project, metric, day)]`."""

    def __init__(self, *args, **kwargs):
        self.spikes: Dict[Tuple[str, str, dt.date], int] = {}
        super().__init__(*args, **kwargs)

    def value(self, project_id: str, metric: str, day: dt.date) -> int:
        base = 1000 + self.rand("flat", project_id, metric) % 9000
        return base * self.spikes.get((project_id, metric, day), 1)


def flat_neon(provider: str, **options) -> FlatNeon:
    assert provider == "neon"
    return FlatNeon(n_projects=7, **options)


def rate_card(tmp_path) -> str:
    lines = ["provider,metric,pricing_unit,unit_price,currency,effective_from,effective_to"]
    for metric, unit in pricing.METRICS["neon"].items():
        pricing_unit = "CU-hour" if metric == SPIKED_METRIC else unit
        lines.append(f"neon,{metric},{pricing_unit},{PRICE},USD,2026-01-01,")
    path = tmp_path / "rate_card.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def anomalies(destination: str):
    return query(destination, "select usage_date, resource_id, metric, quantity, median_quantity, factor, direction, "
                              "cost_impact, currency, prior_days from analytics.usage_anomalies")


def dest(destination: str) -> config.Destination:
    return config.destination(destination)


def start(monkeypatch, sims, destination):  # noqa: F811 - the fixture passed on
    monkeypatch.setenv("DESTINATION", destination)
    night(monkeypatch, TODAY)
    return sims(["neon"], TODAY - dt.timedelta(days=HISTORY_DAYS), make=flat_neon)["neon"]


def test_a_flat_history_raises_no_anomaly(monkeypatch, sims, destination):  # noqa: F811
    start(monkeypatch, sims, destination)
    done = run("nightly")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    assert query(destination, "select count(*) from analytics.fct_daily_usage")[0][0] > 0
    assert anomalies(destination) == []
    assert alerts.new_anomalies(dest(destination)) == []


def test_one_day_ten_times_its_usual_is_one_anomaly_named_once_in_the_alert(monkeypatch, sims, receiver, destination,  # noqa: F811
                                                                            tmp_path):
    monkeypatch.setenv("PRICING__RATE_CARD", rate_card(tmp_path))
    sim = start(monkeypatch, sims, destination)
    oldest = sim.projects[-1]  # newest first: the last has the whole history
    day = TODAY - dt.timedelta(days=3)
    sim.spikes[(oldest.project_id, SPIKED_METRIC, day)] = 10
    usual = sim.value(oldest.project_id, SPIKED_METRIC, day - dt.timedelta(days=1))
    done = run("nightly")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr

    rows = anomalies(destination)
    assert len(rows) == 1, rows
    (got_day, resource, metric, quantity, median, factor, direction, impact, currency, prior_days), = rows
    assert (got_day, resource, metric, direction, currency, prior_days) == (
        day, oldest.project_id, SPIKED_METRIC, "spike", "USD", 14)
    assert (quantity, median) == (10 * usual, usual)
    assert factor == pytest.approx(10.0)
    assert impact == pytest.approx(9 * usual / 3600 * PRICE), "9 x the usual cu-seconds at the CU-hour price"

    (text,) = receiver.texts()
    (line,) = [line for line in text.splitlines() if line.startswith("- anomaly:")]
    assert f"usage spike {day}: neon account {sim.org_id} project {oldest.project_id}" in line, line
    assert SPIKED_METRIC in line and "(10.0x)" in line and "cost impact" in line, line
    assert text.startswith("usage-elt nightly ok, with alerts (exit 0)"), text

    night(monkeypatch, TODAY + dt.timedelta(days=1))
    done = run("nightly")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    assert len(anomalies(destination)) == 1
    assert len(receiver.bodies) == 1, f"an anomaly is alerted once: {receiver.texts()}"
    assert alerts.new_anomalies(dest(destination)) == []


def test_a_budget_just_under_the_projection_is_alerted_once_over_two_nights(monkeypatch, sims, receiver,  # noqa: F811
                                                                            tmp_path):
    monkeypatch.setenv("PRICING__RATE_CARD", rate_card(tmp_path))
    start(monkeypatch, sims, "duckdb")
    done = run("nightly")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    assert receiver.bodies == []
    month = TODAY.replace(day=1)
    ((spend, days),) = query("duckdb", "select sum(reporting_cost), count(distinct usage_date) from "
                                       f"analytics.fct_daily_cost where usage_date >= '{month}'")
    projected = spend / days * 31  # March: the flat series spends the same every day
    budgets = tmp_path / "budgets.csv"
    budgets.write_text(f"scope,month,amount,currency\nall,{month:%Y-%m},{0.9 * projected:.2f},USD\n")
    monkeypatch.setenv("PRICING__BUDGETS", str(budgets))

    for offset in (1, 2):
        night(monkeypatch, TODAY + dt.timedelta(days=offset))
        done = run("nightly")
        assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    named = [line for text in receiver.texts() for line in text.splitlines() if line.startswith("- budget:")]
    assert len(named) == 1, receiver.texts()
    assert named[0].startswith(f"- budget: budget all {month:%Y-%m} is projected to reach 11"), named
    assert len(receiver.bodies) == 1, "the second night had nothing new to say"


def test_check_prints_a_new_anomaly_once(monkeypatch, sims, destination, tmp_path):  # noqa: F811
    """Without a webhook, `check` is where a new anomaly is said; it is not said twice."""
    monkeypatch.delenv("ALERTS__WEBHOOK_URL", raising=False)
    sim = start(monkeypatch, sims, destination)
    oldest = sim.projects[-1]
    day = TODAY - dt.timedelta(days=3)
    sim.spikes[(oldest.project_id, SPIKED_METRIC, day)] = 10
    done = run("nightly")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    done = run("check")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("CHECK ANOMALY")]
    assert len(lines) == 1 and f"usage spike {day}" in lines[0] and oldest.project_id in lines[0], done.stdout
    again = run("check")
    assert again.returncode == config.EXIT_OK and "CHECK ANOMALY" not in again.stdout, again.stdout


def test_anomalies_build_within_the_memory_cap_on_a_large_warehouse(tmp_path):
    """The mart judges thousands of series on a capped DuckDB (as the nightly caps it, here
    scaled down with the data) without running out of memory, and finds exactly the spikes.

    6,000 series x 60 days, one in 500 of them 50x its usual figure on one of the last 7 days.
    The median of the 14 days before each judged day used to be an ordered-set aggregate over
    the rows of every series carried with its five key strings: out of memory below ~64 MB."""
    import duckdb

    n_series, last = 6000, dt.date(2026, 11, 30)
    con = duckdb.connect(str(tmp_path / "large.duckdb"))
    con.execute("set memory_limit = '48MB'")
    con.execute("set preserve_insertion_order = false")
    con.execute("create schema analytics")
    con.execute(f"""
        create table analytics.fct_daily_usage as
        select cast(date '{last}' - interval (59 - d) day as date) as usage_date, 'rafay' as provider,
               'tenant-' || (s % 7) as account_id, 'compute_instance' as resource_type,
               'instance-' || lpad(cast(s as varchar), 8, '0') as resource_id, 'instance ' || s as resource_name,
               'metric_' || (s % 8) as metric, 'seconds' as unit,
               cast((100 + (s * 7 + d * 13) % 50) * case when s % 500 = 3 and d = 55 then 50 else 1 end as double) as quantity
        from range(60) as days(d), range({n_series}) as series(s)""")
    con.execute("""create table analytics.fct_daily_cost as select *, 'team' as team, 'hour' as pricing_unit,
                   1.0 as unit_price, 'USD' as currency from analytics.fct_daily_usage limit 0""")
    con.execute("create table analytics.rate_card (unit varchar, pricing_unit varchar, units_per_pricing_unit double)")
    model = (Path(__file__).resolve().parent.parent / "sql" / "marts" / "usage_anomalies.sql").read_text()
    found = con.execute(f"select resource_id, usage_date, direction from ({model}) as anomalies").fetchall()
    spiked = {(f"instance-{s:08d}", last - dt.timedelta(days=4), "spike") for s in range(n_series) if s % 500 == 3}
    assert set(found) == spiked and len(found) == len(spiked)
