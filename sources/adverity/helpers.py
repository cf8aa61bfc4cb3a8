"""Adverity paging, request parameters and the pure functions that turn a page into rows."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pyarrow as pa
from dlt.sources.helpers.rest_client.paginators import PageNumberPaginator

from sources import windows
from sources.http import ProviderError
from sources.adverity import settings

PROVIDER = "adverity"


class CountPaginator(PageNumberPaginator):
    """Page numbers from 1, stopping by the body's `count` (total matching rows).

    The last page is the one that brings the rows seen to `count`, or an empty page. With full
    pages that is `page * page_size >= count`; counting the rows received instead of trusting
    `page_size` also stays right on an instance that caps pages lower than asked. `next`/`previous`
    links are ignored: whether the API sends them is undocumented, and asking past the end
    answers 404.
    """

    def __init__(self, page_size: int = settings.PAGE_SIZE):
        super().__init__(base_page=settings.FIRST_PAGE, page_param="page", total_path=None)
        self.page_size = page_size
        self.rows_seen = 0

    def init_request(self, request) -> None:  # type: ignore[no-untyped-def]
        self.rows_seen = 0
        super().init_request(request)

    def update_state(self, response, data: Optional[List[Any]] = None) -> None:  # type: ignore[no-untyped-def]
        body = response.json()
        count = page_count(body)
        if not isinstance(body.get("items"), list):
            raise ProviderError(PROVIDER, "response has no 'items' list", settings.USAGE_PATH)
        self.rows_seen += len(data or [])
        if not data or self.rows_seen >= count:
            self._has_next_page = False
        else:
            self.current_value += 1


def page_count(body: Any) -> int:
    """The `count` of a usage page, checked: the paging stops by it. A count sent as a string
    (`"86"`) is read as the number."""
    count = body.get("count") if isinstance(body, dict) else None
    number = _whole_number(count)
    if number is None or number < 0:
        raise ProviderError(PROVIDER, f"response has no valid 'count' (got {count!r})", settings.USAGE_PATH)
    return number


def _whole_number(value: Any) -> Optional[int]:
    """An integer from an int, an integral float or a numeric string; None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number == number and number.is_integer() else None


def auth_header(api_key: str, auth_scheme: str) -> Dict[str, str]:
    """`Authorization: Token <key>` or `Bearer <key>`, per SOURCES__ADVERITY__AUTH_SCHEME."""
    scheme = str(auth_scheme or "").strip()
    canonical = {name.lower(): name for name in settings.AUTH_SCHEMES}.get(scheme.lower())
    if canonical is None:
        raise ProviderError(
            PROVIDER,
            f"{settings.AUTH_SCHEME_SETTING}={scheme!r} is not supported; use "
            + " or ".join(settings.AUTH_SCHEMES)
            + " (Token for keys made through the API, Bearer for keys made in the UI)",
        )
    return {"Authorization": f"{canonical} {api_key}"}


def usage_params(window: windows.Window, now: Optional[dt.datetime] = None) -> Dict[str, Any]:
    """Query of one request window. `date_to` never goes past yesterday: today is incomplete
    and the API would cap it anyway. The paginator adds `page`."""
    last = min(window.last, windows.last_complete_day(now))
    return {
        "granularity": settings.GRANULARITY,
        "date_from": window.first.isoformat(),
        "date_to": last.isoformat(),
        "page_size": settings.PAGE_SIZE,
    }


def _required(item: Mapping[str, Any], field: str) -> Any:
    if field not in item:
        raise ProviderError(PROVIDER, f"usage item has no {field!r} field", settings.USAGE_PATH)
    return item[field]


def _count(item: Mapping[str, Any], field: str) -> int:
    value = _required(item, field)
    number = _whole_number(value)
    if number is None:
        raise ProviderError(PROVIDER, f"usage item has a non-integer {field!r}: {value!r}", settings.USAGE_PATH)
    return number


def _day(item: Mapping[str, Any]) -> dt.date:
    value = _required(item, "date")
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ProviderError(PROVIDER, f"usage item has a malformed 'date': {value!r}", settings.USAGE_PATH) from None


def flatten_usage_page(items: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Rows of the raw `usage` table from one page's `items`.

    A null `datastream_id` (usage no datastream can be charged with) is kept null; the key column
    `datastream_key` says `unattributed` instead. Fields the API adds are ignored; a missing
    required field is an error that names it.
    """
    rows = []
    for item in items:
        workspace_id = _required(item, "workspace_id")
        if workspace_id is None:
            raise ProviderError(PROVIDER, "usage item has a null 'workspace_id'", settings.USAGE_PATH)
        datastream_id = _required(item, "datastream_id")
        datastream_id = None if datastream_id in (None, "") else str(datastream_id)
        workspace_name = item.get("workspace_name")
        rows.append(
            {
                "usage_date": _day(item),
                "workspace_id": str(workspace_id),
                "workspace_name": None if workspace_name is None else str(workspace_name),
                "datastream_id": datastream_id,
                "datastream_key": datastream_id or settings.UNATTRIBUTED,
                "unique_rows": _count(item, "unique_rows"),
                "total_rows": _count(item, "total_rows"),
            }
        )
    return rows


def usage_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """An Arrow table of `usage` rows with the raw table's explicit schema."""
    return pa.Table.from_pylist(list(rows), schema=settings.USAGE_SCHEMA)


# -- the fewest requests -----------------------------------------------------------------------
def min_requests(simulator: Any, first: dt.date, last: dt.date) -> int:
    """The fewest requests Adverity's rules allow for first..last from `simulator`'s rows: each
    window of `settings.LIMITS` (no range limit is documented: one for the whole range) paged at
    the page size the server really serves (PAGE_SIZE asked, clamped to its `max_page_size`),
    only the last page short; the rows are the server's, which never lists today."""
    served = min(settings.PAGE_SIZE, simulator.max_page_size)
    return sum(max(1, -(-len(simulator.rows(window.first, window.last)) // served))
               for window in settings.LIMITS.windows(first, last))


def longest_chain(simulator: Any, first: dt.date, last: dt.date) -> int:
    """Every request: Adverity asks for one call at a time."""
    return min_requests(simulator, first, last)
