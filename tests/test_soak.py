"""A month of unattended nights: outages, kills, bad data and a backfill, on both warehouses.

Thirty nights on a moving clock (`USAGE_NOW`, which the simulators follow), each with the
events a seeded plan gives it: one provider or all of them down for one night or ten, the job
killed (SIGKILL while extracting, normalizing or loading; SIGTERM while the models build), one
night of bad figures per provider, and a backfill of the days before the start. After every
night the test compares the warehouse with the simulators' truth: a night that ended with any
day missing or wrong must have exited non-zero, and after the last night everything every API
still serves is there, exactly.

The simulated month runs in minutes, so the per-minute rate limits of Neon and Bronto are
raised on both sides (simulator and client); the nights' requests are those of real nights.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple


from pipelines import config
from pipelines.__main__ import main
from simulators.base import FOREVER, Fault, Simulator
from tests.conftest import assert_facts_equal, facts, query
from tests.providers import case, truth_rows
from tests.test_faults_cli import CRASH_HARNESS, night
from tests.test_no_silent_loss import SIGTERM_IN_MODELS, TODAY, cli, sims  # noqa: F401 - sims is a fixture

NIGHTS = 30
"""On DuckDB. Postgres runs a shorter month of `POSTGRES_NIGHTS`, planned by the same rules
(`plan`): the same kinds of outages, kills and bad data."""
POSTGRES_NIGHTS = 18
SEED = int(os.environ.get("SOAK_SEED", "20261201"))
KILLS = ("extract", "normalize", "normalize-commit", "load", "load-jobs", "models")
FAST = {"neon": {"rate_per_minute": 6000, "burst": 6000}, "bronto": {"rate_limit": 100000}}


def negative_neon_value(body):
    body["projects"][0]["periods"][0]["consumption"][-1]["metrics"][0]["value"] = -5
    return body


def negative_adverity_rows(body):
    body["items"][-1]["total_rows"] = -3
    return body


def repeated_rafay_row(body):
    rows = body["instance_usage_data"]
    rows.append(dict(rows[0]))
    return body


def bronto_nan(body):
    """A NaN figure in whichever answer it is: a per-log body (groups_series) or /usage's."""
    if isinstance(body, dict) and body.get("groups_series"):
        body["groups_series"][0]["timeseries"][-1]["value"] = "NaN"
        return body
    usages = body if isinstance(body, list) else [body]
    usages[0]["series"][-1]["value"] = "NaN"
    return body


BAD_DATA = {
    # provider: (what the answer carries, path it is served on, how it is broken)
    "neon": ("a negative figure", "projects", negative_neon_value),
    "adverity": ("a negative row count", "usage", negative_adverity_rows),
    "rafay": ("a row twice in one page", "instance/kind/compute", repeated_rafay_row),
    "bronto": ("NaN bytes", "/usage", bronto_nan),
}


@dataclass
class Night:
    number: int
    first_night: dt.date
    outages: Set[str] = field(default_factory=set)
    kill: Optional[Tuple[str, str]] = None  # (moment, provider)
    bad: Optional[str] = None
    backfill: bool = False

    @property
    def day(self) -> dt.date:
        return self.first_night + dt.timedelta(days=self.number)

    def events(self) -> List[str]:
        out = [f"{provider} down" for provider in sorted(self.outages)]
        if self.kill:
            out.append(f"{'SIGTERM in models' if self.kill[0] == 'models' else 'SIGKILL in ' + self.kill[0] + ' of ' + self.kill[1]}")
        if self.bad:
            out.append(f"{self.bad}: {BAD_DATA[self.bad][0]}")
        if self.backfill:
            out.append("backfill of the days before the start")
        return out


@dataclass
class Month:
    """`nights` nights ending today; START_DATE of every provider is four days before the
    first (the first night loads three days), and the backfill takes the five days before it."""
    nights: int

    @property
    def first_night(self) -> dt.date:
        return TODAY - dt.timedelta(days=self.nights - 1)

    @property
    def start(self) -> dt.date:
        return self.first_night - dt.timedelta(days=4)

    @property
    def backfill(self) -> Tuple[dt.date, dt.date]:
        return self.start - dt.timedelta(days=5), self.start - dt.timedelta(days=1)


def plan(rng: random.Random, month: Month) -> List[Night]:
    """The month: night 0 and the last two are plain; in between, outages of every shape (one
    provider down for longer than the week a nightly looks back), one kill at every moment,
    one night of bad data per provider, and a backfill. A kill goes to a night with nothing
    down; when a short month has too few, to a night where the provider it kills is up."""
    count = month.nights
    nights = [Night(n, month.first_night) for n in range(count)]
    middle = list(range(1, count - 2))
    episodes = [
        (list(config.provider_names()), 1),                       # everything down for one night
        ([rng.choice(config.provider_names())], 10 if count >= 30 else 8),  # one provider down for over a week
        (list(config.provider_names()), rng.randint(2, 4)),       # everything down for a few
        ([rng.choice(config.provider_names())], rng.randint(1, 3)),
    ]
    for providers, length in episodes:
        first = rng.randint(1, count - 2 - length)
        for n in range(first, first + length):
            nights[n].outages.update(providers)
    quiet = [n for n in middle if not nights[n].outages]
    rng.shuffle(quiet)
    for moment in KILLS:
        if quiet:
            n = quiet.pop()
            nights[n].kill = (moment, rng.choice(config.provider_names()))
            continue
        n = rng.choice([n for n in middle if nights[n].kill is None
                        and len(nights[n].outages) < len(config.provider_names())])
        nights[n].kill = (moment, rng.choice([p for p in config.provider_names() if p not in nights[n].outages]))
    for provider in config.provider_names():
        n = rng.choice([n for n in middle if provider not in nights[n].outages and nights[n].bad is None])
        nights[n].bad = provider
    nights[quiet.pop() if quiet else rng.choice(middle)].backfill = True
    return nights


def wrong_days(started: Dict[str, Simulator], first: dt.date, last: dt.date, destination: str) -> List[str]:
    """Per provider, whether raw and facts equal the truth for first..last (empty: they do)."""
    problems = []
    for provider, sim in started.items():
        provider_case = case(provider)
        truth = truth_rows(sim, first, last)
        fct = {
            tuple(row[:5]): float(row[5])
            for row in query(destination, "select usage_date, account_id, resource_type, resource_id, metric, quantity "
                                          f"from analytics.fct_daily_usage where provider = '{provider}' "
                                          f"and usage_date between date '{first}' and date '{last}'")
        } if _has_facts(destination) else {}
        raw = {key: value for key, value in facts(destination, provider_case).items() if first <= key[0] <= last}
        for name, actual in (("raw", raw), ("facts", fct)):
            try:
                assert_facts_equal(actual, truth, provider_case.tolerance)
            except AssertionError as exc:
                problems.append(f"{provider} {name}: {str(exc).splitlines()[0][:160]}")
    return problems


def _has_facts(destination: str) -> bool:
    return bool(query(destination, "select 1 from information_schema.tables "
                                   "where table_schema = 'analytics' and table_name = 'fct_daily_usage'"))


def run_night(entry: Night, started: Dict[str, Simulator], destination: str) -> int:
    for provider in entry.outages:
        started[provider].inject(Fault(status=503, body={"error": "maintenance"}, times=FOREVER))
    if entry.bad:
        _, path, mutate = BAD_DATA[entry.bad]
        started[entry.bad].inject(Fault(kind="mutate", mutate=mutate, path_contains=path))
    try:
        if entry.kill is None:
            return main(["nightly"])
        moment, provider = entry.kill
        if moment == "models":
            return cli("nightly", harness=SIGTERM_IN_MODELS).returncode
        done = cli(f"{provider}_usage_{destination}", moment, "nightly", harness=CRASH_HARNESS)
        return done.returncode
    finally:
        for sim in started.values():
            sim.clear_faults()


def test_a_month_of_nights_ends_equal_to_the_truth(monkeypatch, sims, record_property):
    """On DuckDB; tests/test_soak_postgres.py runs a shorter month on Postgres (a file each, so
    the suite's workers run them side by side)."""
    soak("duckdb", monkeypatch, sims, record_property, Month(NIGHTS))


def soak(destination: str, monkeypatch, sims, record_property, month: Month) -> None:
    monkeypatch.setenv("DESTINATION", destination)
    monkeypatch.setenv("SOURCES__NEON__RATE_PER_MINUTE", "6000")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    nights = plan(random.Random(SEED), month)
    night(monkeypatch, month.first_night)
    started = sims(config.provider_names(), month.start, **FAST)
    lines, violations = [], []
    for entry in nights:
        night(monkeypatch, entry.day)
        code = run_night(entry, started, destination)
        if entry.backfill:
            monkeypatch.setenv("LOG_LEVEL", "DEBUG")
            first, last = month.backfill
            done = cli("backfill", "--provider", "all", "--start", first.isoformat(), "--end", last.isoformat())
            assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
            monkeypatch.setenv("LOG_LEVEL", "WARNING")
        yesterday = entry.day - dt.timedelta(days=1)
        wrong = wrong_days(started, month.start, yesterday, destination)
        if wrong and code == config.EXIT_OK:
            violations.append(f"night {entry.number} ({entry.day}) exited 0 but: {'; '.join(wrong)}")
        if not wrong and not entry.events() and code != config.EXIT_OK:
            violations.append(f"night {entry.number} ({entry.day}) was healthy and complete but exited {code}")
        lines.append(f"night {entry.number:>2} {entry.day} exit {code:>4} {'complete' if not wrong else 'INCOMPLETE'}"
                     f"  {', '.join(entry.events()) or '-'}")
    last = TODAY - dt.timedelta(days=1)
    final = wrong_days(started, month.backfill[0], last, destination)
    summary = (f"soak {destination} seed {SEED}: {month.nights} nights, "
               f"{sum(len(n.outages) for n in nights)} provider-nights down, "
               f"{sum(1 for n in nights if n.kill)} kills, {sum(1 for n in nights if n.bad)} bad-data nights, "
               f"{sum(1 for n in nights if n.backfill)} backfill; "
               f"{sum(1 for line in lines if 'INCOMPLETE' in line)} nights ended incomplete, every one non-zero: "
               f"{'yes' if not violations else 'NO'}; final warehouse equals the truth {month.backfill[0]}..{last}: "
               f"{'yes' if not final else 'NO'}")
    record_property("soak", [summary, *lines])
    assert not violations, "\n".join(violations + lines)
    assert not final, "\n".join(final + lines)
    assert cli("check").returncode == config.EXIT_OK
    assert {status for (status,) in query(destination, "select distinct status from analytics.usage_completeness")} == {"loaded"}
