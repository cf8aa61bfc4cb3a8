"""The nightly job: every configured provider, incrementally, then the models and checks."""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence

from pipelines import config
from pipelines.load import LoadResult, load_provider

log = logging.getLogger("pipelines")


def run_nightly(providers: Optional[Sequence[str]] = None, destination: Optional[str] = None) -> "NightlyReport":
    """Load every requested and configured provider; one failure does not stop the others.

    `providers` None means all: unconfigured ones are skipped and named. Providers named
    explicitly must be configured: a missing key is a configuration error.
    """
    explicit = providers is not None
    requested = list(providers) if explicit else list(config.PROVIDERS)
    dest = config.destination(destination)
    if explicit:
        for provider in requested:
            missing = config.missing_settings(provider)
            if missing:
                raise config.ConfigError(f"{provider}: {missing[0]} is missing or empty; set it or leave {provider} out of --providers")
        to_run, skipped = requested, {}
    else:
        to_run, skipped = config.configured_providers(requested)
    for provider in to_run:
        config.check_provider(provider)  # every setting checked before anything loads
    for provider, key in skipped.items():
        log.info("skipping %s: not configured (%s is not set)", provider, key)
    results = [load_provider(provider, dest=dest) for provider in to_run]
    return NightlyReport(dest, results, skipped)


class NightlyReport:
    def __init__(self, dest: config.Destination, results: List[LoadResult], skipped: dict):
        self.destination = dest
        self.results = results
        self.skipped = skipped

    @property
    def failed(self) -> List[LoadResult]:
        return [r for r in self.results if r.status != "ok"]

    @property
    def exit_code(self) -> int:
        return config.EXIT_FAILED if self.failed or not self.results else config.EXIT_OK

    def lines(self) -> List[str]:
        out = [f"{'provider':<10} {'status':<7} {'rows':>9} {'days':>5} {'first day':>11} {'last day':>11} {'requests':>9} {'seconds':>8}"]
        for r in self.results:
            first = r.first_day.isoformat() if r.first_day else "-"
            last = r.last_day.isoformat() if r.last_day else "-"
            out.append(f"{r.provider:<10} {r.status:<7} {r.rows:>9} {len(r.days):>5} {first:>11} {last:>11} {r.requests:>9} {r.seconds:>8.1f}")
        for provider, key in self.skipped.items():
            out.append(f"{provider:<10} skipped (not configured: {key} is not set)")
        for r in self.failed:
            out.append(f"FAILED {r.error}")
        if not self.results:
            out.append("no provider is configured: set SOURCES__<PROVIDER>__API_KEY (see README)")
        return out
