"""The analysts' example queries (docs/queries/) and the demo's summary, against the truth.

Every answer is compared with what the simulators say happened (their `truth(first, last)` and
Adverity's own monthly figures), never with the warehouse the query reads: a query, or a fact
table, that counts usage twice fails here. The warehouses are loaded by the nightly job from
simulators whose clock is pinned, and so is the pipeline's (`USAGE_NOW`): once on the 1st of a
month, once on its 5th, both from the 1st of the month before. Each query reads
`current_date` once, in its `as_of` CTE, which the tests replace with the pinned day. The same
queries run on DuckDB and on the Postgres server (the facts copied over).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

import sources
from pipelines.config import Destination
from tests.providers import case

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "docs" / "queries"
QUERY_NAMES = ("month_to_date_by_account.sql", "top_resources_last_7_days.sql", "daily_usage_drivers.sql")
UTC = dt.timezone.utc
ONE_DAY = dt.timedelta(days=1)

START = dt.date(2026, 2, 1)
FIRST_OF_MONTH = dt.datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
EARLY_IN_MONTH = dt.datetime(2026, 3, 5, 6, 30, tzinfo=UTC)
"""Its last 7 days span two months."""
ROLLUPS = {"compute_profile", "service_profile"}
"""Rafay's profile rollups: in analytics.rafay_profile_usage, never in the fact."""
NOT_ADDITIVE_OVER_DAYS = {("adverity", "unique_rows")}


# -- the warehouses -----------------------------------------------------------------------------
@dataclass
class Loaded:
    """A warehouse the nightly job loaded from `start` through the day before `today`, and the
    simulators that served it (their truth needs no running server)."""

    path: Path
    today: dt.date
    start: dt.date
    sims: Dict[str, object]
    out: str


def run_nightly(directory: Path, now: dt.datetime, start: dt.date) -> Loaded:
    """The simulators and the nightly job, both pinned at `now`, every provider from `start`."""
    from simulators import start_all

    keys = {provider: f"queries-{provider}-0123456789" for provider in sources.names()}
    sims = start_all(keys, seed=7, clock=lambda: now)
    try:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SOURCES__", "DESTINATION")) and k not in ("USAGE_NOW", "DLT_DATA_DIR")}
        for provider, sim in sims.items():
            env.update(sim.source_env())
            env[f"SOURCES__{provider.upper()}__START_DATE"] = start.isoformat()
        path = directory / "warehouse.duckdb"
        env.update(USAGE_NOW=now.isoformat(), DESTINATION__DUCKDB__CREDENTIALS=str(path),
                   DLT_DATA_DIR=str(directory / "dlt"), RUNTIME__DLTHUB_TELEMETRY="false")
        done = subprocess.run([sys.executable, "-m", "pipelines", "nightly"], cwd=ROOT, capture_output=True,
                              text=True, env=env, timeout=600)
    finally:
        for sim in sims.values():
            sim.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    return Loaded(path, now.date(), start, sims, done.stdout)


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory) -> Callable[[dt.datetime], Loaded]:
    """`warehouses(now)`: the warehouse loaded with the clock pinned at `now`, loaded once."""
    made: Dict[dt.datetime, Loaded] = {}

    def get(now: dt.datetime) -> Loaded:
        if now not in made:
            made[now] = run_nightly(tmp_path_factory.mktemp("pinned"), now, START)
        return made[now]

    return get


@pytest.fixture(params=[FIRST_OF_MONTH, EARLY_IN_MONTH], ids=["first-of-month", "5th-of-month"])
def loaded(request, warehouses) -> Loaded:
    return warehouses(request.param)


def code_of(name: str) -> str:
    """A query's SQL without its comments."""
    return "\n".join(line.split("--", 1)[0] for line in (QUERIES / name).read_text().splitlines())


def as_of_sql(name: str, today: dt.date) -> str:
    """The query with its one `current_date` (in the as_of CTE) replaced by a literal day."""
    text = (QUERIES / name).read_text()
    code = code_of(name)
    assert len(re.findall(r"\bcurrent_date\b", code)) == 1, f"{name} must read current_date once, in its as_of CTE"
    return re.sub(r"(select\s+)current_date(\s+as\s+today)", rf"\1date '{today.isoformat()}'\2", text)


def duckdb_rows(path: Path, sql: str) -> List[tuple]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(sql).fetchall()


def tables_read() -> List[str]:
    """The analytics tables the example queries read."""
    return sorted({name for query in QUERY_NAMES for name in re.findall(r"\banalytics\.(\w+)", code_of(query))})


PG_TYPES = {"VARCHAR": "text", "DATE": "date", "DOUBLE": "double precision", "BIGINT": "bigint",
            "INTEGER": "integer", "TIMESTAMP": "timestamp", "BOOLEAN": "boolean"}


def copy_to_postgres(path: Path, url: str) -> None:
    """The tables the queries read, from the DuckDB warehouse into the Postgres database."""
    import duckdb
    import psycopg2
    from psycopg2.extras import execute_values

    con = psycopg2.connect(url)
    try:
        with con, con.cursor() as cur, duckdb.connect(str(path), read_only=True) as duck:
            cur.execute("create schema analytics")
            present = {name for (name,) in duck.execute(
                "select table_name from information_schema.tables where table_schema = 'analytics'").fetchall()}
            for table in tables_read():
                if table not in present:  # the query reading it fails on both warehouses alike
                    continue
                columns = duck.execute(f"describe analytics.{table}").fetchall()
                listed = ", ".join(f"{name} {PG_TYPES.get(kind, 'text')}" for name, kind, *_ in columns)
                cur.execute(f"create table analytics.{table} ({listed})")
                rows = duck.execute(f"select * from analytics.{table}").fetchall()
                execute_values(cur, f"insert into analytics.{table} values %s", rows, page_size=1000)
    finally:
        con.close()


def postgres_rows(url: str, sql: str) -> List[tuple]:
    import psycopg2

    con = psycopg2.connect(url)
    try:
        with con, con.cursor() as cur:
            cur.execute("set time zone 'UTC'")
            cur.execute(sql)
            return cur.fetchall()
    finally:
        con.close()


@pytest.fixture(params=["duckdb", "postgres"])
def answer(request, loaded) -> Callable[[str], List[tuple]]:
    """`answer(query name)`: the query's rows as of the pinned day, on DuckDB or on Postgres."""
    if request.param == "duckdb":
        return lambda name: duckdb_rows(loaded.path, as_of_sql(name, loaded.today))
    url = request.getfixturevalue("postgres_url")
    copy_to_postgres(loaded.path, url)
    return lambda name: postgres_rows(url, as_of_sql(name, loaded.today))


# -- the truth ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fact:
    provider: str
    usage_date: dt.date
    account_id: str
    resource_type: str
    resource_id: str
    metric: str
    quantity: float


def truth(loaded: Loaded, first: dt.date, last: dt.date) -> List[Fact]:
    """The leaf usage of every provider for the days of first..last that the warehouse loaded
    (none when last < first): what analytics.fct_daily_usage must hold."""
    first, last = max(first, loaded.start), min(last, loaded.today - ONE_DAY)
    if last < first:
        return []
    return [
        Fact(provider, row["usage_date"], str(row["account_id"]), row["resource_type"], str(row["resource_id"]),
             row["metric"], float(row["quantity"]))
        for provider, sim in loaded.sims.items()
        for row in sim.truth(first, last)
        if row["resource_type"] not in ROLLUPS
    ]


def adverity_unique_months(loaded: Loaded, first: dt.date, last: dt.date) -> Dict[str, float]:
    """{workspace: Adverity's own unique rows of the month first..last (its 1st through its last
    day or yesterday)}, summed over the workspace's datastreams: the simulator's monthly answer,
    never a sum of days."""
    first, last = max(first, loaded.start), min(last, loaded.today - ONE_DAY)
    if last < first:
        return {}
    assert first.day == 1 and (first.year, first.month) == (last.year, last.month), "one whole month at a time"
    sim = loaded.sims["adverity"]
    if hasattr(sim, "monthly_truth"):
        items = sim.monthly_truth(first, first)
        assert {item["through_date"] for item in items} <= {last}, "the month's figure covers another day"
    else:
        items = sim._items("monthly", first, last, sim.visible_workspaces(), set())
    months: Dict[str, float] = defaultdict(float)
    for item in items:
        months[item["workspace_id"]] += float(item["unique_rows"])
    return dict(months)


def tolerance(provider: str) -> float:
    """Bronto's days are shares of slices straddling midnight: within the case's tolerance."""
    return case(provider).tolerance


def close(provider: str, actual: float, expected: float) -> bool:
    return actual == pytest.approx(expected, rel=tolerance(provider), abs=1e-6)


def month_bounds(today: dt.date) -> Dict[str, Tuple[dt.date, dt.date]]:
    """The month so far (its last day before its first on the 1st) and the last complete month."""
    month_start = today.replace(day=1)
    last_month_end = month_start - ONE_DAY
    return {"month_to_date": (month_start, today - ONE_DAY), "last_month": (last_month_end.replace(day=1), last_month_end)}


def last_7_days(today: dt.date) -> Tuple[dt.date, dt.date]:
    return today - 7 * ONE_DAY, today - ONE_DAY


# -- the queries --------------------------------------------------------------------------------
def test_each_query_reads_current_date_once_in_its_as_of_cte_and_says_so():
    assert sorted(p.name for p in QUERIES.glob("*.sql")) == sorted(QUERY_NAMES)
    for name in QUERY_NAMES:
        text = (QUERIES / name).read_text()
        header = "".join(line for line in text.splitlines() if line.startswith("--"))
        assert "as_of" in header and "current_date" in header, f"{name}: its header must say how to run it as of a day"
        assert re.search(r"as_of as \(\s*select current_date as today\s*\)", text), name
        assert "date '2026-03-01' as today" in as_of_sql(name, dt.date(2026, 3, 1))


def test_month_to_date_by_account(loaded, answer):
    """Each account and metric: the month so far and the last complete month, equal to the
    truth; Adverity's unique_rows are its monthly figures, not the sum of its days."""
    expected: Dict[tuple, Tuple[float, int]] = {}
    through: Dict[str, object] = {}
    seen = set()
    periods = month_bounds(loaded.today)
    for period, (first, last) in periods.items():
        sums: Dict[tuple, float] = defaultdict(float)
        days: Dict[tuple, set] = defaultdict(set)
        for fact in truth(loaded, first, last):
            key = (fact.provider, fact.account_id, fact.metric)
            sums[key] += fact.quantity
            days[key].add(fact.usage_date)
        daily_unique = {key[1]: q for key, q in sums.items() if (key[0], key[2]) in NOT_ADDITIVE_OVER_DAYS}
        months = adverity_unique_months(loaded, first, last)
        for workspace, quantity in months.items():
            sums[("adverity", workspace, "unique_rows")] = quantity
        if period == "last_month":  # the test tells a month's figure from the sum of its days
            assert any(daily_unique[w] != months[w] for w in months), "monthly unique rows equal the sum of days"
        for key in sums:
            expected[key + (period,)] = (sums[key], len(days[key]))
        seen |= set(sums)
        through[period] = last if last >= first else None
    for key in seen:
        for period in periods:
            expected.setdefault(key + (period,), (0.0, 0))

    rows = answer("month_to_date_by_account.sql")
    actual = {}
    for provider, account_id, _, metric, unit, period, month, through_day, days, quantity in rows:
        key = (provider, str(account_id), metric, period)
        assert key not in actual, f"two rows for {key}"
        actual[key] = (float(quantity), days)
        assert month == periods[period][0], (key, month)
        assert through_day == through[period], (key, through_day)
    assert sorted(set(expected) - set(actual))[:5] == [] and sorted(set(actual) - set(expected))[:5] == []
    wrong = [(key, actual[key], expected[key]) for key in expected
             if not close(key[0], actual[key][0], expected[key][0]) or actual[key][1] != expected[key][1]]
    assert not wrong, f"{len(wrong)} figures differ, e.g. {wrong[:5]}"
    assert {key[0] for key in actual} == set(loaded.sims)
    if loaded.today.day == 1:
        assert all(actual[key] == (0.0, 0) for key in actual if key[3] == "month_to_date")


def test_top_resources_last_7_days(loaded, answer):
    """Per provider and metric, the ten largest resources over the 7 days before the pinned
    day, each total equal to the truth; no profile rollup; no sum of Adverity's unique_rows."""
    first, last = last_7_days(loaded.today)
    totals: Dict[tuple, Dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
    active: Dict[tuple, set] = defaultdict(set)
    for fact in truth(loaded, first, last):
        if (fact.provider, fact.metric) in NOT_ADDITIVE_OVER_DAYS:
            continue
        resource = (fact.account_id, fact.resource_type, fact.resource_id)
        totals[(fact.provider, fact.metric)][resource] += fact.quantity
        if fact.quantity > 0:
            active[(fact.provider, fact.metric) + resource].add(fact.usage_date)

    rows = answer("top_resources_last_7_days.sql")
    by_group: Dict[tuple, List[tuple]] = defaultdict(list)
    for provider, metric, _, rank, account_id, resource_type, resource_id, _, quantity, active_days in rows:
        by_group[(provider, metric)].append((rank, (str(account_id), resource_type, str(resource_id)), quantity, active_days))
    assert set(by_group) == set(totals)
    for group, resources in totals.items():
        top = sorted(by_group[group])
        assert [rank for rank, *_ in top] == list(range(1, min(10, len(resources)) + 1)), group
        for rank, resource, quantity, active_days in top:
            assert resource[1] not in ROLLUPS, (group, resource)
            assert close(group[0], quantity, resources[resource]), (group, rank, resource, quantity, resources[resource])
            assert active_days == len(active[group + resource]), (group, resource)
        largest = sorted(resources.values(), reverse=True)[: len(top)]
        assert all(close(group[0], q, e) for (_, _, q, _), e in zip(top, largest)), (group, top, largest)


def test_daily_usage_drivers(loaded, answer):
    """Each day, account and metric of the 7 days before the pinned day: the three largest
    resources, the day's total and each one's share of it, equal to the truth."""
    first, last = last_7_days(loaded.today)
    per_day: Dict[tuple, Dict[tuple, float]] = defaultdict(dict)
    for fact in truth(loaded, first, last):
        per_day[(fact.usage_date, fact.provider, fact.account_id, fact.metric)][(fact.resource_type, fact.resource_id)] = fact.quantity

    rows = answer("daily_usage_drivers.sql")
    by_group: Dict[tuple, List[tuple]] = defaultdict(list)
    for usage_date, provider, account_id, metric, _, rank, resource_type, resource_id, _, quantity, day_total, share in rows:
        by_group[(usage_date, provider, str(account_id), metric)].append(
            (rank, (resource_type, str(resource_id)), quantity, day_total, share))
    assert set(by_group) == set(per_day)
    for group, resources in per_day.items():
        provider = group[1]
        drivers = sorted(by_group[group])
        assert [rank for rank, *_ in drivers] == list(range(1, min(3, len(resources)) + 1)), group
        total = sum(resources.values())
        for rank, resource, quantity, day_total, share in drivers:
            assert resource[0] not in ROLLUPS, (group, resource)
            assert close(provider, quantity, resources[resource]), (group, resource, quantity, resources[resource])
            assert close(provider, day_total, total), (group, day_total, total)
            if day_total:
                assert float(share) == pytest.approx(100 * quantity / day_total, abs=0.051), (group, rank)
                true_share = 100 * resources[resource] / total
                assert float(share) == pytest.approx(true_share, abs=0.051 + 200 * tolerance(provider)), (group, rank)
            else:
                assert share is None, group
        largest = sorted(resources.values(), reverse=True)[: len(drivers)]
        assert all(close(provider, q, e) for (_, _, q, _, _), e in zip(drivers, largest)), (group, drivers, largest)
        if len(resources) <= 3 and total:
            assert sum(float(s) for *_, s in drivers) == pytest.approx(100, abs=0.051 * len(drivers)), group


# -- the demo and its summary -------------------------------------------------------------------
def summary_rows(lines: List[str], table: str) -> List[List[str]]:
    """The rows of one section of the summary: the lines after `table`'s header line, split on
    whitespace, up to the next blank line."""
    start = next(i for i, line in enumerate(lines) if line.startswith(table + ":"))
    rows = []
    for line in lines[start + 2:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_summary_adds_up_the_way_an_analyst_would(warehouses):
    """Per provider and metric: days, resources and the total, equal to the truth of the days
    loaded; Adverity's unique_rows per month from Adverity's monthly figure; which tables may be
    summed, and the rollup that may not."""
    from pipelines.summary import fact_summary_lines

    loaded = warehouses(FIRST_OF_MONTH)
    lines = fact_summary_lines(Destination("duckdb", str(loaded.path)))
    text = "\n".join(lines)
    facts = truth(loaded, loaded.start, loaded.today - ONE_DAY)
    totals: Dict[tuple, float] = defaultdict(float)
    days: Dict[tuple, set] = defaultdict(set)
    resources: Dict[tuple, set] = defaultdict(set)
    for fact in facts:
        key = (fact.provider, fact.metric)
        totals[key] += fact.quantity
        days[key].add(fact.usage_date)
        resources[key].add((fact.account_id, fact.resource_type, fact.resource_id))
    rows = summary_rows(lines, "analytics.fct_daily_usage")
    assert {(row[0], row[1]) for row in rows} == set(totals)
    for provider, metric, _, n_days, first, last, n_resources, *total in rows:
        key = (provider, metric)
        assert int(n_days) == len(days[key]) and int(n_resources) == len(resources[key]), (key, rows)
        assert (first, last) == (min(days[key]).isoformat(), max(days[key]).isoformat()), key
        if key in NOT_ADDITIVE_OVER_DAYS:
            assert total == ["per", "month", "below"], (key, total)
        else:
            shown = float(total[0].replace(",", ""))  # one decimal
            assert shown == pytest.approx(totals[key], rel=tolerance(provider), abs=0.051), (key, total, totals[key])
    month = loaded.start
    months = summary_rows(lines, "analytics.adverity_monthly_usage")
    expected_unique = sum(adverity_unique_months(loaded, month, (month + 31 * ONE_DAY).replace(day=1) - ONE_DAY).values())
    assert [row[:4] for row in months] == [["adverity", "unique_rows", "rows", month.isoformat()[:7]]], months
    assert float(months[0][6].replace(",", "")) == pytest.approx(expected_unique, abs=0.051)
    assert "never across metrics" in text and "never over months" in text
    assert lines[-2].startswith("may be summed: analytics.fct_daily_usage (") and "analytics.adverity_monthly_usage (" in lines[-2]
    assert lines[-1].startswith("never to be added to them: analytics.rafay_profile_usage"), lines[-1]


@pytest.fixture(scope="module")
def demo_warehouse(tmp_path_factory):
    """`python -m pipelines demo` into a directory of its own, as `make demo` runs it."""
    directory = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION")) and k != "USAGE_NOW"}
    done = subprocess.run([sys.executable, "-m", "pipelines", "demo"], cwd=ROOT, capture_output=True, text=True,
                          env={**env, "DEMO_DIR": str(directory)}, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return directory / "warehouse.duckdb", done.stdout


def test_demo_prints_every_provider_and_the_fact_summary(demo_warehouse):
    _, out = demo_warehouse
    for provider in ("neon", "adverity", "rafay", "bronto"):
        assert any(line.startswith(f"{provider} ") and " ok " in line for line in out.splitlines()), out
    assert "analytics.fct_daily_usage" in out and "compute_unit_seconds" in out and "ingestion_bytes" in out
    assert "analytics.adverity_monthly_usage" in out and "per month below" in out, out


def test_status_after_the_demo_shows_every_provider(demo_warehouse):
    path, _ = demo_warehouse
    done = subprocess.run([sys.executable, "-m", "pipelines", "status"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "DESTINATION__DUCKDB__CREDENTIALS": str(path)})
    assert done.returncode == 0, done.stderr
    yesterday = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()
    for provider in ("neon", "adverity", "rafay", "bronto"):
        line = next(l for l in done.stdout.splitlines() if l.startswith(f"{provider} "))
        assert yesterday in line, line
    assert "nightly" in done.stdout


def test_example_queries_run_as_written_on_the_demo(demo_warehouse):
    """With the real clock (`current_date` untouched), every query answers every provider."""
    path, _ = demo_warehouse
    for name in QUERY_NAMES:
        rows = duckdb_rows(path, (QUERIES / name).read_text())
        assert {row[0] if name != "daily_usage_drivers.sql" else row[1] for row in rows} == set(sources.names()), name


# -- the data dictionary ------------------------------------------------------------------------
DICTIONARY = ROOT / "docs" / "data_dictionary.md"
DOCUMENTED = ("fct_daily_usage", "dim_resource", "rafay_profile_usage", "adverity_monthly_usage",
              "usage_completeness", "load_runs", "load_coverage", "model_loads")
TABLE_HEADING = re.compile(r"^### analytics\.([a-z_0-9]+)$")
COLUMN_ROW = re.compile(r"^\| `([A-Za-z_0-9]+)` \| [^|]+ \| [^|]+ \|$")


def dictionary_columns() -> Dict[str, List[str]]:
    """table -> its columns, from the `### analytics.<table>` sections of the data dictionary."""
    found: Dict[str, List[str]] = {}
    current = None
    for line in DICTIONARY.read_text().splitlines():
        heading = TABLE_HEADING.match(line)
        if heading:
            current = found.setdefault(heading.group(1), [])
        elif line.startswith("#"):
            current = None
        elif current is not None and line.startswith("| `"):
            assert COLUMN_ROW.match(line), f"not a `| column | type | meaning |` row: {line}"
            current.append(COLUMN_ROW.match(line).group(1))
    return found


def test_data_dictionary_names_every_column_of_every_table(warehouses):
    """Each table of the contract has its section, with exactly the columns the nightly built."""
    documented = dictionary_columns()
    assert set(DOCUMENTED) <= set(documented), sorted(set(DOCUMENTED) - set(documented))
    import duckdb

    with duckdb.connect(str(warehouses(FIRST_OF_MONTH).path), read_only=True) as con:
        built: Dict[str, List[str]] = defaultdict(list)
        for table, column in con.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = 'analytics' order by table_name, ordinal_position"
        ).fetchall():
            built[table].append(column)
    differ = {table: (sorted(set(built.get(table, [])) - set(documented[table])),
                      sorted(set(documented[table]) - set(built.get(table, []))))
              for table in DOCUMENTED if sorted(built.get(table, [])) != sorted(documented[table])}
    assert not differ, f"(built but not documented, documented but not built): {differ}"
