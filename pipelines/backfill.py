"""Backfills: an inclusive day range per provider, loaded statelessly, then the models rebuilt.

Every incremental gets an `end_value`, which makes dlt filter without reading or writing the
saved cursor: the nightly job's position is untouched. Ranges an API cannot serve are refused
before anything loads.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import List, Optional, Sequence

from pipelines import config, stop
from pipelines.load import LoadResult, load_provider
from pipelines.lock import option
from pipelines.nightly import chosen, providers_to_run
from pipelines.runs import RunReport
from sources import windows

log = logging.getLogger("pipelines")


def servable_range(provider: str, first: dt.date, last: dt.date, now: Optional[dt.datetime] = None) -> None:
    """Raise ConfigError when `first..last` is a range the provider's API cannot serve."""
    yesterday = windows.last_complete_day(now)
    if last > yesterday:
        raise config.ConfigError(
            f"END={last} is not a complete UTC day yet; the last complete day is {yesterday}"
        )
    refusal = config.provider_of(provider).limits.refusal(provider, first, now)
    if refusal:
        raise config.ConfigError(refusal)


def plan(provider_arg: str, start: str, end: str) -> tuple:
    """Validate everything up front: (providers, first, last); ConfigError on any problem."""
    if not start or not end:
        raise config.ConfigError("backfill needs START and END, e.g. " + option(
            "usage-elt backfill --start 2026-01-01 --end 2026-01-31", "make backfill PROVIDERS=all START=2026-01-01 END=2026-01-31"))
    try:
        first = windows.parse_day(start, "START")
        last = windows.parse_day(end, "END")
    except windows.WindowError as exc:
        raise config.ConfigError(str(exc)) from None
    if first > last:
        raise config.ConfigError(f"START={first} is after END={last}; give START <= END")
    providers, skipped = providers_to_run(chosen(provider_arg))
    for provider, key in skipped.items():
        log.info("skipping %s: not configured (%s is not set)", provider, key)
    for provider in providers:
        servable_range(provider, first, last)
    return providers, first, last


MIN_CHUNK_DAYS = 7


def chunk_days(provider: str) -> int:
    """Days per backfill chunk: the provider's own request window when it has a larger one
    (Neon's 60 days cost one request), else a week, so progress shows and a failure costs
    one chunk, not the whole range."""
    return config.provider_of(provider).limits.chunk_days(MIN_CHUNK_DAYS)


def run_backfill(providers: Sequence[str], first: dt.date, last: dt.date, dest: config.Destination,
                 progress: Optional["Progress"] = None, report: Optional[RunReport] = None) -> List[LoadResult]:
    """Load `first..last` for each provider, chunk by chunk; the cursor stays where it is.

    A provider's result adds up its chunks; it stops at the first failing chunk (the chunks
    before it are loaded and stay, a re-run replaces them). The loads run on a thread of their
    own, the calling thread free to stop the run between two windows (`pipelines.stop`)."""
    chunks = {provider: windows.split(first, last, chunk_days(provider)) for provider in providers}
    progress = progress or Progress(sum(len(c) for c in chunks.values()))
    report = report or RunReport("backfill", dest, accounts=providers)

    def load_all() -> List[LoadResult]:
        results = []
        for provider in providers:
            total = LoadResult(provider)
            for number, chunk in enumerate(chunks[provider], 1):
                report.begin(provider, f"window {number}/{len(chunks[provider])}: {chunk}")
                part = load_provider(provider, dest=dest, start_date=chunk.first, end_date=chunk.last)
                total.rows += part.rows
                total.days |= part.days
                total.requests += part.requests
                total.seconds += part.seconds
                total.add_schema(part)
                report.loaded(total, done=False)
                progress.advance(provider, chunk, part)
                if part.status != "ok":
                    total.status, total.error = part.status, part.error
                    break
            if total.status == "ok" and not total.rows:
                total.warning = (f"{provider}: no rows over {first}..{last}: the API reported no usage for any of "
                                 "those days; check the range and the account")
            report.loaded(total)
            results.append(total)
        return results

    try:
        return stop.run_on_threads({"backfill": load_all})["backfill"]
    finally:
        progress.close()


class Progress:
    """Backfill progress: one updating line on a terminal, plain log lines under cron."""

    def __init__(self, total: int, stream=None):
        self.total = total
        self.done = 0
        self.rows = 0
        self.requests = 0
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()

    def advance(self, provider: str, chunk: windows.Window, part: LoadResult) -> None:
        self.done += 1
        self.rows += part.rows
        self.requests += part.requests
        line = (
            f"backfill {self.done}/{self.total} windows: {provider} {chunk} {part.status} "
            f"(+{part.rows} rows, +{part.requests} requests); total {self.rows} rows, {self.requests} requests"
        )
        if self.live:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
        else:
            log.info(line)

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
