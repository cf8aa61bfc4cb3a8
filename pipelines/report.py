"""`make report`: one self-contained HTML page of the warehouse's usage, for people to look at.

The page is read from the warehouse's `analytics` schema for a window of complete UTC days (the
last 30 by default): per provider and metric the daily usage in readable units with totals that
add up (leaf rows of `fct_daily_usage` only; Adverity's `unique_rows` per month from
`adverity_monthly_usage`, never a sum of days), the top resources with their names and owners,
cost by team and provider, budget pace and the latest anomalies where those tables exist, the
completeness of every day, and the last runs.

Charts are Vega-Lite specifications drawn in the page by Vega's own JavaScript, which
`vl-convert-python` bundles (no CDN, no network): the page opens from disk anywhere. Every
number is also printed as text, in a table beside its chart, and the page prints.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import decimal
import functools
import html
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit, urlunsplit

from pipelines import config, warehouse
from pipelines.config import Destination

DEFAULT_OUT = Path("data/report/usage.html")
DEFAULT_DAYS = 30
PROVIDERS = ("neon", "adverity", "rafay", "bronto")

A = warehouse.SCHEMA
FACT = f"{A}.fct_daily_usage"
DIM = f"{A}.dim_resource"
ADVERITY_MONTHLY = f"{A}.adverity_monthly_usage"
COMPLETENESS = f"{A}.usage_completeness"
RUNS = f"{A}.load_runs"
COST = f"{A}.fct_daily_cost"
BUDGET = f"{A}.budget_status"
ANOMALIES = f"{A}.usage_anomalies"

NOT_ADDITIVE_OVER_DAYS = {("adverity", "unique_rows")}
"""(provider, metric) whose days do not add up: Adverity counts unique rows per month."""

TOP_RESOURCES = 3
LAST_RUNS = 20
LATEST_ANOMALIES = 20

# The fact's `unit` (data dictionary, "Metrics and units") -> the unit people read, and how
# many of the fact's units make one of it.
READABLE_UNITS: Dict[str, Tuple[str, float]] = {
    "cu_seconds": ("CU-hours", 3600.0),
    "seconds": ("hours", 3600.0),
    "bytes": ("GB", 1e9),
    "byte_months": ("GB-months", 1e9),
    "byte_hours": ("GB-hours", 1e9),
    "rows": ("million rows", 1e6),
    "hours": ("hours", 1.0),
    "branch_months": ("branch-months", 1.0),
    "cpu_hours": ("CPU-hours", 1.0),
    "gpu_hours": ("GPU-hours", 1.0),
}


def readable_unit(unit: str) -> Tuple[str, float]:
    """(label, divisor) for a fact unit; Rafay's `<parameter>_hours` read as `parameter-hours`."""
    if unit in READABLE_UNITS:
        return READABLE_UNITS[unit]
    if unit.endswith("_hours"):
        return unit[: -len("_hours")].replace("_", " ") + "-hours", 1.0
    return unit, 1.0


def number(value: Optional[float]) -> str:
    """A quantity as printed everywhere on the page: thousands separated, two decimals (three
    significant digits below 1, so small amounts do not print as 0.00)."""
    if value is None:
        return "–"
    value = float(value)
    if value != 0 and abs(value) < 1:
        return f"{value:.3g}"
    return f"{value:,.2f}"


@dataclass(frozen=True)
class Window:
    """The inclusive range of UTC days the report covers."""

    first: dt.date
    last: dt.date

    @property
    def days(self) -> List[dt.date]:
        return [self.first + dt.timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def __str__(self) -> str:
        return f"{self.first.isoformat()} to {self.last.isoformat()} ({len(self.days)} days, UTC)"


def window(days: int = DEFAULT_DAYS, start: Optional[str] = None, end: Optional[str] = None) -> Window:
    """The last `days` complete UTC days, or START..END (either end alone: `days` from it)."""
    from sources import windows

    if days < 1:
        raise config.ConfigError(f"--days {days}: give a number of days of at least 1")
    try:
        first = windows.parse_day(start, "START") if start else None
        last = windows.parse_day(end, "END") if end else None
    except windows.WindowError as exc:
        raise config.ConfigError(str(exc)) from None
    span = dt.timedelta(days=days - 1)
    if last is None:
        last = first + span if first else windows.last_complete_day()
    if first is None:
        first = last - span
    if first > last:
        raise config.ConfigError(f"START={first} is after END={last}; give START <= END")
    return Window(first, last)


def shown_location(dest: Destination) -> str:
    """The warehouse as the page names it: the DuckDB file's path, or the Postgres URL with its
    user and password masked."""
    if dest.name == "duckdb":
        return f"DuckDB {Path(dest.location).resolve()}"
    parts = urlsplit(dest.location)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return f"Postgres {urlunsplit((parts.scheme, netloc, parts.path, '', ''))}"


# --- reading the warehouse -------------------------------------------------------------------


@contextlib.contextmanager
def reading(dest: Destination) -> Iterator[Any]:
    """A connection to the warehouse, read-only on DuckDB (so an analyst's read-only session
    may stay open beside it), read-write only when this process already holds the file."""
    client = warehouse.sql_client(dest)
    credentials = getattr(client, "credentials", None)
    if dest.name != "duckdb" or not hasattr(credentials, "read_only"):
        with client:
            yield client
        return
    saved = credentials.read_only
    credentials.read_only = True
    try:
        try:
            opened = client.__enter__()
        except Exception as exc:  # noqa: BLE001 - DuckDB refuses a second configuration in one process
            if "different configuration" not in str(exc) and "different configuration" not in str(exc.__cause__):
                raise
            credentials.read_only = saved
            opened = client.__enter__()
        try:
            yield opened
        finally:
            client.__exit__(None, None, None)
    finally:
        credentials.read_only = saved


def _rows(client, sql: str, *args) -> List[tuple]:
    return [tuple(row) for row in client.execute_sql(sql, *args) or []]


def _columns(client, table: str) -> List[str]:
    schema, name = table.split(".")
    return [row[0] for row in _rows(
        client,
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
        "order by ordinal_position", schema, name)]


def _between(column: str, win: Window) -> str:
    return f"{column} between {warehouse.day(win.first)} and {warehouse.day(win.last)}"


@dataclass
class MetricUsage:
    provider: str
    metric: str
    unit: str
    daily: Dict[dt.date, float] = field(default_factory=dict)  # in the fact's unit
    resources: int = 0
    months: List[tuple] = field(default_factory=list)  # (month, through, quantity) for unique_rows

    @property
    def label(self) -> str:
        return readable_unit(self.unit)[0]

    def readable(self, quantity: float) -> float:
        return quantity / readable_unit(self.unit)[1]

    @property
    def additive(self) -> bool:
        return (self.provider, self.metric) not in NOT_ADDITIVE_OVER_DAYS

    @property
    def total(self) -> float:
        return sum(self.daily.values())


@dataclass
class Report:
    """Everything the page shows, read once from the warehouse."""

    dest: Destination
    win: Window
    generated_at: dt.datetime
    tables: set = field(default_factory=set)
    usage: Dict[str, List[MetricUsage]] = field(default_factory=dict)
    top: Dict[str, List[tuple]] = field(default_factory=dict)
    owners_configured: bool = False
    completeness: List[tuple] = field(default_factory=list)  # (provider, account, day, status, missing_from)
    runs: List[dict] = field(default_factory=list)
    cost: List[tuple] = field(default_factory=list)  # (team, provider, currency, cost, unpriced rows)
    cost_rows: int = 0
    budget: Tuple[List[str], List[tuple]] = ([], [])
    anomalies: Tuple[List[str], List[tuple]] = ([], [])


def read_report(dest: Destination, win: Window) -> Report:
    report = Report(dest, win, warehouse.utc_now().replace(microsecond=0))
    with reading(dest) as client:
        report.tables = tables = warehouse.existing_tables(client)
        if FACT in tables:
            _read_usage(client, report)
            _read_top(client, report)
        if COMPLETENESS in tables:
            report.completeness = _rows(
                client, f"select provider, account_id, usage_date, status, missing_from from {COMPLETENESS} "
                        f"where {_between('usage_date', win)} order by provider, account_id, usage_date")
        if RUNS in tables:
            _read_runs(client, report)
        if COST in tables:
            # in the reporting currency where the rate card converts, else in each price's own
            columns = _columns(client, COST)
            cost, currency = (("reporting_cost", "reporting_currency")
                              if {"reporting_cost", "reporting_currency"} <= set(columns) else ("cost", "currency"))
            report.cost = _rows(client, f"""
                select coalesce(team, 'unallocated'), provider, coalesce({currency}, ''), sum({cost}),
                       sum(case when {cost} is null then 1 else 0 end)
                from {COST} where {_between('usage_date', win)}
                group by coalesce(team, 'unallocated'), provider, coalesce({currency}, '')
                order by 1, 2, 3""")
        if BUDGET in tables:
            columns = _columns(client, BUDGET)
            order = "month desc, scope" if {"month", "scope"} <= set(columns) else "1"
            report.budget = columns, _rows(client, f"select * from {BUDGET} order by {order} limit 50")
        if ANOMALIES in tables:
            columns = _columns(client, ANOMALIES)
            where = f"where usage_date <= {warehouse.day(win.last)}" if "usage_date" in columns else ""
            order = "usage_date desc, provider, metric" if "usage_date" in columns else "1"
            report.anomalies = columns, _rows(
                client, f"select * from {ANOMALIES} {where} order by {order} limit {LATEST_ANOMALIES}")
    return report


def _read_usage(client, report: Report) -> None:
    win = report.win
    metrics: Dict[Tuple[str, str, str], MetricUsage] = {}
    for provider, metric, unit, day, quantity in _rows(client, f"""
            select provider, metric, unit, usage_date, sum(quantity)
            from {FACT} where {_between('usage_date', win)}
            group by provider, metric, unit, usage_date"""):
        key = (provider, metric, unit)
        metrics.setdefault(key, MetricUsage(provider, metric, unit)).daily[warehouse.as_date(day)] = float(quantity)
    for provider, metric, unit, resources in _rows(client, f"""
            select provider, metric, unit, count(distinct account_id || '/' || resource_type || '/' || resource_id)
            from {FACT} where {_between('usage_date', win)} group by provider, metric, unit"""):
        metrics[(provider, metric, unit)].resources = int(resources)
    if ADVERITY_MONTHLY in report.tables:
        for month, metric, unit, through, quantity in _rows(client, f"""
                select usage_month, metric, unit, max(through_date), sum(quantity)
                from {ADVERITY_MONTHLY}
                where usage_month between {warehouse.day(win.first.replace(day=1))} and {warehouse.day(win.last)}
                group by usage_month, metric, unit order by usage_month"""):
            usage = metrics.get(("adverity", metric, unit))
            if usage is not None and not usage.additive:
                usage.months.append((warehouse.as_date(month), warehouse.as_date(through), float(quantity)))
    for key in sorted(metrics):
        report.usage.setdefault(key[0], []).append(metrics[key])


def _read_top(client, report: Report) -> None:
    """Per provider and metric the largest resources of the window (Adverity's unique_rows left
    out: they do not add up over days), with names from dim_resource and the team that owns
    each where fct_daily_cost says."""
    win = report.win
    report.owners_configured = COST in report.tables
    dim = DIM in report.tables
    owner = "owners.team" if report.owners_configured else "null"
    owners = f"""
        left join (select provider, account_id, resource_type, resource_id, max(team) as team
                   from {COST} where {_between('usage_date', win)}
                   group by provider, account_id, resource_type, resource_id) as owners
          on owners.provider = ranked.provider and owners.account_id = ranked.account_id
         and owners.resource_type = ranked.resource_type and owners.resource_id = ranked.resource_id
    """ if report.owners_configured else ""
    names = f"""
        left join {DIM} as dim
          on dim.provider = ranked.provider and dim.account_id = ranked.account_id
         and dim.resource_type = ranked.resource_type and dim.resource_id = ranked.resource_id
    """ if dim else ""
    name = "coalesce(dim.resource_name, ranked.resource_name)" if dim else "ranked.resource_name"
    account = "coalesce(dim.account_name, ranked.account_name)" if dim else "ranked.account_name"
    project = "coalesce(dim.project_name, dim.profile_name, dim.plan)" if dim else "null"
    for row in _rows(client, f"""
            with totals as (
                select provider, metric, unit, account_id, resource_type, resource_id,
                       max(resource_name) as resource_name, max(account_name) as account_name,
                       sum(quantity) as quantity
                from {FACT}
                where {_between('usage_date', win)} and not (provider = 'adverity' and metric = 'unique_rows')
                group by provider, metric, unit, account_id, resource_type, resource_id
            ),
            ranked as (
                select *, row_number() over (partition by provider, metric, unit
                                             order by quantity desc, account_id, resource_type, resource_id) as resource_rank
                from totals
            )
            select ranked.provider, ranked.metric, ranked.unit, ranked.resource_rank, ranked.account_id,
                   {account}, ranked.resource_type, ranked.resource_id, {name}, {project}, {owner}, ranked.quantity
            from ranked {names} {owners}
            where ranked.resource_rank <= {TOP_RESOURCES}
            order by ranked.provider, ranked.metric, ranked.unit, ranked.resource_rank"""):
        report.top.setdefault(row[0], []).append(row)


def _read_runs(client, report: Report) -> None:
    has_account = "account" in _columns(client, RUNS)
    account = "coalesce(account, 'default')" if has_account else "'default'"
    for (run_id, command, provider, account_name, status, started, finished, first_day, last_day, days,
         row_count, requests, error) in _rows(client, f"""
            select run_id, command, provider, {account}, status, started_at, finished_at, first_day, last_day,
                   days, row_count, requests, error_message
            from {RUNS} order by started_at desc, provider limit {LAST_RUNS}"""):
        report.runs.append({
            "run": run_id, "command": command, "provider": provider, "account": account_name, "status": status,
            "started": started, "seconds": (finished - started).total_seconds() if started and finished else None,
            "days": f"{first_day or '–'} to {last_day or '–'} ({days or 0})", "rows": row_count,
            "requests": requests, "error": error,
        })


# --- the page ----------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float, decimal.Decimal)):
        return f"{value:,}" if isinstance(value, int) else number(float(value))
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], caption: str = "",
          numeric: Sequence[int] = (), attrs: str = "") -> str:
    """An HTML table; the columns at `numeric` are right-aligned numbers."""
    head = "".join(f'<th scope="col"{" class=num" if i in numeric else ""}>{_e(h)}</th>'
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text = value if isinstance(value, Raw) else _e(_cell(value))
            cls = ' class="num"' if i in numeric else ""
            cells.append(f"<th scope=\"row\"{cls}>{text}</th>" if i == 0 else f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption>{_e(caption)}</caption>" if caption else ""
    return f'<table{attrs}>{caption}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


NUMBERS = (int, float, decimal.Decimal)


def _numeric_columns(rows: Sequence[Sequence[object]]) -> Tuple[int, ...]:
    return tuple(i for i, value in enumerate(rows[0]) if isinstance(value, NUMBERS) and not isinstance(value, bool))


class Raw(str):
    """Markup a table cell takes as it is (already escaped)."""


def nothing(reason: str) -> str:
    return f'<p class="nothing">Nothing to show: {_e(reason)}.</p>'


class Page:
    """The charts' specifications, in the order their containers appear."""

    def __init__(self) -> None:
        self.specs: List[dict] = []

    def chart(self, spec: dict, description: str) -> str:
        spec = {"$schema": "https://vega.github.io/schema/vega-lite/v6.json", "description": description,
                "config": {"font": "system-ui, sans-serif", "view": {"stroke": None}}, **spec}
        self.specs.append(spec)
        return (f'<figure class="chart" id="chart-{len(self.specs) - 1}" data-chart="{len(self.specs) - 1}" '
                f'aria-label="{_e(description)}"><figcaption class="sr">{_e(description)}</figcaption></figure>')


def _x_days(win: Window) -> dict:
    """Every day of the window as a band of its own (a day without rows stays an empty band)."""
    return {"field": "day", "type": "ordinal", "title": None, "scale": {"domain": [d.isoformat() for d in win.days]},
            "axis": {"labelExpr": "utcFormat(toDate(datum.value), '%b %d')", "labelAngle": -50,
                     "labelOverlap": True}}


def usage_section(report: Report, page: Page, provider: str) -> str:
    metrics = report.usage.get(provider, [])
    out = [f'<section id="usage-{provider}" class="provider"><h2>{provider.capitalize()}</h2>']
    if not metrics:
        out.append(nothing(f"no {provider} usage in {FACT} for {report.win}"))
        return "".join(out) + "</section>"
    rows = []
    for usage in metrics:
        if usage.additive:
            total = Raw(f'<span class="total" data-provider="{_e(provider)}" data-metric="{_e(usage.metric)}" '
                        f'data-kind="window">{_e(number(usage.readable(usage.total)))}</span> {_e(usage.label)}')
            raw = Raw(f'<span class="raw-total">{_e(number(usage.total))}</span> {_e(usage.unit)}')
        elif usage.months:
            total = Raw("<br>".join(
                f'{_e(month.strftime("%Y-%m"))}: <span class="total" data-provider="{_e(provider)}" '
                f'data-metric="{_e(usage.metric)}" data-kind="month" data-month="{month.isoformat()}">'
                f'{_e(number(usage.readable(quantity)))}</span> {_e(usage.label)} (through {through})'
                for month, through, quantity in usage.months))
            raw = Raw("<br>".join(f"{_e(number(q))} {_e(usage.unit)}" for _, _, q in usage.months))
        else:
            total = Raw("per month only; no month figure in " + _e(ADVERITY_MONTHLY))
            raw = "–"
        rows.append((usage.metric, total, raw, len(usage.daily), usage.resources))
    out.append(table(["metric", "total of the window", "in the fact's unit", "days with usage", "resources"], rows,
                     caption=f"{provider.capitalize()} totals, {report.win}", numeric=(1, 2, 3, 4),
                     attrs=f' class="totals" data-provider="{_e(provider)}"'))
    if any(not usage.additive for usage in metrics):
        out.append("<p class=\"note\">Adverity counts unique rows per datastream per month, so the days of "
                   "<code>unique_rows</code> do not add up: its totals are Adverity's own month figures (a month "
                   "figure covers its whole month to date, also days outside this window); the chart shows each "
                   "day's own figure.</p>")
    values = [{"day": day.isoformat(), "metric": f"{u.metric} ({u.label})", "value": u.readable(q)}
              for u in metrics for day, q in sorted(u.daily.items())]
    spec = {
        "data": {"values": values},
        "facet": {"row": {"field": "metric", "type": "nominal", "title": None, "sort": [
            f"{u.metric} ({u.label})" for u in metrics],
            "header": {"labelAngle": 0, "labelOrient": "top", "labelAnchor": "start", "labelFontSize": 12,
                       "labelFontWeight": "bold"}}},
        "spec": {"width": 640, "height": 80, "mark": {"type": "bar", "tooltip": True, "color": "#3b6ea5"},
                 "encoding": {"x": _x_days(report.win), "y": {
                     "field": "value", "type": "quantitative", "title": None, "axis": {"format": ",.3~r", "tickCount": 3}},
                     "tooltip": [{"field": "day", "type": "nominal"},
                                 {"field": "metric", "type": "nominal"},
                                 {"field": "value", "type": "quantitative", "format": ",.2f"}]}},
        "resolve": {"scale": {"y": "independent"}},
    }
    out.append(page.chart(spec, f"{provider.capitalize()}: daily usage per metric, {report.win}"))
    days = sorted({day for usage in metrics for day in usage.daily})
    headers = ["day"] + [f"{u.metric} ({u.label})" for u in metrics]
    daily_rows = [[day] + [None if day not in u.daily else u.readable(u.daily[day]) for u in metrics] for day in days]
    out.append("<details class=\"data\"><summary>Daily figures as a table</summary>"
               + table(headers, daily_rows, caption=f"{provider.capitalize()} daily usage (readable units)",
                       numeric=tuple(range(1, len(headers))))
               + "</details>")
    out.append(top_resources(report, provider))
    return "".join(out) + "</section>"


def top_resources(report: Report, provider: str) -> str:
    rows = report.top.get(provider, [])
    out = ["<h3>Top resources</h3>"]
    if not report.owners_configured:
        out.append(f'<p class="note">Owner: no ownership configured ({COST} is not in this warehouse).</p>')
    if not rows:
        return "".join(out) + nothing("no resource usage that adds up over days in this window")
    body = []
    for (_, metric, unit, rank, account_id, account_name, resource_type, resource_id, name, group, team,
         quantity) in rows:
        label, divisor = readable_unit(unit)
        named = f"{_e(name)}<br>" if name and name != resource_id else ""
        resource = Raw(f"{named}<code class=\"id\">{_e(resource_type)} {_e(resource_id)}</code>")
        body.append((metric if rank == 1 else "", rank, resource, account_name or account_id, group,
                     team if report.owners_configured else "no ownership configured",
                     Raw(f"{_e(number(quantity / divisor))} {_e(label)}")))
    out.append(table(["metric", "rank", "resource", "account", "project / profile / plan", "owner (team)",
                      "total of the window"], body,
                     caption=f"{provider.capitalize()}: the {TOP_RESOURCES} largest resources per metric",
                     numeric=(1, 6), attrs=' class="top"'))
    return "".join(out)


def cost_section(report: Report, page: Page) -> str:
    out = ['<section id="cost"><h2>Cost by team and provider</h2>']
    if COST not in report.tables:
        return "".join(out) + nothing(f"no rate card configured ({COST} is not in this warehouse)") + "</section>"
    priced = [row for row in report.cost if row[3] is not None]
    unpriced = sum(int(row[4] or 0) for row in report.cost)
    if not priced:
        return "".join(out) + nothing(f"no usage of {report.win} has a cost: no rate card price matches it "
                                      f"({unpriced:,} usage rows unpriced)") + "</section>"
    currencies = sorted({row[2] for row in priced})
    for currency in currencies:
        rows = [row for row in priced if row[2] == currency]
        values = [{"team": team, "provider": provider, "cost": float(cost)} for team, provider, _, cost, _ in rows]
        out.append(page.chart({
            "data": {"values": values}, "width": 560, "height": {"step": 22},
            "mark": {"type": "bar", "tooltip": True},
            "encoding": {"y": {"field": "team", "type": "nominal", "sort": "-x", "title": "team"},
                         "x": {"field": "cost", "type": "quantitative", "aggregate": "sum",
                               "title": f"cost ({currency})", "axis": {"format": ",.0f"}},
                         "color": {"field": "provider", "type": "nominal", "scale": {"domain": list(PROVIDERS)}},
                         "tooltip": [{"field": "team"}, {"field": "provider"},
                                     {"field": "cost", "type": "quantitative", "format": ",.2f"}]},
        }, f"Cost by team and provider in {currency}, {report.win}"))
        total = sum(float(row[3]) for row in rows)
        out.append(table(["team", "provider", "cost", "currency"],
                         [(team, provider, float(cost), currency) for team, provider, _, cost, _ in rows]
                         + [("all teams", "all", total, currency)],
                         caption=f"Cost by team and provider ({currency})", numeric=(2,)))
    if unpriced:
        out.append(f'<p class="note">{unpriced:,} usage rows of the window have no cost (no rate card price, '
                   "or no exchange rate to the reporting currency); they are left out of the cost.</p>")
    return "".join(out) + "</section>"


BUDGET_SPEND = ("spend_to_date", "spend")
BUDGET_PROJECTED = ("projected_spend", "projected_month_end", "projected")
BUDGET_AMOUNT = ("budget",)


BUDGET_COLUMNS = {"scope", "month", "through_date", "budget", "currency", "spend_to_date", "projected_spend",
                  "projected_month_end", "percent_of_budget", "projected_percent_of_budget", "unpriced_rows"}
"""The budget table's columns the page prints (of analytics.budget_status's contract)."""


def _pick(columns: Sequence[str], names: Sequence[str]) -> Optional[int]:
    for name in names:
        if name in columns:
            return list(columns).index(name)
    return None


def budget_section(report: Report, page: Page) -> str:
    out = ['<section id="budget"><h2>Budget pace</h2>']
    if BUDGET not in report.tables:
        return "".join(out) + nothing(f"no budgets configured ({BUDGET} is not in this warehouse)") + "</section>"
    columns, rows = report.budget
    if not rows:
        return "".join(out) + nothing(f"no budgets configured ({BUDGET} has no rows)") + "</section>"
    scope, month = _pick(columns, ("scope",)), _pick(columns, ("month",))
    spend, projected, budget = (_pick(columns, names) for names in (BUDGET_SPEND, BUDGET_PROJECTED, BUDGET_AMOUNT))
    if None not in (scope, month, spend):
        latest = max(row[month] for row in rows)
        values = []
        for row in rows:
            if row[month] != latest:
                continue
            for index, what in ((spend, "spend to date"), (projected, "projected month end"), (budget, "budget")):
                if index is not None and row[index] is not None:
                    values.append({"scope": str(row[scope]), "what": what, "amount": float(row[index])})
        if values:
            out.append(page.chart({
                "data": {"values": values}, "width": 560, "height": {"step": 16},
                "mark": {"type": "bar", "tooltip": True},
                "encoding": {"y": {"field": "scope", "type": "nominal", "title": None},
                             "yOffset": {"field": "what", "sort": ["spend to date", "projected month end", "budget"]},
                             "x": {"field": "amount", "type": "quantitative", "title": "amount",
                                   "axis": {"format": ",.0f"}},
                             "color": {"field": "what", "type": "nominal", "title": None,
                                       "sort": ["spend to date", "projected month end", "budget"],
                                       "scale": {"range": ["#3b6ea5", "#e69f00", "#999999"]}},
                             "tooltip": [{"field": "scope"}, {"field": "what"},
                                         {"field": "amount", "type": "quantitative", "format": ",.2f"}]},
            }, f"Budget pace of {_cell(latest)}: spend to date and projected month end against budget, per scope"))
    shown = [i for i, name in enumerate(columns) if name in BUDGET_COLUMNS]
    if len(shown) < 3:  # not the columns this page knows: all of them, as they are
        shown = list(range(len(columns)))
    rows = [[row[i] for i in shown] for row in rows]
    out.append(table([columns[i] for i in shown], rows, caption=f"{BUDGET}, latest months first",
                     numeric=_numeric_columns(rows)))
    return "".join(out) + "</section>"


def anomalies_section(report: Report) -> str:
    out = ['<section id="anomalies"><h2>Latest anomalies</h2>']
    if ANOMALIES not in report.tables:
        return "".join(out) + nothing(f"no anomaly detection configured ({ANOMALIES} is not in this warehouse)") + "</section>"
    columns, rows = report.anomalies
    if not rows:
        return "".join(out) + nothing(f"no anomalies up to {report.win.last}") + "</section>"
    out.append(table(columns, rows, caption=f"The {LATEST_ANOMALIES} latest days far from their resource's history",
                     numeric=_numeric_columns(rows)))
    return "".join(out) + "</section>"


STATUS_ORDER = ["loaded", "missing", "not expected"]


def completeness_section(report: Report, page: Page) -> str:
    out = ['<section id="completeness"><h2>Completeness</h2>']
    if COMPLETENESS not in report.tables:
        return "".join(out) + nothing(f"{COMPLETENESS} is not built yet (the nightly job writes it)") + "</section>"
    if not report.completeness:
        return "".join(out) + nothing(f"no expected days in {report.win}") + "</section>"
    order = {provider: n for n, provider in enumerate(PROVIDERS)}
    accounts = sorted({(provider, account) for provider, account, *_ in report.completeness},
                      key=lambda key: (order.get(key[0], len(order)), key))
    several = {provider for provider, _ in accounts if sum(1 for p, _ in accounts if p == provider) > 1}
    label = {key: key[0] if key[0] not in several else f"{key[0]}.{key[1]}" for key in accounts}
    status = {(p, a, warehouse.as_date(d)): s for p, a, d, s, _ in report.completeness}
    values = [{"day": day.isoformat(), "series": label[key],
               "status": status.get((key[0], key[1], day), "not expected"),
               "mark": "✕" if status.get((key[0], key[1], day)) == "missing" else ""}
              for key in accounts for day in report.win.days]
    x = _x_days(report.win)
    out.append(page.chart({
        "data": {"values": values}, "width": {"step": 18}, "height": {"step": 24},
        "encoding": {"x": x, "y": {"field": "series", "type": "nominal", "title": None,
                                      "sort": [label[key] for key in accounts]}},
        "layer": [
            {"mark": {"type": "rect", "stroke": "white", "tooltip": True},
             "encoding": {"color": {"field": "status", "type": "nominal", "title": "status",
                                    "scale": {"domain": STATUS_ORDER, "range": ["#4c9a6a", "#d62728", "#e8e8e8"]}},
                          "tooltip": [{"field": "series", "title": "provider"},
                                      {"field": "day", "type": "nominal"},
                                      {"field": "status"}]}},
            {"mark": {"type": "text", "color": "white", "fontWeight": "bold"},
             "encoding": {"text": {"field": "mark"}}},
        ],
    }, f"Completeness: every day of {report.win} per provider; missing days in red with a cross"))
    rows = []
    for key in accounts:
        days = [(day, status.get((key[0], key[1], day))) for day in report.win.days]
        missing = [day.isoformat() for day, s in days if s == "missing"]
        rows.append((label[key], sum(1 for _, s in days if s == "loaded"), len(missing),
                     sum(1 for _, s in days if s is None), ", ".join(missing) or "none"))
    out.append(table(["provider", "days loaded", "days missing", "days not expected", "missing days"], rows,
                     caption="Completeness per provider account (not expected: before the account's start)",
                     numeric=(1, 2, 3), attrs=' class="completeness"'))
    return "".join(out) + "</section>"


def runs_section(report: Report) -> str:
    out = ['<section id="runs"><h2>Last runs</h2>']
    if RUNS not in report.tables:
        return "".join(out) + nothing(f"no runs recorded ({RUNS} is not in this warehouse)") + "</section>"
    if not report.runs:
        return "".join(out) + nothing("no runs recorded yet") + "</section>"
    rows = [(run["started"], run["command"], run["provider"], run["account"],
             Raw(f'<span class="status status-{_e(run["status"])}">{_e(run["status"])}</span>'),
             None if run["seconds"] is None else f"{run['seconds']:.1f} s", run["days"], run["rows"],
             run["requests"], run["error"] or "", run["run"]) for run in report.runs]
    out.append(table(["started (UTC)", "command", "provider", "account", "status", "duration", "days asked",
                      "raw rows", "requests", "error", "run"], rows,
                     caption=f"The {LAST_RUNS} latest provider runs of {RUNS}", numeric=(5, 7, 8)))
    return "".join(out) + "</section>"


STYLE = """
:root { color-scheme: light; --ink: #1d2329; --muted: #56606b; --line: #d5dbe1; --accent: #3b6ea5; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); margin: 0 auto; padding: 1.5rem; max-width: 1100px; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.3rem; border-bottom: 2px solid var(--line); padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
.meta { color: var(--muted); margin: 0; }
nav ul { display: flex; flex-wrap: wrap; gap: .3rem 1rem; padding: 0; list-style: none; }
a { color: var(--accent); }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: .2rem 0; color: var(--muted); }
th, td { border-bottom: 1px solid var(--line); padding: .25rem .6rem; text-align: left; vertical-align: top; }
thead th { border-bottom: 2px solid var(--ink); }
tbody th { font-weight: normal; }
.num { text-align: right; white-space: nowrap; }
code.id { font-size: .75rem; color: var(--muted); word-break: break-all; }
.nothing { padding: .7rem 1rem; background: #f4f6f8; border-left: 4px solid var(--line); }
.note { color: var(--muted); font-size: .9rem; }
.status-failed { color: #b00020; font-weight: 700; }
.status-ok { color: #2f6b45; }
figure.chart { margin: .5rem 0; overflow-x: auto; min-height: 40px; }
details.data > summary { cursor: pointer; color: var(--accent); }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  nav, details.data > summary { display: none; }
  section { break-inside: auto; }
  figure.chart, table, h2, h3 { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  a { color: inherit; text-decoration: none; }
  figure.chart svg { max-width: 100%; height: auto; }
}
"""

DRAW = """
(function () {
  var specs = JSON.parse(document.getElementById("chart-specs").textContent);
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var spec = specs[Number(el.getAttribute("data-chart"))];
    vegaEmbed(el, spec, {renderer: "svg", actions: false}).then(function () {
      el.setAttribute("data-drawn", "true");
    }).catch(function (err) {
      el.setAttribute("data-drawn", "failed");
      el.insertAdjacentHTML("beforeend", "<p class=nothing>This chart could not be drawn; its table has the figures.</p>");
      console.error(err);
    });
  });
  // printed pages show every table, whether or not its toggle was opened
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.setAttribute("open", ""); });
  });
})();
"""


@functools.lru_cache(maxsize=1)
def vega_javascript() -> str:
    """Vega, Vega-Lite and Vega-Embed in one script, as vl-convert bundles them (no network).

    Bundling takes seconds, so the bundle is kept in the user's cache folder, one file per
    vl-convert version (the versions of the libraries it bundles); a cache that cannot be
    written only costs the time."""
    from importlib.metadata import version

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "usage-elt"
    path = cache / f"vega-bundle-vl-convert-{version('vl-convert-python')}.js"
    with contextlib.suppress(OSError):
        cached = path.read_text(encoding="utf-8")
        if "vegaEmbed" in cached:  # not a file cut short
            return cached
    import vl_convert

    bundle = vl_convert.javascript_bundle().replace("</script", "<\\/script")
    with contextlib.suppress(OSError):
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_text(bundle, encoding="utf-8")
        partial.replace(path)
    return bundle


def _script_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def render(report: Report) -> str:
    page = Page()
    providers = [p for p in PROVIDERS if p in report.usage] + sorted(set(report.usage) - set(PROVIDERS))
    shown = providers or list(PROVIDERS)
    sections = []
    if FACT not in report.tables:
        sections.append('<section id="usage"><h2>Usage</h2>'
                        + nothing(f"{FACT} is not built yet; run `make nightly`") + "</section>")
    elif not report.usage:
        sections.append('<section id="usage"><h2>Usage</h2>'
                        + nothing(f"no usage in {FACT} for {report.win}") + "</section>")
    else:
        sections += [usage_section(report, page, provider) for provider in shown]
    sections += [cost_section(report, page), budget_section(report, page), anomalies_section(report),
                 completeness_section(report, page), runs_section(report)]
    nav = "".join(f'<li><a href="#{anchor}">{_e(title)}</a></li>' for anchor, title in (
        [(f"usage-{p}", p.capitalize()) for p in providers] or [("usage", "Usage")])
        + [("cost", "Cost"), ("budget", "Budget"), ("anomalies", "Anomalies"), ("completeness", "Completeness"),
           ("runs", "Runs")])
    scripts = ""
    if page.specs:
        scripts = (f'<script type="application/json" id="chart-specs">{_script_json(page.specs)}</script>'
                   f"<script>{vega_javascript()}</script><script>{DRAW}</script>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Usage report {report.win.first} to {report.win.last}</title>
<style>{STYLE}</style></head>
<body>
<header><h1>Usage report</h1>
<p class="meta">Window: <strong id="window">{_e(report.win)}</strong></p>
<p class="meta">Generated <span id="generated">{_e(report.generated_at.isoformat(sep=' '))} UTC</span> from
<span id="warehouse">{_e(shown_location(report.dest))}</span></p>
<p class="note">Usage is leaf usage of {FACT}: a metric's total adds up over days and resources, one metric at a
time. Units: CU-hours and hours are 3,600 seconds; GB is 10<sup>9</sup> bytes; million rows is 10<sup>6</sup> rows.</p>
<nav aria-label="sections"><ul>{nav}</ul></nav></header>
<main>{"".join(sections)}</main>
{scripts}
</body></html>
"""


def write_report(dest: Destination, out: Path | str = DEFAULT_OUT, days: int = DEFAULT_DAYS,
                 start: Optional[str] = None, end: Optional[str] = None) -> Path:
    """Read the warehouse for the window and write the page to `out` (its folder made when
    missing); the path written. For `nightly --report` and `python -m pipelines report`."""
    win = window(days, start, end)
    page = render(read_report(dest, win))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(out)  # a reader never sees half a page
    return out


def _parser() -> argparse.ArgumentParser:
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    parser = argparse.ArgumentParser(prog=f"{'usage-elt' if invoked == 'usage-elt' else 'python -m pipelines'} report",
                                     description="write one self-contained HTML usage report of the warehouse")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"the HTML file to write (default {DEFAULT_OUT})")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS,
                        help=f"complete UTC days through yesterday, or from --start / up to --end (default {DEFAULT_DAYS})")
    parser.add_argument("--start", default=None, help="first day YYYY-MM-DD (inclusive)")
    parser.add_argument("--end", default=None, help="last day YYYY-MM-DD (inclusive)")
    parser.add_argument("--destination", default=None, help="duckdb (default) or postgres; env DESTINATION")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m pipelines report`: exit 0 written, 2 configuration error, 3 warehouse busy,
    1 anything else."""
    from pipelines.lock import LockBusy, busy_behind

    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    dest = None
    try:
        win = window(args.days, args.start, args.end)  # a bad window is an error before connecting
        dest = config.destination(args.destination)
        if dest.name == "duckdb" and not Path(dest.location).exists():
            raise config.ConfigError(
                f"the DuckDB warehouse {dest.location} does not exist; set DESTINATION__DUCKDB__CREDENTIALS to "
                "the warehouse's path, or create it with `make nightly`")
        out = write_report(dest, args.out, args.days, win.first.isoformat(), win.last.isoformat())
    except config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return config.EXIT_CONFIG
    except LockBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return config.EXIT_LOCKED
    except Exception as exc:  # noqa: BLE001 - one line, as every command
        busy = busy_behind(exc, dest) if dest is not None else None
        if busy is not None:
            print(f"error: {busy}", file=sys.stderr)
            return config.EXIT_LOCKED
        print(f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return config.EXIT_FAILED
    print(f"report: {out} ({out.stat().st_size / 1e6:.2f} MB), {win}")
    return config.EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
