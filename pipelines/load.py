"""Load one provider into its raw dataset: one dlt pipeline per provider and destination.

A run interrupted at any point (a crash, a SIGKILL, a lost connection to the warehouse) leaves
dlt's load package on disk. The next run completes that package first and then extracts and
loads the new days in the same command: nothing is lost, and merging by day means nothing is
loaded twice.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set
from urllib.parse import urlsplit

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.extract.exceptions import ResourceExtractionError
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.config import (
    Destination,
    dataset_of,
    check_provider,
    destination as resolve_destination,
    lookup,
    oldest_servable_day,
    postgres_url,
    source_function,
    split_label,
)
from pipelines import drift
from pipelines.warehouse import held
from sources import fields, windows
from sources.http import ProviderError, REQUESTS_SENT, counted_as, redact
from sources.lines import one_line

log = logging.getLogger("pipelines")


@dataclass
class LoadResult:
    provider: str
    status: str = "ok"  # ok | failed
    rows: int = 0
    days: Set[dt.date] = field(default_factory=set)
    """Days that had rows in what was loaded."""
    covered: Set[dt.date] = field(default_factory=set)
    """Days read from the API by the loaded packages (with or without usage)."""
    load_ids: List[str] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0
    error: Optional[str] = None
    warning: Optional[str] = None
    """What the load noticed without failing (a backfill that found no rows)."""
    fields: Dict[str, Set[str]] = field(default_factory=dict)
    """Per endpoint, the fields its answers carried (`sources.fields`), when the load went well."""
    table_changes: List[str] = field(default_factory=list)
    """Columns the load added to raw tables that existed before it (`pipelines.drift`)."""
    schema_changes: Optional[str] = None
    """What changed in the answers and the raw tables since the last run (set by the run)."""

    @property
    def first_day(self) -> Optional[dt.date]:
        return min(self.days) if self.days else None

    @property
    def last_day(self) -> Optional[dt.date]:
        return max(self.days) if self.days else None

    def add_schema(self, other: "LoadResult") -> None:
        """Count what another load of the same provider saw of the answers' fields and the raw tables."""
        for endpoint, found in other.fields.items():
            self.fields.setdefault(endpoint, set()).update(found)
        self.table_changes += [change for change in other.table_changes if change not in self.table_changes]

    def add(self, other: "LoadResult") -> None:
        """Count another load of the same provider (a chunk, a repair) into this result."""
        self.rows += other.rows
        self.days |= other.days
        self.covered |= other.covered
        self.load_ids += other.load_ids
        self.requests += other.requests
        self.seconds += other.seconds
        self.add_schema(other)
        if other.status != "ok" and self.status == "ok":
            self.status, self.error = other.status, other.error


LOAD_ID_SETTING = "NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID"


def pipeline_for(provider: str, dest: Destination) -> dlt.Pipeline:
    """The account's pipeline on this warehouse (`provider` is an account label, `neon` or
    `neon.prod`): its working folder is the warehouse's own (`Destination.pipelines_dir`), so
    no other warehouse's cursor or package can reach it.

    Every raw row carries its load's id (`_dlt_load_id`, which dlt leaves off Arrow tables by
    default): the model runner finds the days of loads not yet modelled through it, so it is
    not left to a setting.
    """
    os.environ[LOAD_ID_SETTING] = "true"
    return dlt.pipeline(
        pipeline_name=f"{provider.replace('.', '_')}_usage_{dest.name}",
        pipelines_dir=dest.pipelines_dir,
        destination=dest.dlt_destination(),
        dataset_name=dataset_of(provider),
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
    """Run one provider account's source (`provider` is its label) into its raw dataset.

    Nightly when `end_date` is None (incremental from the saved cursor, re-reading the lookback
    window); a load of exactly `start_date..end_date` otherwise (a backfill or a repair), which
    leaves the cursor alone. A failure is returned as a failed LoadResult (or raised with
    `raise_errors`), never half-done. Load packages an interrupted run left are completed
    first; then the source is extracted and loaded in the same call, and `result.days` covers
    both.
    """
    dest = dest or resolve_destination(destination)
    config = check_provider(provider)
    result = LoadResult(provider)
    requests_before = REQUESTS_SENT[provider]
    fields.forget(provider)
    started = time.monotonic()
    lookback = config.lookback_days if lookback_days is None else lookback_days
    pipeline = None
    try:
        pipeline = _whole_pipeline(provider, dest)
        _discard_abandoned_extracts(pipeline)
        with held(dest):
            if pipeline.has_pending_data:
                _complete_pending(pipeline, result)
            pipeline = _state_of_warehouse(pipeline)
        if end_date is None:
            start_date = nightly_start(provider, pipeline, windows.parse_day(start_date) if start_date else config.start_date, lookback)
        with counted_as(provider):  # its requests are its own, whatever else loads meanwhile
            source = source_function(provider)(start_date=start_date, end_date=end_date, lookback_days=lookback)
        for resource in source.resources.selected.values():
            resource.add_map(_day_tracker())
            if dest.name == "postgres":
                table_name = resource.table_name if isinstance(resource.table_name, str) else resource.name
                resource.add_map(_text_postgres_stores(provider, table_name))
        known = _raw_columns(pipeline)
        # reading the API and normalizing touch only the local folder: the warehouse is free
        # meanwhile for others to read (`warehouse.held`)
        pipeline.extract(source, loader_file_format=dest.loader_file_format)
        normalized = pipeline.normalize()
        with held(dest):
            info = pipeline.load()
            info.raise_on_failed_jobs()
            _drop_staging_dataset(pipeline)
        _note_loaded(pipeline, info.loads_ids, result)
        result.table_changes = drift.table_changes(pipeline.dataset_name, known,
                                                   [package.schema_update for package in info.load_packages])
        result.fields = fields.seen(provider)
        counts = normalized.row_counts if normalized is not None else {}
        result.rows += sum(n for table, n in counts.items() if not table.startswith("_dlt"))
    except Exception as exc:  # noqa: BLE001 - one provider's failure must not stop the others
        stop = stop_within(exc)
        if stop is not None:
            raise stop from None  # a signal stops the whole run; it is no failure of this provider
        if raise_errors:
            raise
        result.status = "failed"
        result.error = describe_failure(provider, exc, pipeline.working_dir if pipeline is not None else dest.pipelines_dir)
        log.debug("%s: the failure in full", provider, exc_info=True)
        if pipeline is not None:
            _discard_abandoned_extracts(pipeline, failed=True)  # the next run finds no partial extract to explain
    finally:
        result.requests = REQUESTS_SENT[provider] - requests_before
        result.seconds = time.monotonic() - started
    return result


_STORAGE_FOLDERS = {"load": ("new", "normalized", "loaded"), "normalize": ("extracted",)}
"""dlt's storages: each creates its folder, then the folders within; neither is ever left
without them except by a run killed while creating or deleting them."""


def _whole_pipeline(provider: str, dest: Destination) -> dlt.Pipeline:
    """The provider's pipeline, its working folder whole.

    A run killed while it dropped the local state (see `_state_of_warehouse`) or while dlt
    created its storage folders leaves the folder half made: dlt then fails on the missing
    folders every night. Such a folder holds nothing the warehouse lacks (the state is dropped
    only with no package pending), so it is removed and the state restored from the warehouse.
    """
    pipeline = pipeline_for(provider, dest)
    working_dir = pipeline.working_dir
    if any(
        os.path.isdir(os.path.join(working_dir, parent)) and not os.path.isdir(os.path.join(working_dir, parent, child))
        for parent, children in _STORAGE_FOLDERS.items()
        for child in children
    ):
        log.warning("%s: the working folder was left incomplete by an interrupted run; restoring the state "
                    "from the warehouse", pipeline.pipeline_name)
        shutil.rmtree(working_dir, ignore_errors=True)
        pipeline = pipeline_for(provider, dest)
    return pipeline


def _state_of_warehouse(pipeline: dlt.Pipeline) -> dlt.Pipeline:
    """The pipeline with the state the warehouse holds, not whatever the local folder has.

    dlt keeps the local state when its version is newer than the warehouse's (a warehouse
    restored from a backup, a file replaced, a folder copied from another machine): the cursor
    could then claim days the warehouse never got. With no package pending, the local folder
    holds nothing the warehouse lacks, so it is dropped and the state restored from the
    warehouse; a first run finds none there and starts from the beginning.
    """
    if pipeline.has_pending_data:
        return pipeline
    pipeline = pipeline.drop()
    pipeline.sync_destination()
    return pipeline


def saved_cursor(pipeline: dlt.Pipeline) -> Optional[dt.date]:
    """The oldest `usage_date` cursor the state holds for any resource of the pipeline; None
    before the first successful run. A resource added since starts from there too."""
    days = []
    for source_state in (pipeline.state.get("sources") or {}).values():
        for resource_state in (source_state.get("resources") or {}).values():
            last_value = (((resource_state or {}).get("incremental") or {}).get("usage_date") or {}).get("last_value")
            if last_value is not None:
                days.append(windows.parse_day(last_value))
    return min(days) if days else None


def nightly_start(provider: str, pipeline: dlt.Pipeline, configured_start: Optional[dt.date], lookback: int) -> dt.date:
    """The first day a nightly run reads.

    Without a saved cursor: START_DATE, or the last week. With one: the cursor minus the
    lookback, the saved cursor alone deciding (a default start recomputed every night would
    floor it, and an outage longer than a week would skip days); a configured START_DATE stays
    the first day ever read. Never older than the API still serves: days it no longer has are
    reported as missing by the completeness check.
    """
    saved = saved_cursor(pipeline)
    if saved is None:
        start = configured_start or windows.default_start_date()
    else:
        start = saved - dt.timedelta(days=lookback)
        if configured_start is not None:
            start = max(start, configured_start)
    oldest = oldest_servable_day(provider)
    return max(start, oldest) if oldest is not None else start


def _note_loaded(pipeline: dlt.Pipeline, load_ids: Sequence[str], result: LoadResult) -> None:
    """Record the loaded packages from their own state (written while extracting, so also for
    a package a later run finished): their ids, the days they hold rows for, and the days their
    windows read from the API (for a provider with several resources, the days every resource
    read)."""
    for load_id in load_ids:
        result.load_ids.append(load_id)
        try:
            state = pipeline.get_load_package_state(load_id)
        except Exception:  # noqa: BLE001 - a package without state holds no days
            continue
        result.days.update(dt.date.fromisoformat(day) for day in state.get(PACKAGE_DAYS_KEY, ()))
        noted = state.get(windows.WINDOWS_KEY) or {}
        per_resource = [
            {day for first, last in spans for day in windows.days(dt.date.fromisoformat(first), dt.date.fromisoformat(last))}
            for spans in noted.values()
        ]
        if per_resource:
            result.covered |= set.intersection(*per_resource)


def _raw_columns(pipeline: dlt.Pipeline) -> Dict[str, Set[str]]:
    """The columns of each raw table the warehouse's schema holds before a load; none before
    the account's first load."""
    if not pipeline.default_schema_name:
        return {}
    return {name: set(table.get("columns") or {}) for name, table in pipeline.default_schema.tables.items()
            if not name.startswith("_dlt")}


def _drop_staging_dataset(pipeline: dlt.Pipeline) -> None:
    """Drop the dataset dlt merges through (`raw_<provider>_staging`) once everything is loaded:
    it holds only copies of the last load's rows, and analysts browsing the warehouse should
    not find them. dlt makes it again for the next merge."""
    if pipeline.has_pending_data:
        return
    with pipeline.sql_client() as client:
        with client.with_staging_dataset():
            if client.has_dataset():
                client.drop_dataset()


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
    load its rows twice. The cursor comes from the warehouse's state, so the source reads the
    package's days again (the completeness check reads again any that state had passed), and
    merging by day replaces whatever part of them had been loaded.
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
    _note_loaded(pipeline, info.loads_ids, result)
    normalized = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    if normalized is not None:
        result.rows += sum(n for table, n in normalized.row_counts.items() if not table.startswith("_dlt"))


def _may_run_a_job_twice(pipeline: dlt.Pipeline, load_id: str) -> bool:
    """Whether resuming the package would run again a job that may already have written: one
    that was running when the run was cut, or one retried after a failed attempt."""
    jobs = pipeline.get_load_package_info(load_id).jobs
    return bool(jobs.get("started_jobs")) or any(job.job_file_info.retry_count > 0 for job in jobs.get("new_jobs", ()))


_EXTRACT_FOLDER = re.compile(r"^[0-9a-f]{16}$")


def _discard_abandoned_extracts(pipeline: dlt.Pipeline, failed: bool = False) -> None:
    """Tidy what a run killed between two of dlt's file moves left behind (one run per
    pipeline at a time is guaranteed by the warehouse lock), or what this run's failed extract
    left (`failed`: said at debug level only, the failure is the news):

    - killed while extracting: dlt writes a package under a random folder of `normalize/` and
      only moves it to `normalize/extracted` once extraction finished, so such a folder is half
      a package nobody will read: removed;
    - killed after normalizing a package but before deleting its extracted copy: the package is
      complete in `load/normalized` (moved there in one rename), and normalizing the copy again
      would fail on the existing folder, night after night: the copy is removed.
    """
    normalize_dir = os.path.join(pipeline.working_dir, "normalize")
    if not os.path.isdir(normalize_dir):
        return
    for name in os.listdir(normalize_dir):
        path = os.path.join(normalize_dir, name)
        if _EXTRACT_FOLDER.match(name) and os.path.isdir(path):
            if failed:
                log.debug("%s: removing the partial extract of the failed load (%s)", pipeline.pipeline_name, name)
            else:
                log.info("%s: removing the partial extract of an interrupted run (%s)", pipeline.pipeline_name, name)
            shutil.rmtree(path, ignore_errors=True)
    extracted_dir = os.path.join(normalize_dir, "extracted")
    normalized_dir = os.path.join(pipeline.working_dir, "load", "normalized")
    if os.path.isdir(extracted_dir) and os.path.isdir(normalized_dir):
        for load_id in set(os.listdir(extracted_dir)) & set(os.listdir(normalized_dir)):
            log.info("%s: load package %s was normalized already; removing its extracted copy",
                     pipeline.pipeline_name, load_id)
            shutil.rmtree(os.path.join(extracted_dir, load_id), ignore_errors=True)


def _day_tracker():
    """A map step that records the `usage_date`s passing through in the load package's state,
    so that a package finished by a later run still says which days it changed. The result
    counts them only once the package is loaded (`_note_loaded`): a load that fails shows no
    day it did not load."""
    extracted: Set[dt.date] = set()

    def track(item: Any) -> Any:
        if isinstance(item, pa.Table) and "usage_date" in item.column_names and item.num_rows:
            new_days = set(pc.unique(item.column("usage_date")).to_pylist()) - extracted
            if new_days:
                extracted.update(new_days)
                package_state = dlt.current.load_package_state()["state"]
                package_state[PACKAGE_DAYS_KEY] = sorted(day.isoformat() for day in extracted)
        return item

    return track


def _text_postgres_stores(provider: str, table_name: str):
    """A map step that fails the extract on a text value with a NUL character, naming the
    table, the column and the value: Postgres text cannot store one, and its COPY would fail the
    same way on each of dlt's five attempts, every night."""

    def check(item: Any) -> Any:
        if isinstance(item, pa.Table):
            for name in item.column_names:
                column = item.column(name)
                if pa.types.is_string(column.type) and pc.any(pc.match_substring(column, "\x00")).as_py():
                    value = next(v for v in column.to_pylist() if v and "\x00" in v)
                    raise ProviderError(
                        provider, f"table {table_name}, column {name}: the API sent {value!r}, with a NUL character, "
                        "which Postgres text cannot store; nothing of this load was written")
        return item

    return check


# -- a signal is not a provider's failure ----------------------------------------------------------
def stop_within(exc: BaseException) -> Optional[BaseException]:
    """The KeyboardInterrupt (a signal: SIGINT, or the run's SIGTERM handler's `Stopped`, or
    dlt's `SignalReceivedException`) or SystemExit behind a failure, if any: dlt wraps whatever
    stops one of its steps in `PipelineStepFailed`, an ordinary Exception."""
    for current in causes(exc):
        if isinstance(current, (KeyboardInterrupt, SystemExit)):
            return current
    return None


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what caused it, and so on (dlt keeps the step's exception as `.exception`)."""
    seen = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__ or getattr(current, "exception", None)


def describe_failure(provider: str, exc: BaseException, folder: Optional[str] = None) -> str:
    """One line for a failed load: the provider's own error when there is one, a full disk
    with its path (`folder`: where the load was writing). Secret values (the provider's key,
    the warehouse password) are masked whatever the error quotes."""
    line = next((str(current) for current in causes(exc) if isinstance(current, ProviderError)), None)
    if line is None:
        line = f"{provider}: {disk_full(exc, folder) or unwrapped(exc)}"
    name, _ = split_label(provider)
    if provider != name and line.startswith(f"{name}: "):
        line = f"{provider}: " + line[len(name) + 2:]  # which account failed
    return redact(line, _secrets(provider))


_NO_SPACE = "No space left on device"
_QUOTED_PATH = re.compile(r"""["'](/[^"']+)["']""")


def disk_full(exc: BaseException, folder: Optional[str] = None) -> Optional[str]:
    """The line for a failure whose cause is a full disk (ENOSPC from a file write, or DuckDB's
    IO error quoting it), naming the path written, or `folder` when the error names none, and
    the space left there; None for any other failure."""
    for current in causes(exc):
        full = isinstance(current, OSError) and current.errno == errno.ENOSPC
        if not full and _NO_SPACE not in str(current):
            continue
        quoted = _QUOTED_PATH.search(str(current))
        path = getattr(current, "filename", None) or (quoted.group(1) if quoted else None) or folder
        if not path:
            return f"disk full ({_NO_SPACE}); free space on the disk of the warehouse and of DLT_DATA_DIR"
        return (f"disk full: no space left on the device of {path}{_space_left(path)}; free space there, or move "
                "DLT_DATA_DIR (or the warehouse) to a larger disk")
    return None


def _space_left(path: str) -> str:
    probe = str(path)
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    try:
        return f" ({shutil.disk_usage(probe or '/').free // 1024} KiB free)"
    except OSError:
        return ""


def unwrapped(exc: BaseException) -> str:
    """What failed, without dlt's wrapping: `PipelineStepFailed` holds the step's exception, a
    `ResourceExtractionError` the resource's, and their messages repeat one another around the
    cause. The line names the step and the resource, then the cause itself (its type and
    message), cut at a word if long."""
    chain = list(causes(exc))
    step = next((getattr(current, "step", None) for current in chain if isinstance(current, PipelineStepFailed)), None)
    resource = next((current.pipe_name for current in chain if isinstance(current, ResourceExtractionError)), None)
    cause = next((current for current in reversed(chain) if not isinstance(current, _WRAPPERS)), chain[-1])
    where = f"the {step} step failed" if step else ""
    if resource:
        where += f" in resource {resource}" if where else f"resource {resource} failed"
    text = one_line(cause, 300)
    return f"{where + ': ' if where else ''}{type(cause).__name__}{': ' + text if text else ''}"


_WRAPPERS = (PipelineStepFailed, ResourceExtractionError)
"""dlt's exceptions that only carry another one."""


def _secrets(provider: str) -> List[str]:
    """The values an error line must never show: the account's key (as its source resolves
    it) and the provider level's, the warehouse password."""
    values = [lookup(provider, "api_key") or "", lookup(split_label(provider)[0], "api_key") or ""]
    try:
        values.append(urlsplit(postgres_url()).password or "")
    except ValueError:
        pass
    return values
