"""The nightly job: every configured provider, incrementally, then the models and checks."""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterator, List, Optional, Sequence

from pipelines import config, memory
from pipelines.load import LoadResult, load_provider
from pipelines.runs import RunReport

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
                dest: Optional[config.Destination] = None) -> RunReport:
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
