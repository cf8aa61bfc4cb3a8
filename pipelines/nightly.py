"""The nightly job: every configured provider, incrementally, then the models and checks."""

from __future__ import annotations

import functools
import logging
from typing import List, Optional, Sequence

from pipelines import config, memory, stop
from pipelines.load import LoadResult, load_provider
from pipelines.lock import option
from pipelines.runs import RunReport

log = logging.getLogger("pipelines")


def chosen(text: Optional[str]) -> Optional[List[str]]:
    """The accounts an option names (`neon,bronto`, `neon.eu`); None for every configured one
    (no option, or `all`)."""
    if not text or text.strip().lower() == "all":
        return None
    return config.parse_providers(text)


def providers_to_run(providers: Optional[Sequence[str]]) -> tuple:
    """(providers, skipped): `None` means every configured provider, naming the skipped ones,
    and none configured is a configuration error; providers named explicitly must be configured
    (a missing key is a configuration error)."""
    if providers is not None:
        providers = config.parse_providers(",".join(providers))
        for label in providers:
            missing = config.missing_settings(label)
            if missing:
                raise config.ConfigError(
                    f"{label}: {missing[0]} is missing or empty; set it or leave {label} out of "
                    + option("--providers", "PROVIDERS=")
                )
        to_run, skipped = list(providers), {}
    else:
        to_run, skipped = config.configured_providers(config.provider_names())
        if not to_run:
            raise config.ConfigError(
                f"no provider is configured: set SOURCES__<PROVIDER>__API_KEY for at least one of "
                f"{', '.join(config.provider_names())} (see README)"
            )
    for provider in to_run:
        config.check_provider(provider)  # every setting checked before anything loads
    from pipelines import models

    models.seeds()  # the pricing files too: a malformed card is found before the loads, not after
    return to_run, skipped


def run_nightly(providers: Optional[Sequence[str]] = None, destination: Optional[str] = None,
                dest: Optional[config.Destination] = None) -> RunReport:
    """Load every requested provider; one failure does not stop the others. Then read again
    the days missing from the warehouse that the APIs still serve, rebuild every fact day not
    built yet, check completeness and the model tests, and record the run."""
    dest = dest or config.destination(destination)
    to_run, skipped = providers_to_run(providers)
    report = RunReport("nightly", dest, skipped=skipped, accounts=to_run)
    with report.recorded():
        report.results = load_side_by_side(to_run, dest, report)
        report.finish(check=True, repair=True)
    return report


def load_side_by_side(labels: Sequence[str], dest: config.Destination,
                      report: Optional[RunReport] = None) -> List[LoadResult]:
    """Load every account at once, each on a thread of its own; results in the order asked.

    Every limit the APIs set is an account's own (Neon's rate, Adverity's one call at a time,
    Bronto's quota): each account's client keeps to it, so the slowest account, not the sum
    of them, sets the run's length. Each dlt pipeline keeps its context in its own thread, and
    the pipelines share one DuckDB database in this process (one instance, one writer process)
    while writing datasets of their own. One account runs on a thread too: the calling thread
    only waits, free to stop the run (`pipelines.stop`).
    """
    report = report or RunReport("nightly", dest, accounts=labels)
    labels = list(dict.fromkeys(labels))

    def load_account(label: str) -> LoadResult:
        report.begin(label)
        result = load_provider(label, dest=dest)
        report.loaded(result)
        return result

    done = stop.run_on_threads({label: functools.partial(load_account, label) for label in labels})
    if len(labels) > 1:
        memory.trim()
    return [done[label] for label in labels]
