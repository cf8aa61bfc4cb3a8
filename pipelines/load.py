"""Load one provider into its raw dataset: one dlt pipeline per provider and destination."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Set

import dlt
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import Destination, check_provider, destination as resolve_destination, source_function
from sources import windows
from sources.http import ProviderError, REQUESTS_SENT

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
    A failure is returned as a failed LoadResult (or raised with `raise_errors`), never half-done:
    dlt keeps the load package and the next run completes it before extracting anything new.
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
        source = source_function(provider)(**source_kwargs)
        for resource in source.resources.selected.values():
            resource.add_map(_day_tracker(result.days))
        info = pipeline.run(source, loader_file_format=dest.loader_file_format)
        info.raise_on_failed_jobs()
        counts = pipeline.last_trace.last_normalize_info.row_counts if pipeline.last_trace.last_normalize_info else {}
        result.rows = sum(n for table, n in counts.items() if not table.startswith("_dlt"))
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


def _day_tracker(days: Set[dt.date]):
    def track(item: Any) -> Any:
        if isinstance(item, pa.Table) and "usage_date" in item.column_names and item.num_rows:
            days.update(pc.unique(item.column("usage_date")).to_pylist())
        return item

    return track


def describe_failure(provider: str, exc: BaseException) -> str:
    """One line for a failed load: the provider's own error when there is one."""
    seen = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ProviderError):
            return str(current)
        current = current.__cause__ or current.__context__ or getattr(current, "exception", None)
    text = " ".join(str(exc).split())
    return f"{provider}: {type(exc).__name__}: {text[:300]}"
