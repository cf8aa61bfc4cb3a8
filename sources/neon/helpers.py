"""Neon paging, request parameters and the pure functions that flatten pages into rows."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import pyarrow as pa
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from requests import Request, Response

from sources import windows
from sources.http import ProviderError
from sources.neon import settings
from sources.rows import table

PROVIDER = "neon"


class NeonCursorPaginator(BasePaginator):
    """Walks `pagination.cursor` of the projects endpoint.

    Neon does not document how the last page looks (it may still carry a cursor), so paging
    stops on whichever comes first: an empty page, a missing cursor, or a cursor already seen
    (the same as the previous one, or any earlier one). A page with fewer projects than asked
    for is not the end: a server may clamp `limit`, and stopping there would silently lose every
    later project; the one request for the empty page after the last is the price of never
    losing one. `stop_reason` says which signal ended paging, for logs and tests.
    """

    def __init__(self, cursor_param: str = "cursor"):
        super().__init__()
        self.cursor_param = cursor_param
        self.cursor: Optional[str] = None
        self.seen: set = set()
        self.pages = 0
        self.stop_reason: Optional[str] = None

    def update_state(self, response: Response, data: Optional[List[Any]] = None) -> None:
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("projects"), list):
            raise ProviderError(PROVIDER, "response has no 'projects' list", settings.PROJECTS_PATH)
        self.pages += 1
        pagination = body.get("pagination") or {}
        next_cursor = pagination.get("cursor") if isinstance(pagination, dict) else None
        self.stop_reason = end_of_paging(len(body["projects"]), next_cursor, self.cursor, self.seen)
        if self.stop_reason is not None:
            self._has_next_page = False
            return
        self.seen.add(next_cursor)
        self.cursor = next_cursor

    def update_request(self, request: Request) -> None:
        if self._has_next_page:
            request.params[self.cursor_param] = self.cursor


def end_of_paging(
    n_projects: int, next_cursor: Optional[str], previous_cursor: Optional[str], seen: Iterable[str] = ()
) -> Optional[str]:
    """Why paging ends after a page, or None to follow `next_cursor`. How many projects the page
    held against the `limit` asked for is no signal: a server may clamp `limit`."""
    if n_projects == 0:
        return "empty page"
    if not next_cursor:
        return "no cursor"
    if next_cursor == previous_cursor or next_cursor in seen:
        return "cursor repeated"
    return None


def parse_metrics(metrics: Optional[Any]) -> List[str]:
    """The `metrics` option (a list, a JSON list or a comma list; None = all), checked against
    Neon's names."""
    if metrics is None:
        return list(settings.METRICS)
    if isinstance(metrics, str):
        text = metrics.strip()
        try:
            names = json.loads(text) if text.startswith("[") else text.split(",")
        except ValueError:
            raise ProviderError(PROVIDER, f"{settings.METRICS_SETTING} is not a list: {text[:60]!r}") from None
    else:
        names = list(metrics)
    names = [str(name).strip() for name in names if str(name).strip()]
    unknown = [name for name in names if name not in settings.METRICS]
    if unknown or not names:
        problem = f"has unknown metric {unknown[0]!r}" if unknown else "is empty"
        raise ProviderError(PROVIDER, f"{settings.METRICS_SETTING} {problem}; choose from {', '.join(settings.METRICS)}")
    return list(dict.fromkeys(names))


def check_org_id(org_id: str) -> str:
    org_id = str(org_id).strip()
    if not re.match(settings.ORG_ID_PATTERN, org_id):
        raise ProviderError(
            PROVIDER, f"{settings.ORG_SETTING} must match {settings.ORG_ID_PATTERN} (e.g. org-cool-breeze-12345678)"
        )
    return org_id


def project_params(org_id: str, window: windows.Window, metrics: Sequence[str], limit: int = settings.PAGE_SIZE) -> Dict[str, Any]:
    """Query of the first page of one window; `from`/`to` are midnights, `to` exclusive."""
    return {
        "org_id": org_id,
        "from": windows.rfc3339(window.start),
        "to": windows.rfc3339(window.end),
        "granularity": settings.GRANULARITY,
        "metrics": ",".join(metrics),
        "limit": limit,
    }


def legacy_params(org_id: str, window: windows.Window) -> Dict[str, Any]:
    return {
        "org_id": org_id,
        "from": windows.rfc3339(window.start),
        "to": windows.rfc3339(window.end),
        "granularity": settings.GRANULARITY,
    }


def parse_timestamp(value: Any, field: str, endpoint: str, window: object = None) -> dt.datetime:
    """An RFC 3339 field as an aware UTC datetime; ProviderError naming the field otherwise."""
    try:
        instant = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise ProviderError(PROVIDER, f"field {field!r} is not an RFC 3339 timestamp: {str(value)[:40]!r}", endpoint, window)
    return instant.astimezone(dt.timezone.utc)


def _required(record: Mapping[str, Any], field: str, endpoint: str, window: object = None) -> Any:
    value = record.get(field) if isinstance(record, Mapping) else None
    if value is None:
        raise ProviderError(PROVIDER, f"response lacks required field {field!r}", endpoint, window)
    return value


def _integer(value: Any, field: str, endpoint: str, window: object = None) -> int:
    """An integer, also when it arrives as a string (`"120"`, `"120.0"`): Neon documents
    integers, but a field's JSON type can drift without notice."""
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value.strip()) if value.strip() else None
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or number != number or number != int(number):
        raise ProviderError(PROVIDER, f"field {field!r} is not an integer: {str(value)[:40]!r}", endpoint, window)
    return int(value) if isinstance(value, int) else int(number)


def _in_window(day: dt.date, window: Optional[windows.Window]) -> bool:
    return window is None or window.first <= day <= window.last


def flatten_projects(org_id: str, projects: Iterable[Mapping[str, Any]], window: Optional[windows.Window] = None) -> List[Dict[str, Any]]:
    """One row per project × day × metric from a page of the projects endpoint.

    `usage_date` is the UTC day of the timeframe's start. Timeframes outside `window` (when
    given) are dropped, so neighbouring windows never yield the same row twice. Fields Neon adds
    are ignored and optional ones may go missing; a missing key (`project_id`, `metric_name`),
    day (`timeframe_start`) or `value` is a ProviderError naming the field.
    """
    endpoint = settings.PROJECTS_PATH
    rows: List[Dict[str, Any]] = []
    for project in projects:
        project_id = str(_required(project, "project_id", endpoint, window))
        for period in project.get("periods") or ():
            for timeframe in period.get("consumption") or ():
                start = parse_timestamp(
                    _required(timeframe, "timeframe_start", endpoint, window), "timeframe_start", endpoint, window
                )
                end = timeframe.get("timeframe_end")
                if not _in_window(start.date(), window):
                    continue
                for metric in timeframe.get("metrics") or ():
                    rows.append(
                        {
                            "org_id": org_id,
                            "project_id": project_id,
                            "usage_date": start.date(),
                            "metric_name": str(_required(metric, "metric_name", endpoint, window)),
                            "value": _integer(_required(metric, "value", endpoint, window), "value", endpoint, window),
                            "period_id": _text(period.get("period_id")),
                            "period_plan": _text(period.get("period_plan")),
                            "timeframe_start": start,
                            "timeframe_end": parse_timestamp(end, "timeframe_end", endpoint, window) if end else None,
                        }
                    )
    return rows


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def flatten_account_periods(org_id: str, periods: Iterable[Mapping[str, Any]], window: Optional[windows.Window] = None) -> List[Dict[str, Any]]:
    """One row per day × legacy metric from the legacy account endpoint's `periods`.

    The legacy body carries each metric as a flat integer field of the timeframe; absent
    fields are skipped (not zero), unknown extra fields are ignored.
    """
    endpoint = settings.LEGACY_ACCOUNT_PATH
    rows: List[Dict[str, Any]] = []
    for period in periods:
        for timeframe in period.get("consumption") or ():
            start = parse_timestamp(_required(timeframe, "timeframe_start", endpoint), "timeframe_start", endpoint)
            end = timeframe.get("timeframe_end")
            if not _in_window(start.date(), window):
                continue
            for metric in settings.LEGACY_METRICS:
                if timeframe.get(metric) is None:
                    continue
                rows.append(
                    {
                        "org_id": org_id,
                        "usage_date": start.date(),
                        "metric_name": metric,
                        "value": _integer(timeframe[metric], metric, endpoint),
                        "period_id": _text(period.get("period_id")),
                        "period_plan": _text(period.get("period_plan")),
                        "timeframe_start": start,
                        "timeframe_end": parse_timestamp(end, "timeframe_end", endpoint) if end else None,
                    }
                )
    return rows


def to_table(rows: List[Dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows as an Arrow table with the raw table's explicit schema."""
    return table(PROVIDER, rows, schema)


# -- the fewest requests -----------------------------------------------------------------------
def min_requests(simulator: Any, first: dt.date, last: dt.date) -> int:
    """The fewest requests Neon's rules allow for first..last from `simulator`'s projects.

    One window per `settings.LIMITS.max_window_days`, each paged at the page size the server
    really serves (PAGE_SIZE asked, clamped to its `max_page_size`). A short page is not the end
    (PROVIDERS.md), so where the last page still carries a fresh cursor (`paging_end` `cursor` or
    `empty`) one more request meets the empty page that ends paging; a missing or repeated cursor
    ends paging on the last page.
    """
    served = min(settings.PAGE_SIZE, simulator.max_page_size)
    pages = max(1, -(-simulator.n_projects // served))
    if simulator.n_projects and simulator.paging_end in ("cursor", "empty"):
        pages += 1
    return pages * len(settings.LIMITS.windows(first, last))


def longest_chain(simulator: Any, first: dt.date, last: dt.date) -> int:
    """Every request: each page needs the previous page's cursor, and the windows share one
    paced client."""
    return min_requests(simulator, first, last)
