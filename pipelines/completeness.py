"""Which days the warehouse holds: what was read from each API, and what reached the facts.

- `analytics.load_coverage`: one row per provider account and day that a successful load read
  from the API (the windows the sources asked for, noted in their load packages), whether the
  day had usage or not (`had_rows`). A day whose load never committed has no row, so it cannot
  pass for loaded; a day read with usage that the raw tables no longer hold is missing too.
- `analytics.usage_completeness`: one row per expected day of every provider account, from the
  account's start (its START_DATE, else the first day ever read) through yesterday: `loaded`
  when the day was read and its facts are built, else `missing` (and `missing_from` says
  whether the raw data or the facts lack it).

The nightly reads missing raw days again while the API still serves them and rebuilds missing
fact days (`models.build_pending`); what stays missing fails the nightly and `check`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from pipelines import models, warehouse
from pipelines.config import DEFAULT_ACCOUNT, check_provider, dataset_of, env_name, label_of, oldest_servable_day, split_label
from sources import windows

COVERAGE = f"{models.SCHEMA}.load_coverage"
COMPLETENESS = f"{models.SCHEMA}.usage_completeness"

CREATE_COVERAGE = f"""
create table if not exists {COVERAGE} (
    provider varchar not null,
    account_id varchar not null,
    usage_date date not null,
    had_rows boolean not null,
    load_id varchar,
    run_id varchar,
    recorded_at timestamp not null
)
"""
CREATE_COMPLETENESS = f"""
create table if not exists {COMPLETENESS} (
    usage_date date not null,
    provider varchar not null,
    account_id varchar not null,
    status varchar not null,
    missing_from varchar,
    rows bigint not null,
    load_id varchar,
    run_id varchar
)
"""
COVERAGE_COLUMNS = ("provider", "account_id", "usage_date", "had_rows", "load_id", "run_id", "recorded_at")


@dataclass
class AccountDays:
    """One provider account's expected days and the ones it lacks."""

    provider: str
    account_id: str = DEFAULT_ACCOUNT
    start: Optional[dt.date] = None
    """The first expected day; None when nothing is expected yet (never loaded)."""
    missing_raw: List[dt.date] = field(default_factory=list)
    missing_facts: List[dt.date] = field(default_factory=list)


def ensure_tables(client, providers: Sequence[str]) -> None:
    """Create the tables; a warehouse loaded before coverage was recorded gets its coverage
    from the days its raw tables hold, so an upgrade does not read all of history again."""
    client.execute_sql(f"create schema if not exists {models.SCHEMA}")
    tables = warehouse.existing_tables(client)
    if COVERAGE not in tables:
        client.execute_sql(CREATE_COVERAGE)
        seeded: Dict[tuple, tuple] = {}
        for provider in providers:
            for table in models.dataset_tables(client, dataset_of(provider), tables):
                for day, load_id in client.execute_sql(f"select usage_date, max(_dlt_load_id) from {table} group by usage_date"):
                    key = (provider, DEFAULT_ACCOUNT, warehouse.as_date(day))
                    seeded[key] = (*key, True, load_id, None, warehouse.utc_now())
        warehouse.insert_rows(client, COVERAGE, COVERAGE_COLUMNS, seeded.values())
    client.execute_sql(CREATE_COMPLETENESS)
    if "row_count" in {name for name, _ in warehouse.columns(client, COMPLETENESS)}:  # its name before the contract named it
        client.execute_sql(f"alter table {COMPLETENESS} rename column row_count to rows")


def record_coverage(client, provider: str, days: Iterable[dt.date], with_rows: Iterable[dt.date],
                    load_id: Optional[str], run_id: str, account_id: str = DEFAULT_ACCOUNT) -> None:
    """Note `days` as read from the API by the run (one row per account and day, the latest),
    and which of them had usage (`with_rows`): such a day gone from the raw tables is missing."""
    days = sorted(set(days))
    with_rows = set(with_rows)
    if not days:
        return
    for window in windows.ranges(days):
        client.execute_sql(
            f"delete from {COVERAGE} where provider = {warehouse.literal(provider)} and account_id = {warehouse.literal(account_id)} "
            f"and usage_date between {warehouse.literal(window.first)} and {warehouse.literal(window.last)}"
        )
    warehouse.insert_rows(client, COVERAGE, COVERAGE_COLUMNS, [(provider, account_id, day, day in with_rows, load_id, run_id, warehouse.utc_now()) for day in days])


def covered_days(client, provider: str, account_id: str = DEFAULT_ACCOUNT) -> Dict[dt.date, tuple]:
    """{day: (had_rows, load_id, run_id)} of every day a successful load read."""
    rows = client.execute_sql(
        f"select usage_date, had_rows, load_id, run_id from {COVERAGE} "
        f"where provider = {warehouse.literal(provider)} and account_id = {warehouse.literal(account_id)}"
    )
    return {warehouse.as_date(day): (bool(had_rows), load_id, run_id) for day, had_rows, load_id, run_id in rows}


def raw_days(client, dataset: str, tables: set) -> set:
    """The days the raw tables of one dataset (one provider account's) hold rows for."""
    found: set = set()
    for table in models.dataset_tables(client, dataset, tables):
        found.update(warehouse.as_date(day) for (day,) in client.execute_sql(f"select distinct usage_date from {table}"))
    return found


def _is_missing_raw(day: dt.date, covered: Dict[dt.date, tuple], in_raw: set) -> bool:
    """Never read, or read with usage that the raw tables no longer hold."""
    return day not in covered or (covered[day][0] and day not in in_raw)


def _account_days(client, label: str, configured_start: Optional[dt.date], yesterday: dt.date,
                  tables: set) -> Tuple[Optional[dt.date], Dict[dt.date, tuple], set]:
    """(the account's first expected day, its covered days, the days its raw tables hold): the
    start is its START_DATE, else the first day ever read; None when nothing is expected yet."""
    provider, account_id = split_label(label)
    covered = covered_days(client, provider, account_id)
    start = configured_start or (min(covered) if covered else None)
    if start is None or start > yesterday:
        return None, covered, set()
    return start, covered, raw_days(client, dataset_of(label), tables)


def missing_raw_days(client, label: str, configured_start: Optional[dt.date],
                     yesterday: Optional[dt.date] = None) -> List[dt.date]:
    """Expected days of the account that the raw tables lack."""
    yesterday = yesterday or windows.last_complete_day()
    start, covered, in_raw = _account_days(client, label, configured_start, yesterday, warehouse.existing_tables(client))
    if start is None:
        return []
    return [day for day in windows.days(start, yesterday) if _is_missing_raw(day, covered, in_raw)]


def refresh(client, accounts: Mapping[str, Optional[dt.date]], yesterday: Optional[dt.date] = None) -> List[AccountDays]:
    """Rewrite `usage_completeness` for these provider accounts ({account label: configured
    START_DATE or None}) and return each account's missing days."""
    yesterday = yesterday or windows.last_complete_day()
    ensure_tables(client, sorted({split_label(label)[0] for label in accounts}))
    tables = warehouse.existing_tables(client)
    fact_table = f"{models.SCHEMA}.fct_daily_usage"
    out: List[AccountDays] = []
    rows_out = []
    for label, configured_start in accounts.items():
        provider, account_id = split_label(label)
        account = AccountDays(provider, account_id)
        account.start, covered, in_raw = _account_days(client, label, configured_start, yesterday, tables)
        out.append(account)
        if account.start is None:
            continue
        _, pending = models.pending_days(client, provider, tables)
        pending_set = set(pending)
        fact_rows: Dict[dt.date, int] = {}
        if fact_table in tables:
            fact_rows = {
                warehouse.as_date(day): int(n)
                for day, n in client.execute_sql(
                    f"select usage_date, count(*) from {fact_table} where provider = {warehouse.literal(provider)} "
                    f"and usage_date between {warehouse.literal(account.start)} and {warehouse.literal(yesterday)} group by usage_date"
                )
            }
        for day in windows.days(account.start, yesterday):
            _, load_id, run_id = covered.get(day, (None, None, None))
            if _is_missing_raw(day, covered, in_raw):
                account.missing_raw.append(day)
                missing_from = "raw"
            elif day in pending_set:
                account.missing_facts.append(day)
                missing_from = "facts"
            else:
                missing_from = None
            status = "missing" if missing_from else "loaded"
            rows_out.append((day, provider, account.account_id, status, missing_from, fact_rows.get(day, 0), load_id, run_id))
    with client.begin_transaction():
        if accounts:
            listed = ", ".join(warehouse.literal(split_label(label)[0]) for label in accounts)
            client.execute_sql(f"delete from {COMPLETENESS} where provider in ({listed})")
        warehouse.insert_rows(client, COMPLETENESS,
                ("usage_date", "provider", "account_id", "status", "missing_from", "rows", "load_id", "run_id"), rows_out)
    return out


def expectations(labels: Sequence[str]) -> Tuple[Dict[str, Optional[dt.date]], Dict[str, Optional[dt.date]]]:
    """For these account labels: ({label: its START_DATE or None}, {label: the oldest day its API
    still serves or None}), what `refresh`, `holes_to_repair` and `problems` are asked with."""
    starts = {label: check_provider(label).start_date for label in labels}
    return starts, {label: oldest_servable_day(label) for label in labels}


def problems(accounts: Sequence[AccountDays], oldest_servable: Mapping[str, Optional[dt.date]]) -> List[str]:
    """One line per account with missing days, naming provider, account, days and what to do."""
    lines = []
    for account in accounts:
        who = f"{account.provider} (account {account.account_id})"
        label = label_of(account.provider, account.account_id)
        dataset = dataset_of(label)
        if account.missing_raw:
            oldest = oldest_servable.get(label)
            gone = [day for day in account.missing_raw if oldest is not None and day < oldest]
            servable = [day for day in account.missing_raw if day not in gone]
            if servable:
                lines.append(
                    f"completeness: {who} is missing {windows.describe_days(servable)} in {dataset}; "
                    "the next nightly reads them again (or run a backfill for them)"
                )
            if gone:
                lines.append(
                    f"completeness: {who} is missing {windows.describe_days(gone)} in {dataset}, which "
                    f"the API no longer serves (oldest day it serves: {oldest}); they cannot be recovered: set "
                    f"{env_name(label, 'start_date')}={oldest} to accept the gap"
                )
        if account.missing_facts:
            lines.append(
                f"completeness: {who} has {windows.describe_days(account.missing_facts)} in {dataset} but "
                f"not built into analytics.fct_daily_usage; fix what failed the model build and run `make models`"
            )
    return lines


def holes_to_repair(client, accounts: Mapping[str, Optional[dt.date]],
                    oldest_servable: Mapping[str, Optional[dt.date]]) -> Dict[str, List[windows.Window]]:
    """Per account label, the missing raw days its API still serves, as windows of
    consecutive days."""
    ensure_tables(client, sorted({split_label(label)[0] for label in accounts}))
    out = {}
    for label, configured_start in accounts.items():
        oldest = oldest_servable.get(label)
        days = [day for day in missing_raw_days(client, label, configured_start) if oldest is None or day >= oldest]
        if days:
            out[label] = windows.ranges(days)
    return out
