"""What a run did (`RunReport`: the summary, the exit code) and its record: one row per provider
account per nightly/backfill run in `analytics.load_runs`."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Dict, List, Optional, Sequence

from pipelines import completeness, config, models, warehouse
from pipelines.config import Destination, label_of, split_label
from pipelines.load import LoadResult, load_provider
from sources import windows

CREATE = """
create table if not exists analytics.load_runs (
    run_id varchar not null,
    command varchar not null,
    provider varchar not null,
    started_at timestamp not null,
    finished_at timestamp not null,
    status varchar not null,
    first_day date,
    last_day date,
    days integer not null,
    row_count bigint not null,
    requests integer not null,
    error_message varchar,
    account varchar
)
"""
ADD_ACCOUNT = "alter table analytics.load_runs add column if not exists account varchar"
"""Tables made before accounts came get the column (their rows are each provider's one account)."""


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def record(dest: Destination, run_id: str, command: str, started_at: dt.datetime, results: Sequence) -> None:
    """Write one row per provider result (a `LoadResult`)."""
    finished_at = warehouse.utc_now()
    with warehouse.sql_client(dest) as client:
        client.execute_sql(f"create schema if not exists {models.SCHEMA}")
        client.execute_sql(CREATE)
        client.execute_sql(ADD_ACCOUNT)
        for r in results:
            provider, account = split_label(r.provider)
            client.execute_sql(
                "insert into analytics.load_runs (run_id, command, provider, started_at, finished_at, status, first_day, "
                "last_day, days, row_count, requests, error_message, account) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                run_id, command, provider, started_at.replace(tzinfo=None), finished_at, r.status,
                r.first_day, r.last_day, len(r.days), r.rows, r.requests, r.error, account,
            )


def status_lines(dest: Destination, limit: int = 12) -> List[str]:
    """The last runs and each provider's freshest complete day, for `make status`."""
    with warehouse.sql_client(dest) as client:
        tables = warehouse.existing_tables(client)
        if "analytics.load_runs" not in tables:
            return [f"no runs recorded in {dest.location} yet; run `make nightly`"]
        has_account = bool(client.execute_sql(
            "select 1 from information_schema.columns where table_schema = 'analytics' "
            "and table_name = 'load_runs' and column_name = 'account'"))
        account = "coalesce(account, 'default')" if has_account else "'default'"
        runs = client.execute_sql(
            f"select started_at, command, provider, {account}, status, first_day, last_day, row_count, "
            "requests, error_message from analytics.load_runs order by started_at desc, provider limit %s",
            limit,
        )
        freshest = {}
        if "analytics.fct_daily_usage" in tables:
            freshest = dict(client.execute_sql("select provider, max(usage_date) from analytics.fct_daily_usage group by provider"))
        last_ok = dict(
            client.execute_sql("select provider, max(finished_at) from analytics.load_runs where status = 'ok' group by provider")
        )
        days = {}
        if completeness.COMPLETENESS in tables:
            for provider, account, day, status, missing_from in client.execute_sql(
                f"select provider, account_id, usage_date, status, missing_from from {completeness.COMPLETENESS}"
            ):
                days.setdefault((provider, account), []).append((day, status, missing_from))
    lines = [f"warehouse: {dest.location}", "", "provider   freshest day  last successful run"]
    for provider in sorted(set(freshest) | set(last_ok)):
        day = freshest.get(provider)
        ok = last_ok.get(provider)
        lines.append(f"{provider:<10} {str(day or '-'):<13} {ok.strftime('%Y-%m-%d %H:%M:%S') + ' UTC' if ok else '-'}")
    if days:
        lines += ["", f"{'provider':<10} {'account':<12} {'complete through':<17} missing days"]
    for (provider, account), rows in sorted(days.items()):
        missing = sorted(day for day, status, _ in rows if status != "loaded")
        loaded = sorted(day for day, status, _ in rows if status == "loaded")
        through = next((day for day in reversed(loaded) if not missing or day < missing[0]), None) if loaded else None
        where = sorted({source for _, status, source in rows if status != "loaded" and source})
        text = f"{windows.describe_days(missing)} (not in {' or '.join(where)})" if missing else "none"
        lines.append(f"{provider:<10} {account:<12} {str(through or '-'):<17} {text}")
    lines += ["", "last runs:", f"{'started (UTC)':<20} {'command':<9} {'provider':<9} {'status':<7} {'days':<23} {'rows':>8} {'requests':>8}"]
    for started, command, provider, account, status, first, last, rows, requests, error in runs:
        span = f"{first}..{last}" if first else "-"
        lines.append(f"{started.strftime('%Y-%m-%d %H:%M:%S'):<20} {command:<9} {label_of(provider, account):<9} {status:<7} "
                     f"{span:<23} {rows:>8} {requests:>8}")
        if error:
            lines.append(f"{'':<20} error: {error}")
    return lines


def fact_summary_lines(dest: Destination) -> List[str]:
    """A short picture of analytics.fct_daily_usage: per provider and metric, days and totals."""
    with warehouse.sql_client(dest) as client:
        if "analytics.fct_daily_usage" not in warehouse.existing_tables(client):
            return ["analytics.fct_daily_usage is not built yet"]
        rows = client.execute_sql(
            "select provider, metric, unit, count(*), count(distinct usage_date), min(usage_date), max(usage_date), "
            "count(distinct resource_id), sum(quantity) from analytics.fct_daily_usage "
            "group by provider, metric, unit order by provider, metric"
        )
    lines = [
        "analytics.fct_daily_usage",
        f"{'provider':<9} {'metric':<32} {'unit':<13} {'rows':>7} {'days':>5} {'from':>11} {'to':>11} {'resources':>9} {'total':>18}",
    ]
    for provider, metric, unit, n, days, first, last, resources, total in rows:
        lines.append(
            f"{provider:<9} {metric:<32} {unit:<13} {n:>7} {days:>5} {str(first):>11} {str(last):>11} {resources:>9} {total:>18,.1f}"
        )
    return lines


log = logging.getLogger("pipelines")


class RunReport:
    """What a nightly or backfill run did, for the summary, the exit code and load_runs."""

    def __init__(self, command: str, dest: config.Destination, skipped: Optional[Dict[str, str]] = None):
        self.command = command
        self.destination = dest
        self.started_at = dt.datetime.now(dt.timezone.utc)
        self.results: List[LoadResult] = []
        self.skipped = skipped or {}
        self.model_errors: List[str] = []
        self.models_built: Optional[models.BuildReport] = None
        self.repaired: Dict[str, List[windows.Window]] = {}
        self.problems: List[str] = []
        self.run_id = new_run_id()

    def finish(self, check: bool, repair: bool = False) -> None:
        """Note the days read, read missing days again (`repair`), rebuild every fact day not
        built yet, check (`check`: completeness and the model tests) and record the run."""
        accounts, oldest = completeness.expectations([r.provider for r in self.results])
        self._record_coverage(self.results)
        if repair:
            self._repair(accounts, oldest)
        built = models.build_pending(self.destination)
        self.models_built = built
        self.model_errors = built.errors
        for error in self.model_errors:
            log.error(error)
        with warehouse.sql_client(self.destination) as client:
            missing = completeness.refresh(client, accounts)
        if check:
            self.problems = completeness.problems(missing, oldest) + models.test_all(self.destination)
        record(self.destination, self.run_id, self.command, self.started_at, self.results)

    def _record_coverage(self, results: Sequence[LoadResult]) -> None:
        with warehouse.sql_client(self.destination) as client:
            completeness.ensure_tables(client, [config.split_label(r.provider)[0] for r in self.results])
            for r in results:
                if r.covered:
                    provider, account = config.split_label(r.provider)
                    completeness.record_coverage(client, provider, r.covered, r.days, max(r.load_ids, default=None),
                                                 self.run_id, account)

    def _repair(self, accounts: Dict[str, Optional[dt.date]], oldest: Dict[str, Optional[dt.date]]) -> None:
        """Read again, statelessly, the missing days that the APIs still serve, for every
        provider that loaded tonight (one that is down would only fail again)."""
        from pipelines.backfill import chunk_days

        healthy = {r.provider: r for r in self.results if r.status == "ok"}
        with warehouse.sql_client(self.destination) as client:
            holes = completeness.holes_to_repair(client, {p: s for p, s in accounts.items() if p in healthy}, oldest)
        for provider, holes_of in holes.items():
            log.info("%s: reading missing days again: %s", provider, ", ".join(map(str, holes_of)))
            for hole in holes_of:
                for chunk in windows.split(hole.first, hole.last, chunk_days(provider)):
                    part = load_provider(provider, dest=self.destination, start_date=chunk.first, end_date=chunk.last)
                    healthy[provider].add(part)
                    self._record_coverage([part])
                    if part.status != "ok":
                        break
            self.repaired[provider] = holes_of

    @property
    def failed(self) -> List[LoadResult]:
        return [r for r in self.results if r.status != "ok"]

    @property
    def exit_code(self) -> int:
        ok = self.results and not self.failed and not self.model_errors and not self.problems
        return config.EXIT_OK if ok else config.EXIT_FAILED

    def lines(self) -> List[str]:
        out = [f"{'provider':<10} {'status':<7} {'rows':>9} {'days':>5} {'first day':>11} {'last day':>11} {'requests':>9} {'seconds':>8}"]
        for r in self.results:
            first = r.first_day.isoformat() if r.first_day else "-"
            last = r.last_day.isoformat() if r.last_day else "-"
            out.append(f"{r.provider:<10} {r.status:<7} {r.rows:>9} {len(r.days):>5} {first:>11} {last:>11} {r.requests:>9} {r.seconds:>8.1f}")
        for provider, key in self.skipped.items():
            out.append(f"{provider:<10} skipped (not configured: {key} is not set)")
        for provider, holes in self.repaired.items():
            out.append(f"{provider}: read missing days again: {', '.join(map(str, holes))}")
        for r in self.failed:
            out.append(f"FAILED {r.error}")
        b = self.models_built
        if b is not None:
            span = f"{b.start}..{b.end}" if b.start is not None else "no day needed rebuilding"
            out.append(f"models: {len(b.models)} built; analytics.fct_daily_usage {span}: {b.rows} rows")
        out.extend(f"FAILED {error}" for error in self.model_errors)
        out.extend(f"CHECK FAILED {problem}" for problem in self.problems)
        if not self.results:
            out.append("no provider is configured: set SOURCES__<PROVIDER>__API_KEY (see README)")
        return out
