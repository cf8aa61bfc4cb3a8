"""Rafay paging, request parameters, and the pure functions that flatten a page into rows."""

from __future__ import annotations

import datetime as dt
import re
from collections import deque
from dataclasses import dataclass
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

import pyarrow as pa
from dlt.sources.helpers.rest_client.paginators import OffsetPaginator

from sources import windows
from sources.http import ProviderError
from sources.rows import shown, table

from . import settings

PROVIDER = "rafay"

Row = Dict[str, Any]
T = TypeVar("T")
R = TypeVar("R")


# -- requests ------------------------------------------------------------------------------------
def window_params(window: windows.Window) -> Dict[str, str]:
    """The range of one request window: midnight to the next midnight(s), RFC 3339 UTC."""
    return {"range_from": windows.rfc3339(window.start), "range_to": windows.rfc3339(window.end)}


def usage_rows(envelope: Any, endpoint: str = "", window: object = None) -> List[Row]:
    """The page's rows: the first list-valued field ending in `_usage_data`.

    The instance endpoints use `instance_usage_data`; the profile key is not published, hence the
    search. A `null` list counts as empty; a body without any such field is an API error.
    """
    if not isinstance(envelope, dict):
        raise ProviderError(PROVIDER, f"expected a JSON object, got {type(envelope).__name__}", endpoint, window)
    empty_key = None
    for key, value in envelope.items():
        if key.endswith(settings.USAGE_LIST_SUFFIX):
            if isinstance(value, list):
                return value
            if value is None and empty_key is None:
                empty_key = key
    if empty_key is not None:
        return []
    raise ProviderError(
        PROVIDER, f"response has no list field ending in '{settings.USAGE_LIST_SUFFIX}'", endpoint, window
    )


def unique_keys(rows: Sequence[Any], key_fields: Sequence[str], endpoint: str = "", window: object = None) -> set:
    """The keys of one page's rows. A key twice in one page (the same instance, or the same
    profile and tenant org) is a malformed answer: loading both would count its hours twice, and
    keeping either would be a guess."""
    keys: set = set()
    for row in rows:
        if not isinstance(row, dict):
            continue
        key = tuple(row.get(field) for field in key_fields)
        if key in keys:
            raise ProviderError(PROVIDER, f"{_describe_key(key_fields, key)} appears twice in one page", endpoint, window)
        keys.add(key)
    return keys


def _describe_key(key_fields: Sequence[str], key: Tuple[Any, ...]) -> str:
    """`instance_id 'i-1'`, or `profile_id, instance_organization_id ('p', 'o')`."""
    if len(key_fields) == 1:
        return f"{key_fields[0]} {key[0]!r}"
    return f"{', '.join(key_fields)} {key!r}"


def echoed_limit(envelope: Dict[str, Any]) -> Optional[int]:
    """The `limit` the server says it applied (a clamping server echoes the clamped one), or None."""
    limit = envelope.get("limit")
    if isinstance(limit, str) and limit.strip().isdigit():
        limit = int(limit)
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None


class UsagePaginator(OffsetPaginator):
    """Offset/limit paging over one request window, with the stop rules Rafay needs.

    Asks for `limit` rows every time and advances by the rows that came back: the maximum is not
    documented, and a server that clamps a large `limit` echoes the one it applied in the
    envelope, so the fewest requests come from asking big. Stops on an empty page, on a page
    shorter than the echoed `limit` (without an echo a short page may be a clamped one, so it is
    followed), or when the next offset reaches `count` where `count` is evidently the total
    (larger than the page; the docs do not say whether it is the total or the page's count, so
    an ambiguous `count` never ends paging early). A key twice in one page, or a page that
    repeats rows already read (a server that ignores `offset`), raises ProviderError instead of
    looping or loading the rows twice.
    """

    def __init__(self, limit: int, key_fields: Sequence[str], endpoint: str = "", window: object = None):
        super().__init__(limit=limit, offset=0, offset_param="offset", limit_param="limit", total_path=None)
        self.key_fields = tuple(key_fields)
        self.endpoint = endpoint
        self.window = window
        self.seen: set = set()

    def update_state(self, response, data: Optional[List[Any]] = None) -> None:  # type: ignore[no-untyped-def]
        envelope = data[0] if data else response.json()
        rows = usage_rows(envelope, self.endpoint, self.window)
        keys = unique_keys(rows, self.key_fields, self.endpoint, self.window)
        repeated = keys & self.seen
        if repeated:
            raise ProviderError(
                PROVIDER,
                f"the API ignored offset={self.current_value}: the page repeats rows already read "
                f"({len(repeated)} of {len(rows)}, e.g. {_describe_key(self.key_fields, min(repeated, key=repr))}); "
                "stopped instead of loading duplicates",
                self.endpoint,
                self.window,
            )
        self.seen |= keys
        count = envelope.get("count")
        served = echoed_limit(envelope)
        next_offset = self.current_value + len(rows)
        if not rows or (served is not None and len(rows) < served):
            self._has_next_page = False
        elif isinstance(count, int) and count > len(rows) and next_offset >= count:
            self._has_next_page = False
        else:
            self.current_value = next_offset


def pages_for(n_rows: int, limit: int) -> int:
    """Requests `UsagePaginator` sends for a window of `n_rows` (total `count` semantics, `limit`
    the one the server applies and echoes)."""
    offset, pages = 0, 0
    while True:
        pages += 1
        page = max(0, min(limit, n_rows - offset))
        if page < limit or (n_rows > page and offset + page >= n_rows):
            return pages
        offset += limit


ENDPOINT_KINDS = ("compute", "service")
"""The instance and profile endpoints come in these two kinds, four endpoints in all."""


def window_pages(simulator: Any, first: dt.date, last: dt.date, instance_page_size: int = settings.INSTANCE_PAGE_SIZE,
                 profile_page_size: int = settings.PROFILE_PAGE_SIZE) -> Iterator[int]:
    """Requests per request window and endpoint of first..last from `simulator`'s rows: one
    window per `settings.LIMITS.max_window_days` (a day), paged at the `limit` the server really
    applies (the page size asked, clamped to its `max_limit`) with `UsagePaginator`'s stop rules."""

    def served(asked: int) -> int:
        return asked if simulator.max_limit is None else min(asked, simulator.max_limit)

    for window in settings.LIMITS.windows(first, last):
        for kind in ENDPOINT_KINDS:
            yield pages_for(len(simulator.instance_rows(kind, window.start, window.end)), served(instance_page_size))
            yield pages_for(len(simulator.profile_rows(kind, window.start, window.end)), served(profile_page_size))


def min_requests(simulator: Any, first: dt.date, last: dt.date, instance_page_size: int = settings.INSTANCE_PAGE_SIZE,
                 profile_page_size: int = settings.PROFILE_PAGE_SIZE) -> int:
    """The fewest requests Rafay's rules allow for first..last: every window's pages. Asking a
    large page and advancing by the rows served makes this the fewest whatever the server's
    maximum, as long as the page asked is at least that maximum."""
    return sum(window_pages(simulator, first, last, instance_page_size, profile_page_size))


def longest_chain(simulator: Any, first: dt.date, last: dt.date, instance_page_size: int = settings.INSTANCE_PAGE_SIZE,
                  profile_page_size: int = settings.PROFILE_PAGE_SIZE) -> int:
    """The pages of the longest window: windows and endpoints are independent of each other, a
    window's pages follow one another (each offset comes from the page before)."""
    return max(window_pages(simulator, first, last, instance_page_size, profile_page_size), default=0)


# -- flattening (pure) -------------------------------------------------------------------------
def metric_name(parameter_name: str) -> str:
    """`GPU` -> `gpu_hours`, `Memory` -> `memory_hours` (lower case, non-alphanumerics as `_`)."""
    return re.sub(r"[^0-9a-z]+", "_", parameter_name.strip().lower()).strip("_") + "_hours"


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # an integer beyond a double's range overflows
        return None
    return number if number == number and number not in (float("inf"), float("-inf")) else None


def parameter_metric(parameter: Row) -> Optional[Tuple[str, float]]:
    """The contract metric of one parameter, or None.

    A label parameter (`is_label` true) carries a size in `label_value` and the hours in
    `raw_usage`: label value x hours (`CPU` 24 for 2 h -> `cpu_hours` 48). A quantity parameter
    (`is_label` false) already has quantity x hours in `raw_usage`. A non-numeric label such as
    `ServiceID` is no metric.
    """
    name = parameter.get("name")
    raw_usage = _number(parameter.get("raw_usage"))
    if not name or raw_usage is None:
        return None
    if parameter.get("is_label"):
        size = _number(parameter.get("label_value"))
        return None if size is None else (metric_name(name), size * raw_usage)
    return metric_name(name), raw_usage


def _timestamp(value: Any, field: str, endpoint: str, window: object) -> Optional[dt.datetime]:
    if value in (None, ""):
        return None
    try:
        instant = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ProviderError(PROVIDER, f"field {field!r} is not a timestamp: {str(value)[:40]!r}", endpoint, window) from None
    return instant.astimezone(windows.UTC) if instant.tzinfo else instant.replace(tzinfo=windows.UTC)


def _required(row: Row, field: str, endpoint: str, window: object) -> Any:
    value = row.get(field)
    if value is None or value == "":
        raise ProviderError(PROVIDER, f"required field {field!r} missing in a usage row", endpoint, window)
    return value


def _raw_usage(row: Row, endpoint: str, window: object) -> float:
    value = _number(_required(row, "raw_usage", endpoint, window))
    if value is None:
        raise ProviderError(PROVIDER, f"field 'raw_usage' is not a finite number: {shown(row.get('raw_usage'))}",
                            endpoint, window)
    return value


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def parameter_rows(row: Row, keys: Row, endpoint: str = "", window: object = None) -> List[Row]:
    """A usage row's `parameters`, one row each, prefixed with `keys` (day and row identity).

    Two parameters whose names map to one metric (`CPU` and `cpu `), or one that maps to the
    row's own `usage_hours` (`Usage`), are a malformed answer: either figure could be the one
    meant, and the facts would hold two values for one metric.
    """
    flattened: List[Row] = []
    owners: Dict[str, str] = {settings.USAGE_METRIC: "the row's own raw_usage"}  # metric -> who gives it
    for parameter in row.get("parameters") or []:
        name = str(_required(parameter, "name", endpoint, window))
        owner = owners.get(metric_name(name))
        if owner is not None:
            clash = "appears twice" if owner == repr(name) else f"maps to metric {metric_name(name)!r}, as does {owner}"
            identity = ", ".join(f"{field} {value!r}" for field, value in keys.items() if field != "usage_date")
            raise ProviderError(PROVIDER, f"field 'parameters[].name' {name!r} {clash} in the usage row of {identity}",
                                endpoint, window)
        owners[metric_name(name)] = repr(name)
        metric = parameter_metric(parameter)
        flattened.append({
            **keys,
            "parameter_name": str(name),
            "is_label": None if parameter.get("is_label") is None else bool(parameter.get("is_label")),
            "label_value": _text(parameter.get("label_value")),
            "raw_usage": _number(parameter.get("raw_usage")),
            "usage": _text(parameter.get("usage")),
            "metric": metric[0] if metric else None,
            "quantity": metric[1] if metric else None,
        })
    return flattened


def flatten_instances(envelope: Row, usage_date: dt.date, endpoint: str = "",
                      window: object = None) -> Tuple[List[Row], List[Row]]:
    """An instance page -> (instance rows, parameter rows) for `usage_date`."""
    rows, parameters = [], []
    for item in usage_rows(envelope, endpoint, window):
        keys = {
            "usage_date": usage_date,
            "instance_id": str(_required(item, "instance_id", endpoint, window)),
            "instance_organization_id": str(_required(item, "instance_organization_id", endpoint, window)),
        }
        rows.append({
            **keys,
            "instance_name": _text(item.get("instance_name")),
            "instance_organization_name": _text(item.get("instance_organization_name")),
            "instance_project_id": _text(item.get("instance_project_id")),
            "instance_project_name": _text(item.get("instance_project_name")),
            "profile_id": _text(item.get("profile_id")),
            "profile_name": _text(item.get("profile_name")),
            "created_at": _timestamp(item.get("created_at"), "created_at", endpoint, window),
            "start_time": _timestamp(item.get("start_time"), "start_time", endpoint, window),
            "end_time": _timestamp(item.get("end_time"), "end_time", endpoint, window),
            "usage": _text(item.get("usage")),
            "raw_usage": _raw_usage(item, endpoint, window),
            "partner_id": _text(envelope.get("partner_id")),
            "organization_id": _text(envelope.get("organization_id")),
        })
        parameters.extend(parameter_rows(item, keys, endpoint, window))
    return rows, parameters


def flatten_profiles(envelope: Row, usage_date: dt.date, endpoint: str = "",
                     window: object = None) -> Tuple[List[Row], List[Row]]:
    """A profile page -> (profile rows, parameter rows) for `usage_date`.

    A profile row without `instance_organization_id` is attributed to the envelope's
    `organization_id` (the partner org), so the account key is never null.
    """
    rows, parameters = [], []
    for item in usage_rows(envelope, endpoint, window):
        org_id = item.get("instance_organization_id") or envelope.get("organization_id")
        if not org_id:
            _required(item, "instance_organization_id", endpoint, window)
        keys = {
            "usage_date": usage_date,
            "profile_id": str(_required(item, "profile_id", endpoint, window)),
            "instance_organization_id": str(org_id),
        }
        rows.append({
            **keys,
            "profile_name": _text(item.get("profile_name")),
            "instance_organization_name": _text(item.get("instance_organization_name")),
            "usage": _text(item.get("usage")),
            "raw_usage": _raw_usage(item, endpoint, window),
            "partner_id": _text(envelope.get("partner_id")),
            "organization_id": _text(envelope.get("organization_id")),
        })
        parameters.extend(parameter_rows(item, keys, endpoint, window))
    return rows, parameters


def to_table(rows: List[Row], schema: pa.Schema) -> pa.Table:
    return table(PROVIDER, rows, schema)


@dataclass(frozen=True)
class UsageLevel:
    """What differs between instance and profile endpoints: row identity, flattening, tables."""

    flatten: Callable[..., Tuple[List[Row], List[Row]]]
    key_fields: Tuple[str, ...]
    schema: pa.Schema
    primary_key: List[str]
    parameter_schema: pa.Schema
    parameter_primary_key: List[str]


INSTANCES = UsageLevel(flatten_instances, settings.INSTANCE_KEY_FIELDS, settings.INSTANCE_SCHEMA,
                       settings.INSTANCE_PRIMARY_KEY, settings.INSTANCE_PARAMETER_SCHEMA,
                       settings.INSTANCE_PARAMETER_PRIMARY_KEY)
PROFILES = UsageLevel(flatten_profiles, settings.PROFILE_KEY_FIELDS, settings.PROFILE_SCHEMA,
                      settings.PROFILE_PRIMARY_KEY, settings.PROFILE_PARAMETER_SCHEMA,
                      settings.PROFILE_PARAMETER_PRIMARY_KEY)
LEVELS = {"instance": INSTANCES, "profile": PROFILES}
"""An endpoint's `level` (settings.ENDPOINTS) -> what its rows are."""


# -- concurrency -------------------------------------------------------------------------------
def ordered_map(func: Callable[[T], R], items: Iterable[T], max_workers: int) -> Iterator[R]:
    """`map(func, items)` on a small thread pool: results in input order, at most `max_workers`
    calls running or done and waiting to be taken, so memory does not grow with the day's size
    times the pool. The first item runs alone, so a bad key or URL fails after one call. The
    first error is raised and pending calls are cancelled."""
    iterator = iter(items)
    first = next(iterator, None)
    if first is None:
        return
    yield func(first)
    with ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="rafay-day") as pool:
        pending: Deque[Future] = deque()
        try:
            for item in iterator:
                pending.append(pool.submit(func, item))
                if len(pending) >= max(1, max_workers):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
