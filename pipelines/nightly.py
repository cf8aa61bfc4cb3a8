"""The nightly job: every configured provider, incrementally, then the models and checks."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterator, List, Optional, Sequence

from pipelines import completeness, config, memory, models, runs
from pipelines.load import LoadResult, load_provider
from sources import windows

log = logging.getLogger("pipelines")


def providers_to_run(providers: Optional[Sequence[str]]) -> tuple:
    """(providers, skipped): `None` means every configured provider, naming the skipped ones;
    providers named explicitly must be configured (a missing key is a configuration error)."""
    if providers is not None:
        providers = config.parse_providers(",".join(providers))
        for label in providers:
            missing = config.missing_settings(label)
            if missing:
                raise config.ConfigError(
                    f"{label}: {missing[0]} is missing or empty; set it or leave {label} out of --providers"
                )
        to_run, skipped = list(providers), {}
    else:
        to_run, skipped = config.configured_providers(config.provider_names())
    for provider in to_run:
        config.check_provider(provider)  # every setting checked before anything loads
    return to_run, skipped


def run_nightly(providers: Optional[Sequence[str]] = None, destination: Optional[str] = None,
                dest: Optional[config.Destination] = None) -> "RunReport":
    """Load every requested provider; one failure does not stop the others. Then read again
    the days missing from the warehouse that the APIs still serve, rebuild every fact day not
    built yet, check completeness and the model tests, and record the run."""
    dest = dest or config.destination(destination)
    to_run, skipped = providers_to_run(providers)
    for provider, key in skipped.items():
        log.info("skipping %s: not configured (%s is not set)", provider, key)
    report = RunReport("nightly", dest, skipped=skipped)
    with _one_database(dest):
        report.results = load_side_by_side(to_run, dest)
        report.finish(check=True, repair=True)
    return report


def load_side_by_side(labels: Sequence[str], dest: config.Destination) -> List[LoadResult]:
    """Load every provider at once, each on a thread of its own, its accounts one after
    another on that thread; results in the order asked.

    The providers' limits are independent (Neon's rate, Adverity's one call at a time), so the
    slowest provider, not their sum, sets the run's length. Each dlt pipeline keeps its context
    in its own thread, and the pipelines share one DuckDB database in this process (one
    instance, one writer process) while writing datasets of their own.
    """
    by_provider: Dict[str, List[str]] = {}
    for label in labels:
        by_provider.setdefault(config.split_label(label)[0], []).append(label)

    def load_accounts(provider: str) -> List[LoadResult]:
        return [load_provider(label, dest=dest) for label in by_provider[provider]]

    if len(by_provider) <= 1:
        done = {provider: load_accounts(provider) for provider in by_provider}
    else:
        with ThreadPoolExecutor(max_workers=len(by_provider), thread_name_prefix="nightly") as pool:
            done = dict(zip(by_provider, pool.map(load_accounts, by_provider)))
        memory.trim()
    results = {result.provider: result for provider_results in done.values() for result in provider_results}
    return [results[label] for label in labels]


DUCKDB_MEMORY_LIMIT = "96MB"
"""DuckDB's memory during a nightly run (DESTINATION__DUCKDB__MEMORY_LIMIT): merges and model
builds beyond it spill to disk instead of growing with the data."""


@contextlib.contextmanager
def _one_database(dest: config.Destination) -> Iterator[None]:
    """On DuckDB, hold one connection for the whole run, so that the provider threads, the
    models and the checks all join one database instance, whose memory is capped.

    Threads opening the same file first at the same moment race in DuckDB's instance cache
    ("already attached"); and without a cap DuckDB may use most of the machine's memory.
    """
    if dest.name != "duckdb":
        yield
        return
    import dlt
    import duckdb

    connection = duckdb.connect(dest.location)
    limit = str(dlt.config.get("destination.duckdb.memory_limit") or DUCKDB_MEMORY_LIMIT)
    try:
        connection.execute("set memory_limit = ?", [limit])
    except duckdb.Error as exc:
        connection.close()
        raise config.ConfigError(f"DESTINATION__DUCKDB__MEMORY_LIMIT={limit!r} is not a memory size, e.g. 96MB ({exc})") from None
    connection.execute("set preserve_insertion_order = false")
    try:
        yield
    finally:
        connection.close()


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
        self.run_id = runs.new_run_id()

    def finish(self, check: bool, repair: bool = False) -> None:
        """Note the days read, read missing days again (`repair`), rebuild every fact day not
        built yet, check (`check`: completeness and the model tests) and record the run."""
        accounts = {r.provider: config.check_provider(r.provider).start_date for r in self.results}
        oldest = {provider: config.oldest_servable_day(provider) for provider in accounts}
        self._record_coverage(self.results)
        if repair:
            self._repair(accounts, oldest)
        built = models.build_pending(self.destination)
        self.models_built = built
        self.model_errors = built.errors
        for error in self.model_errors:
            log.error(error)
        with models._sql_client(self.destination) as client:
            missing = completeness.refresh(client, accounts)
        if check:
            self.problems = completeness.problems(missing, oldest) + models.test_all(self.destination)
        runs.record(self.destination, self.run_id, self.command, self.started_at, self.results)

    def _record_coverage(self, results: Sequence[LoadResult]) -> None:
        with models._sql_client(self.destination) as client:
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
        with models._sql_client(self.destination) as client:
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
