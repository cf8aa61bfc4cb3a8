"""What a run did (`RunReport`: the summary, the exit code) and its record: one row per provider
account per nightly/backfill run in `analytics.load_runs`, however the run ends (done, failed in
a late step, stopped by a signal or a lost lock)."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import logging
import uuid
from typing import Dict, Iterator, List, Optional, Sequence

from pipelines import completeness, config, drift, models, stop, warehouse
from pipelines.config import Destination, label_of, split_label
from pipelines.load import LoadResult, disk_full, load_provider
from sources import windows
from sources.http import REQUESTS_SENT
from sources.lines import one_line

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
    account varchar,
    warning varchar,
    schema_changes varchar
)
"""
ADDED_COLUMNS = ("account", "warning", "schema_changes")
"""Columns added since the table was first made: tables made before get them (null in their rows)."""


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def record(dest: Destination, run_id: str, command: str, started_at: dt.datetime, results: Sequence) -> None:
    """Write one row per provider result (a `LoadResult`), all of them or none."""
    finished_at = warehouse.utc_now()
    with warehouse.sql_client(dest) as client:
        client.execute_sql(f"create schema if not exists {models.SCHEMA}")
        client.execute_sql(CREATE)
        # only those missing: an ALTER waits for every session reading load_runs, even with nothing to add
        present = {name for name, _ in warehouse.columns(client, "analytics.load_runs")}
        for column in ADDED_COLUMNS:
            if column not in present:
                client.execute_sql(f"alter table analytics.load_runs add column {column} varchar")
        with client.begin_transaction():
            _insert_runs(client, run_id, command, started_at, finished_at, results)


def _insert_runs(client, run_id: str, command: str, started_at: dt.datetime, finished_at: dt.datetime,
                 results: Sequence) -> None:
    for r in results:
        provider, account = split_label(r.provider)
        client.execute_sql(
            "insert into analytics.load_runs (run_id, command, provider, started_at, finished_at, status, first_day, "
            "last_day, days, row_count, requests, error_message, account, warning, schema_changes) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            run_id, command, provider, started_at.replace(tzinfo=None), finished_at, r.status,
            r.first_day, r.last_day, len(r.days), r.rows, r.requests, r.error, account, getattr(r, "warning", None),
            getattr(r, "schema_changes", None),
        )


def status_lines(dest: Destination, limit: int = 12, providers: Optional[Sequence[str]] = None) -> List[str]:
    """The last runs and each provider's freshest complete day, for `make status` (only these
    providers' when given)."""
    names = sorted({split_label(label)[0] for label in providers or ()})
    chosen = f"provider in ({', '.join(map(warehouse.text, names))})" if names else ""
    only = f" where {chosen}" if chosen else ""
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
            f"requests, error_message from analytics.load_runs{only} order by started_at desc, provider limit %s",
            limit,
        )
        freshest = {}
        if "analytics.fct_daily_usage" in tables:
            freshest = dict(client.execute_sql(f"select provider, max(usage_date) from analytics.fct_daily_usage{only} group by provider"))
        last_ok = dict(client.execute_sql(
            f"select provider, max(finished_at) from analytics.load_runs where status = 'ok'{' and ' + chosen if chosen else ''} "
            "group by provider"
        ))
        days = {}
        if completeness.COMPLETENESS in tables:
            for provider, account, day, status, missing_from in client.execute_sql(
                f"select provider, account_id, usage_date, status, missing_from from {completeness.COMPLETENESS}{only}"
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
    lines += ["", "last runs:", f"{'started (UTC)':<20} {'command':<9} {'provider':<9} {'status':<11} {'days':<23} {'rows':>8} {'requests':>8}"]
    for started, command, provider, account, status, first, last, rows, requests, error in runs:
        span = f"{first}..{last}" if first else "-"
        lines.append(f"{started.strftime('%Y-%m-%d %H:%M:%S'):<20} {command:<9} {label_of(provider, account):<9} {status:<11} "
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
    """What a nightly or backfill run did, for the summary, the exit code and load_runs.

    The loads say what they are doing (`begin`, `loaded`), from whatever thread they run on, so
    that a run that ends early still records every provider account it was to load: with what
    it loaded so far, the step the run was in, and why it ended (`recorded`)."""

    def __init__(self, command: str, dest: config.Destination, skipped: Optional[Dict[str, str]] = None,
                 accounts: Sequence[str] = ()):
        self.command = command
        self.destination = dest
        self.started_at = dt.datetime.now(dt.timezone.utc)
        self.accounts: List[str] = list(accounts)
        """The provider accounts (labels) the run is to load: each gets its row in load_runs."""
        self.results: List[LoadResult] = []
        self.skipped = skipped or {}
        self.model_errors: List[str] = []
        self.models_built: Optional[models.BuildReport] = None
        self.repaired: Dict[str, List[windows.Window]] = {}
        self.problems: List[str] = []
        self.checked = False
        """Whether the checks (completeness, the model tests) ran."""
        self.run_id = new_run_id()
        self.step = "load"
        """The step the run is in: load, coverage, repair, models, checks, record."""
        self.so_far: Dict[str, LoadResult] = {}
        """Per account, what its load has brought so far (its result once done)."""
        self.loading: Dict[str, str] = {}
        """The accounts being loaded now, each with what of it (a backfill's window)."""
        self._requests_at: Dict[str, int] = {}
        self._recorded = False
        self.late_failure: Optional[str] = None
        """Why a step after the loads (coverage, models, checks, the record) ended the run."""
        # the record's connection made now, while the disk has room for dlt's files: a run that
        # fills the disk still writes its rows to load_runs
        warehouse.sql_client(dest)

    # -- what the loads are doing ------------------------------------------------------------------
    def begin(self, label: str, what: str = "") -> None:
        """`label` starts loading (`what`: e.g. a backfill's window)."""
        stop.check()  # no window, account or provider starts once the run is stopping
        self._requests_at[label] = REQUESTS_SENT[label]
        self.loading[label] = what

    def loaded(self, result: LoadResult, done: bool = True) -> None:
        """What `result.provider` has loaded so far; `done`: its load has ended."""
        self.so_far[result.provider] = result
        if done:
            self.loading.pop(result.provider, None)

    @contextlib.contextmanager
    def recorded(self) -> Iterator["RunReport"]:
        """Record the run however it ends: a run stopped (a signal, a lost lock) or failing in a
        late step (the models, the checks, a full disk) still writes one row per provider
        account, naming the step. A stop goes on after it; a late step's failure becomes
        `late_failure`, a line of the summary, so that the summary of the loads is still said."""
        try:
            yield self
        except config.ConfigError:
            raise  # nothing ran
        except Exception as exc:  # noqa: BLE001 - recorded, then said in the summary
            if stop.requested() is None:
                why = f"{self.step} step failed: " + (disk_full(exc, self.destination.pipelines_dir) or one_line(exc, 600))
                log.debug("the %s step failed", self.step, exc_info=True)
                recorded = self._record_early("failed", why)
                self._alert(why)
                if self.step == "load":
                    raise  # before any step of its own ended (the warehouse busy, say): the command says why
                self.late_failure = why + recorded
                return
            self._stop(exc)  # a library took the signal for an error of its own (DuckDB: "Query interrupted")
        except KeyboardInterrupt as exc:
            self._stop(exc)

    def _stop(self, exc: BaseException) -> None:
        stopped = stop.taken(exc)
        stopped.where = self._stopped_where() + self._record_early("interrupted", stopped.reason)
        raise stopped from None

    def _stopped_where(self) -> str:
        if self.step == "load":
            if not self.so_far and not self.loading:
                return "before anything was loaded"
            doing = ", ".join(f"{label} ({what})" if what else label for label, what in self.loading.items())
            where = f"while loading {doing}" if doing else "while loading"
        else:
            where = f"in the {self.step} step, after the loads"
        return f"{where}; no further window, provider or model started"

    def _record_early(self, status: str, why: str) -> str:
        """Record every account of a run that ended early; what to add to the run's last line."""
        if self._recorded:
            return ""
        rows = []
        for label in self.accounts or [r.provider for r in self.results]:
            result = copy.deepcopy(self.so_far.get(label)) or LoadResult(label)
            if label in self.loading:
                result.requests += REQUESTS_SENT[label] - self._requests_at.get(label, 0)
                what = self.loading[label]
                where = f"while loading{f' ({what})' if what else ''}"
            elif label in self.so_far:
                where = f"in the {self.step} step, after its load" if self.step != "load" else "after its load"
            else:
                where = "before its load started"
            if status == "failed" and result.status != "ok":
                rows.append(result)  # its own load failed first: that is its error
                continue
            result.status, result.error = status, f"{why} {where}" if status == "interrupted" else why
            rows.append(result)
        try:
            record(self.destination, self.run_id, self.command, self.started_at, rows)
        except Exception as exc:  # noqa: BLE001 - the run's own end is what the caller reports
            log.debug("could not record the run", exc_info=True)
            why = "disk full" if disk_full(exc) else f"{type(exc).__name__}: {one_line(exc, 120)}"
            return f"; could not record it in analytics.load_runs ({why})"
        self._recorded = True
        if status == "failed":
            return ""
        return "; recorded in analytics.load_runs, and the next run completes or discards what was left pending"

    # -- the steps after the loads -------------------------------------------------------------------
    def finish(self, check: bool, repair: bool = False) -> None:
        """Note the days read, read missing days again (`repair`), rebuild every fact day not
        built yet, check (`check`: completeness and the model tests) and record the run; the
        DuckDB file held meanwhile (`warehouse.held`)."""
        with warehouse.held(self.destination):
            self._finish(check, repair)
        self._alert()

    def _finish(self, check: bool, repair: bool) -> None:
        self._enter("coverage")
        accounts, oldest = completeness.expectations([r.provider for r in self.results])
        self._record_coverage(self.results)
        if repair:
            self._enter("repair")
            self._repair(accounts, oldest)
        self._enter("models")
        # on a thread, like the loads (see `pipelines.stop`)
        built = stop.run_on_threads({"models": lambda: models.build_pending(self.destination)})["models"]
        self.models_built = built
        self.model_errors = built.errors  # said once, in the summary
        self._enter("checks")
        with warehouse.sql_client(self.destination) as client:
            missing = completeness.refresh(client, accounts)
        if check:
            self.problems = completeness.problems(missing, oldest) + models.test_all(self.destination)
            self.checked = True
        self._enter("record")
        drift.compare_and_keep(self.destination, self.results)
        record(self.destination, self.run_id, self.command, self.started_at, self._with_model_failures(built))
        self._recorded = True

    def _alert(self, failure: Optional[str] = None) -> None:
        """The run's alert to ALERTS__WEBHOOK_URL, if any (pipelines/alerts.py); never fails the run."""
        from pipelines import alerts

        alerts.after_run(self, failure)

    def _enter(self, step: str) -> None:
        stop.check()  # a stopped run starts no further step
        self.step = step

    def _with_model_failures(self, built: models.BuildReport) -> List[LoadResult]:
        """The results as recorded: an account whose load went well but whose provider's models
        (or a table built over every provider) failed is recorded as failed in the models step."""
        rows = []
        for r in self.results:
            provider = split_label(r.provider)[0]
            errors = ([built.failed[provider]] if provider in built.failed else []) + [
                built.failed_tables[name] for name in sorted(built.failed_tables)]
            if r.status == "ok" and errors:
                r = copy.copy(r)
                r.status, r.error = "failed", "models step failed: " + "; ".join(errors)
            rows.append(r)
        return rows

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
        provider that loaded tonight (one that is down would only fail again); on a thread of
        its own, like every load (see `pipelines.stop`)."""
        from pipelines.backfill import chunk_days

        healthy = {r.provider: r for r in self.results if r.status == "ok"}
        with warehouse.sql_client(self.destination) as client:
            holes = completeness.holes_to_repair(client, {p: s for p, s in accounts.items() if p in healthy}, oldest)

        def read_again() -> None:
            for provider, holes_of in holes.items():
                log.info("%s: reading missing days again: %s", provider, ", ".join(map(str, holes_of)))
                for hole in holes_of:
                    for chunk in windows.split(hole.first, hole.last, chunk_days(provider)):
                        self.begin(provider, f"reading {chunk} again")
                        part = load_provider(provider, dest=self.destination, start_date=chunk.first, end_date=chunk.last)
                        healthy[provider].add(part)
                        self.loaded(healthy[provider])
                        self._record_coverage([part])
                        if part.status != "ok":
                            break
                self.repaired[provider] = holes_of

        if holes:
            stop.run_on_threads({"repair": read_again})

    @property
    def failed(self) -> List[LoadResult]:
        return [r for r in self.results if r.status != "ok"]

    @property
    def exit_code(self) -> int:
        ok = self.results and not self.failed and not self.model_errors and not self.problems and not self.late_failure
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
        out.extend(f"WARNING {r.warning}" for r in self.results if r.warning)
        out.extend(f"SCHEMA DRIFT {r.provider}: {r.schema_changes}" for r in self.results if r.schema_changes)
        b = self.models_built
        if b is not None:
            span = f"{b.start}..{b.end}" if b.start is not None else "no day needed rebuilding"
            out.append(f"models: {len(b.models)} built; analytics.fct_daily_usage {span}: {b.rows} rows")
        out.extend(f"FAILED {error}" for error in self.model_errors)
        out.extend(f"CHECK FAILED {problem}" for problem in self.problems)
        if self.late_failure:
            out.append(f"FAILED {self.late_failure}")
        elif self.checked and not self.problems:
            out.append("checks passed: no day missing, every model test holds")
        return out
