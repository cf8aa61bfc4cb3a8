"""Adverity paging, request parameters and the pure functions that turn a page into rows."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pyarrow as pa
from dlt.sources.helpers.rest_client.paginators import PageNumberPaginator

from sources import windows
from sources.http import ProviderError
from sources.adverity import settings
from sources.rows import table

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


def month_end(day: dt.date) -> dt.date:
    """The last day of `day`'s month."""
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - windows.ONE_DAY


def months_of(window: windows.Window, now: Optional[dt.datetime] = None) -> windows.Window:
    """The days of every month `window` touches, whole: from the 1st of its first month to the
    last day of its last month, but never past yesterday (the current month is month to date).
    One request range for all of them: the monthly answer has one item per month."""
    return windows.Window(window.first.replace(day=1), min(month_end(window.last), windows.last_complete_day(now)))


def monthly_params(months: windows.Window) -> Dict[str, Any]:
    """Query of the monthly figures of `months` (from `months_of`). The paginator adds `page`."""
    return {
        "granularity": settings.MONTHLY_GRANULARITY,
        "date_from": months.first.isoformat(),
        "date_to": months.last.isoformat(),
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
    text = str(value)[:10]
    try:
        # a monthly item's date may come as the month alone (`2026-03`)
        return dt.date.fromisoformat(text + "-01" if len(text) == 7 else text)
    except ValueError:
        raise ProviderError(PROVIDER, f"usage item has a malformed 'date': {value!r}", settings.USAGE_PATH) from None


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _usage_fields(item: Mapping[str, Any]) -> Dict[str, Any]:
    """The fields a daily and a monthly item share, checked: workspace, datastream (a null id
    kept null, its key `unattributed`), the two counts."""
    workspace_id = _required(item, "workspace_id")
    if workspace_id is None:
        raise ProviderError(PROVIDER, "usage item has a null 'workspace_id'", settings.USAGE_PATH)
    datastream_id = _required(item, "datastream_id")
    datastream_id = None if datastream_id in (None, "") else str(datastream_id)
    return {
        "workspace_id": str(workspace_id),
        "workspace_name": _text(item.get("workspace_name")),
        "datastream_id": datastream_id,
        "datastream_key": datastream_id or settings.UNATTRIBUTED,
        "unique_rows": _count(item, "unique_rows"),
        "total_rows": _count(item, "total_rows"),
    }


def flatten_usage_page(items: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Rows of the raw `usage` table from one page's `items`.

    A null `datastream_id` (usage no datastream can be charged with) is kept null; the key column
    `datastream_key` says `unattributed` instead. `datastream_name` is kept should an item carry
    one (none does today); other fields the API adds are ignored, and a missing required field
    is an error that names it.
    """
    rows = []
    for item in items:
        fields = _usage_fields(item)
        rows.append(
            {
                "usage_date": _day(item),
                **{name: fields[name] for name in ("workspace_id", "workspace_name", "datastream_id", "datastream_key")},
                "datastream_name": _text(item.get("datastream_name")),
                "unique_rows": fields["unique_rows"],
                "total_rows": fields["total_rows"],
            }
        )
    return rows


def flatten_monthly_page(items: Sequence[Mapping[str, Any]], months: windows.Window,
                         fetched_at: dt.datetime) -> List[Dict[str, Any]]:
    """Rows of the raw `monthly_usage` table from one page of the monthly answer for `months`
    (from `months_of`): the month (its 1st), the same fields as a daily row, and `through_date`,
    the last day the figure covers. An item of a month not asked for is dropped."""
    rows = []
    for item in items:
        month = _day(item).replace(day=1)
        if not months.first <= month <= months.last:
            continue
        rows.append(
            {
                "usage_month": month,
                **_usage_fields(item),
                "through_date": min(month_end(month), months.last),
                "fetched_at": fetched_at,
            }
        )
    return rows


def usage_table(rows: Sequence[Mapping[str, Any]], schema: pa.Schema = settings.USAGE_SCHEMA) -> pa.Table:
    """An Arrow table of `usage` rows (or of `monthly_usage` rows with its schema) with the raw
    table's explicit schema."""
    return table(PROVIDER, rows, schema, settings.USAGE_PATH)


# -- the fewest requests -----------------------------------------------------------------------
def _pages(n_rows: int, served: int) -> int:
    """Pages of one paging run: only the last one short, and one (empty) when nothing matches."""
    return max(1, -(-n_rows // served))


def min_requests(simulator: Any, first: dt.date, last: dt.date) -> int:
    """The fewest requests Adverity's rules allow for first..last from `simulator`'s rows: the
    daily pages of each window of `settings.LIMITS` (no range limit is documented: one for the
    whole range), then the monthly pages of every month the days touch (one range), paged at
    the page size the server really serves (PAGE_SIZE asked, clamped to its `max_page_size`),
    only the last page short; the rows are the server's, which never lists today."""
    served = min(settings.PAGE_SIZE, simulator.max_page_size)
    daily = sum(_pages(len(simulator.rows(window.first, window.last)), served)
                for window in settings.LIMITS.windows(first, last))
    last = min(last, windows.last_complete_day())
    if first > last:
        return daily
    months = months_of(windows.Window(first, last))
    return daily + _pages(len(simulator.monthly_rows(months.first, months.last)), served)


def longest_chain(simulator: Any, first: dt.date, last: dt.date) -> int:
    """Every request: Adverity asks for one call at a time, the daily and monthly pages alike."""
    return min_requests(simulator, first, last)
