"""Load one provider into its raw dataset: one dlt pipeline per provider and destination.

A run interrupted at any point (a crash, a SIGKILL, a lost connection to the warehouse) leaves
dlt's load package on disk. The next run completes that package first and then extracts and
loads the new days in the same command: nothing is lost, and merging by day means nothing is
loaded twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, List, Optional, Set
from urllib.parse import urlsplit

import dlt
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import Destination, check_provider, destination as resolve_destination, postgres_url, source_function
from sources import windows
from sources.http import ProviderError, REQUESTS_SENT, redact

log = logging.getLogger("pipelines")


@dataclass
class LoadResult:
    provider: str
    status: str = "ok"  # ok | failed
    rows: int = 0
    days: Set[dt.date] = field(default_factory=set)
    requests: int = 0
    seconds: float = 0.0
    error: Optional[str] = None

    @property
    def first_day(self) -> Optional[dt.date]:
        return min(self.days) if self.days else None

    @property
    def last_day(self) -> Optional[dt.date]:
        return max(self.days) if self.days else None


def pipeline_for(provider: str, dest: Destination) -> dlt.Pipeline:
    """The provider's pipeline: its working folder and state live under DLT_DATA_DIR."""
    return dlt.pipeline(
        pipeline_name=f"{provider}_usage_{dest.name}",
        destination=dest.dlt_destination(),
        dataset_name=f"raw_{provider}",
    )


def load_provider(
    provider: str,
    destination: Optional[str] = None,
    *,
    start_date: Optional[Any] = None,
    end_date: Optional[Any] = None,
    lookback_days: Optional[int] = None,
    dest: Optional[Destination] = None,
    raise_errors: bool = False,
) -> LoadResult:
    """Run one provider's source into `raw_<provider>`.

    Nightly when `end_date` is None (incremental from the saved cursor, re-reading the lookback
    window); a backfill of `start_date..end_date` otherwise, which leaves the cursor alone.
    A failure is returned as a failed LoadResult (or raised with `raise_errors`), never half-done.
    Load packages an interrupted run left are completed first; then the source is extracted and
    loaded in the same call, and `result.days` covers both.
    """
    dest = dest or resolve_destination(destination)
    config = check_provider(provider)
    result = LoadResult(provider)
    requests_before = REQUESTS_SENT[provider]
    started = time.monotonic()
    pipeline = pipeline_for(provider, dest)
    source_kwargs = dict(
        start_date=start_date or config.start_date or windows.default_start_date(),
        end_date=end_date,
        lookback_days=config.lookback_days if lookback_days is None else lookback_days,
    )
    try:
        _discard_abandoned_extracts(pipeline)
        if pipeline.has_pending_data:
            _complete_pending(pipeline, result)
        source = source_function(provider)(**source_kwargs)
        for resource in source.resources.selected.values():
            resource.add_map(_day_tracker(result.days))
        info = pipeline.run(source, loader_file_format=dest.loader_file_format)
        info.raise_on_failed_jobs()
        counts = pipeline.last_trace.last_normalize_info.row_counts if pipeline.last_trace.last_normalize_info else {}
        result.rows += sum(n for table, n in counts.items() if not table.startswith("_dlt"))
    except Exception as exc:  # noqa: BLE001 - one provider's failure must not stop the others
        if raise_errors:
            raise
        result.status = "failed"
        result.error = describe_failure(provider, exc)
        log.error(result.error)
    finally:
        result.requests = REQUESTS_SENT[provider] - requests_before
        result.seconds = time.monotonic() - started
    return result


PACKAGE_DAYS_KEY = "usage_days"
"""Key of the load package state that lists the days a package holds (ISO dates)."""


def _complete_pending(pipeline: dlt.Pipeline, result: LoadResult) -> None:
    """Finish the load packages an interrupted run left, and note their days.

    dlt's `run()` completes pending packages and then returns without extracting anything, so
    the caller runs the source afterwards: the new days are loaded in the same command. The
    days come from the packages' own state (written while extracting), so the models are
    rebuilt for them too.

    A package cut while its jobs were running is aborted instead: a job whose SQL had committed
    just before the cut would run again and, merged by day without deduplicating on a row key,
    load its rows twice. dlt then restores the cursor the package started from, so the source reads its days
    again, and merging by day replaces whatever part of them had been loaded.
    """
    pending = list(pipeline.list_extracted_load_packages()) + list(pipeline.list_normalized_load_packages())
    cut = [load_id for load_id in pipeline.list_normalized_load_packages() if _may_run_a_job_twice(pipeline, load_id)]
    if cut:
        log.warning("%s: load package %s was cut while loading; aborting it and reading its days again",
                    pipeline.pipeline_name, cut[0])
        pipeline.abort_packages()
        return
    log.info("%s: completing %d load package(s) left by an interrupted run", pipeline.pipeline_name, len(pending))
    info = pipeline.run()  # normalizes and loads what is pending, and only that
    if info is None:
        # the warehouse never got this pipeline's first load: dlt reset the working folder
        # (packages and state) and the source reads everything again
        log.info("%s: the interrupted run was the first one; loading from the start", pipeline.pipeline_name)
        return
    info.raise_on_failed_jobs()
    for load_id in info.loads_ids:
        try:
            state = pipeline.get_load_package_state(load_id)
        except Exception:  # noqa: BLE001 - a package without state holds no usage days
            continue
        result.days.update(dt.date.fromisoformat(day) for day in state.get(PACKAGE_DAYS_KEY, ()))
    normalized = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    if normalized is not None:
        result.rows += sum(n for table, n in normalized.row_counts.items() if not table.startswith("_dlt"))


def _may_run_a_job_twice(pipeline: dlt.Pipeline, load_id: str) -> bool:
    """Whether resuming the package would run again a job that may already have written: one
    that was running when the run was cut, or one retried after a failed attempt."""
    jobs = pipeline.get_load_package_info(load_id).jobs
    return bool(jobs.get("started_jobs")) or any(job.job_file_info.retry_count > 0 for job in jobs.get("new_jobs", ()))


_EXTRACT_FOLDER = re.compile(r"^[0-9a-f]{16}$")


def _discard_abandoned_extracts(pipeline: dlt.Pipeline) -> None:
    """Remove what a run killed while extracting left behind: dlt writes a package under a
    random folder of `normalize/` and only moves it to `normalize/extracted` once extraction
    finished, so such a folder is half a package nobody will read (one run per pipeline at a
    time is guaranteed by the warehouse lock)."""
    normalize_dir = os.path.join(pipeline.working_dir, "normalize")
    if not os.path.isdir(normalize_dir):
        return
    for name in os.listdir(normalize_dir):
        path = os.path.join(normalize_dir, name)
        if _EXTRACT_FOLDER.match(name) and os.path.isdir(path):
            log.info("%s: removing the partial extract of an interrupted run (%s)", pipeline.pipeline_name, name)
            shutil.rmtree(path, ignore_errors=True)


def _day_tracker(days: Set[dt.date]):
    """A map step that collects the `usage_date`s passing through into `days`, and records
    them in the load package's state so that a package finished by a later run still says
    which days it changed."""
    extracted: Set[dt.date] = set()

    def track(item: Any) -> Any:
        if isinstance(item, pa.Table) and "usage_date" in item.column_names and item.num_rows:
            new_days = set(pc.unique(item.column("usage_date")).to_pylist()) - extracted
            if new_days:
                extracted.update(new_days)
                days.update(new_days)
                package_state = dlt.current.load_package_state()["state"]
                package_state[PACKAGE_DAYS_KEY] = sorted(day.isoformat() for day in extracted)
        return item

    return track


def describe_failure(provider: str, exc: BaseException) -> str:
    """One line for a failed load: the provider's own error when there is one. Secret values
    (the provider's key, the warehouse password) are masked whatever the error quotes."""
    seen = set()
    current: Optional[BaseException] = exc
    line = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ProviderError):
            line = str(current)
            break
        current = current.__cause__ or current.__context__ or getattr(current, "exception", None)
    if line is None:
        text = " ".join(str(exc).split())
        line = f"{provider}: {type(exc).__name__}: {text[:300]}"
    return redact(line, _secrets(provider))


def _secrets(provider: str) -> List[str]:
    """The values an error line must never show: the provider's key, the warehouse password."""
    values = [str(dlt.secrets.get(f"sources.{provider}.api_key") or "")]
    try:
        values.append(urlsplit(postgres_url()).password or "")
    except ValueError:
        pass
    return values
