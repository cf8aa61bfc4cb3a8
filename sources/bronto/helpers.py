"""Bronto requests and the pure functions that turn its bodies into daily rows.

/usage/organizations/logs takes an absolute window: asked from midnight to midnight in one
slice per UTC day, it gives each log's exact bytes of each day (`flatten_logs_usage`), unless
it lists as many logs as its `limit` allows, when some may be missing.

/usage, the fallback for such a day, has no absolute window and no paging: one request per
usage type answers one page that covers `Last <n> minutes` up to the server's "now", cut into
slices whose boundaries follow the request time. So the source asks for a window that starts
just before the first day's midnight, and splits the slices into UTC days here
(`flatten_usage`): a slice straddling midnight is shared between the two days in proportion to
time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import pyarrow as pa

from sources import windows
from sources.bronto import settings
from sources.rows import shown, table
from sources.secrets import redact

PROVIDER = "bronto"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MS_PER_MINUTE = 60_000
MS_PER_DAY = 86_400_000
LOG_SLICE = "groups_series[].timeseries[]"
"""Where a slice sits in a /usage/organizations/logs body, for errors that name the field."""


def to_ms(instant: dt.datetime) -> float:
    """Epoch milliseconds of an aware instant (sub-millisecond parts kept as a fraction)."""
    return (instant - EPOCH) / dt.timedelta(milliseconds=1)


def from_ms(ms: float) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def relative_range(minutes: int) -> str:
    """The only kind of range /usage accepts: `Last 90 minutes` (singular for 1)."""
    return f"Last {minutes} minute" if minutes == 1 else f"Last {minutes} minutes"


def window_minutes(now: dt.datetime, first: dt.date, margin: int = settings.WINDOW_MARGIN_MINUTES) -> int:
    """Minutes to ask for so that a window ending at `now` starts before `first`'s midnight."""
    return math.ceil((now - windows.midnight(first)) / dt.timedelta(minutes=1)) + margin


def usage_params(usage_type: str, minutes: int, max_slices: int = settings.MAX_SLICES) -> Dict[str, Any]:
    """Query of one /usage request: the whole window in slices as small as the limit allows."""
    return {
        "time_range": relative_range(minutes),
        "num_of_slices": min(max_slices, minutes),
        "usage_type": usage_type,
    }


@dataclass(frozen=True)
class Slice:
    """One time slice of a /usage series: `[start_ms, end_ms)` in epoch milliseconds."""

    start_ms: float
    end_ms: float
    bytes: float
    count: int


class BodyError(ValueError):
    """A body the source cannot read; the message names the field (and never a
    credential, even one the body quotes)."""

    def __init__(self, message: str):
        super().__init__(redact(message))


def _body_error(field: str, detail: str = "") -> BodyError:
    return BodyError(f"response field {field!r} {detail or 'is missing'}")


def usage_type_of(usage: Mapping[str, Any]) -> Optional[str]:
    """The usage type an object describes, from its id (`<org>#ingestion-org_usage`) or name."""
    usage_id, name = str(usage.get("id") or ""), str(usage.get("name") or "")
    for usage_type in settings.USAGE_TYPES:
        if usage_id.endswith(f"#{usage_type}-org_usage") or name == f"{usage_type}_org_usage":
            return usage_type
    return None


def select_usage(body: Any, usage_type: str) -> Mapping[str, Any]:
    """The usage object of `usage_type`, whether the API answered one object or a JSON list."""
    if isinstance(body, Mapping):
        if usage_type_of(body) not in (None, usage_type):
            raise _body_error("id", f"names {usage_type_of(body)!r} usage, {usage_type!r} was asked for")
        return body
    if isinstance(body, list):
        objects = [item for item in body if isinstance(item, Mapping)]
        matching = [item for item in objects if usage_type_of(item) == usage_type]
        if matching:
            return matching[0]
        if len(objects) == 1 and usage_type_of(objects[0]) is None:
            return objects[0]
        raise _body_error("id", f"names no {usage_type!r} usage in the list answered")
    raise _body_error("series", f"cannot be read from a {type(body).__name__} body")


def organization_id(usage: Mapping[str, Any]) -> str:
    """The organization id, the part of `id` before `#`."""
    usage_id = usage.get("id")
    if not isinstance(usage_id, str) or "#" not in usage_id or not usage_id.split("#", 1)[0]:
        raise _body_error("id", f"is not '<organization-id>#<usage_type>-org_usage' (got {usage_id!r})")
    return usage_id.split("#", 1)[0]


def finite_number(value: Any, field: str) -> float:
    """A figure the API may send as a string (`"546"`, `"1274155.0"`) or a number; null counts as
    zero. `"NaN"`, `"Infinity"`, `"-inf"`, a JSON NaN/Infinity literal, a string that overflows to
    infinity or a boolean is a BodyError naming `field`: `float()` would take them, and a single
    one turns a whole day's sum into nan or inf."""
    if value is None or value == "":
        return 0.0
    number = None
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):  # an integer beyond a double's range overflows
            pass
    if number is None or not math.isfinite(number):
        raise _body_error(field, f"is not a finite number (got {shown(value)})")
    return number


def _number(entry: Mapping[str, Any], field: str, where: str = "series[]") -> float:
    """`entry[field]` as a finite number; a missing field is a BodyError naming `where.field`."""
    if field not in entry:
        raise _body_error(f"{where}.{field}")
    return finite_number(entry[field], f"{where}.{field}")


def series_slices(usage: Mapping[str, Any], range_ms: float, num_of_slices: int) -> List[Slice]:
    """The slices of one usage object, ordered, with numbers coerced.

    Each slice ends where the next one starts; the last one ends a slice width later (width =
    the requested range / num_of_slices).
    """
    series = usage.get("series")
    if not isinstance(series, list):
        raise _body_error("series", "is missing or not a list")
    points = sorted(((_number(entry, "@timestamp"), entry) for entry in series), key=lambda point: point[0])
    width = range_ms / num_of_slices
    slices = []
    for index, (start, entry) in enumerate(points):
        end = points[index + 1][0] if index + 1 < len(points) else start + width
        if end <= start:
            raise _body_error("series[].@timestamp", f"repeats {int(start)}")
        slices.append(Slice(start, end, _number(entry, "value"), int(round(_number(entry, "count")))))
    return slices


def covered_days(slices: Sequence[Slice], first: dt.date, last: dt.date) -> List[dt.date]:
    """The days of first..last that the (contiguous) slices cover from midnight to midnight."""
    if not slices:
        return []
    begin, end = slices[0].start_ms, slices[-1].end_ms
    return [day for day in windows.days(first, last)
            if begin <= to_ms(windows.midnight(day)) and to_ms(windows.midnight(day)) + MS_PER_DAY <= end]


def day_rows(slices: Sequence[Slice], first: dt.date, last: dt.date) -> List[Dict[str, Any]]:
    """Split slices into UTC days: one row per slice and fully covered day it intersects.

    `slice_*` keep the whole slice; `day_bytes`/`day_count` are its share in the day in
    proportion to time, so a slice straddling midnight is shared by both days and the shares
    of one slice add up to the slice. Days not fully covered are left out.
    """
    rows = []
    for day in covered_days(slices, first, last):
        day_start = to_ms(windows.midnight(day))
        day_end = day_start + MS_PER_DAY
        for piece in slices:
            overlap = min(piece.end_ms, day_end) - max(piece.start_ms, day_start)
            if overlap <= 0:
                continue
            share = 1.0 if overlap == piece.end_ms - piece.start_ms else overlap / (piece.end_ms - piece.start_ms)
            rows.append({
                "usage_date": day,
                "slice_start": from_ms(piece.start_ms),
                "slice_end": from_ms(piece.end_ms),
                "slice_bytes": piece.bytes,
                "slice_count": piece.count,
                "day_bytes": piece.bytes * share,
                "day_count": piece.count * share,
            })
    return rows


def flatten_usage(body: Any, usage_type: str, range_ms: float, num_of_slices: int,
                  first: dt.date, last: dt.date, fetched_at: dt.datetime) -> List[Dict[str, Any]]:
    """A /usage body (object or list) to rows of the raw table for the covered days of first..last:
    the organization's slices, split into days."""
    usage = select_usage(body, usage_type)
    organization = organization_id(usage)
    common = {
        "organization_id": organization,
        "usage_type": usage_type,
        "resource_type": settings.ORGANIZATION,
        "resource_id": organization,
        "resource_name": None,
        "is_exact": _flag(usage.get("is_exact")),
        "fetched_at": fetched_at,
    }
    return [{**common, **row} for row in day_rows(series_slices(usage, range_ms, num_of_slices), first, last)]


def _flag(value: Any) -> Optional[bool]:
    return value if isinstance(value, bool) else None


def logs_params(usage_type: str, first: dt.date, last: dt.date) -> Dict[str, Any]:
    """Query of one /usage/organizations/logs request: first..last from midnight to midnight,
    one slice per UTC day, as many logs as the endpoint lists."""
    return {
        "from_ts": int(to_ms(windows.midnight(first))),
        "to_ts": int(to_ms(windows.midnight(last + dt.timedelta(days=1)))),
        "usage_type": usage_type,
        "num_of_slices": (last - first).days + 1,
        "limit": settings.LOGS_LIMIT,
    }


@dataclass(frozen=True)
class LogsUsage:
    """What one /usage/organizations/logs answer gives: its rows and how many logs it listed."""

    rows: List[Dict[str, Any]]
    listed: int

    @property
    def cut(self) -> bool:
        """Whether logs may be missing: the answer lists as many as the endpoint's limit."""
        return self.listed >= settings.LOGS_LIMIT


def flatten_logs_usage(body: Any, organization: str, usage_type: str, first: dt.date, last: dt.date,
                       fetched_at: dt.datetime) -> LogsUsage:
    """A /usage/organizations/logs body (asked with `logs_params`) to rows of the raw table: one
    row per log and day of first..last that it wrote to, the day's slice whole (exact: no slice
    straddles midnight). A listed log's day without bytes or events has no row.

    Slices off the days' midnights, a log without a key, or a log or slice listed twice are a
    BodyError; a figure that is not a finite number too. Whether the list may be cut is the
    caller's to judge (`LogsUsage.cut`): the rows are exact for the logs listed either way.
    """
    if not isinstance(body, Mapping):
        raise _body_error("groups_series", f"cannot be read from a {type(body).__name__} body")
    groups = body.get("groups_series")
    if not isinstance(groups, list):
        raise _body_error("groups_series", "is missing or not a list")
    midnights = {to_ms(windows.midnight(day)): day for day in windows.days(first, last)}
    common = {
        "organization_id": organization,
        "usage_type": usage_type,
        "resource_type": settings.LOG,
        "is_exact": _flag(body.get("is_exact")),
        "fetched_at": fetched_at,
    }
    rows: List[Dict[str, Any]] = []
    logs = set()
    for group in groups:
        log_id = group.get("key") if isinstance(group, Mapping) else None
        if not isinstance(log_id, str) or not log_id:
            raise _body_error("groups_series[].key", f"is not a log id (got {str(log_id)[:40]!r})")
        if log_id in logs:
            raise _body_error("groups_series[].key", f"lists log {log_id!r} twice")
        logs.add(log_id)
        series = group.get("timeseries")
        if not isinstance(series, list):
            raise _body_error("groups_series[].timeseries", "is missing or not a list")
        name = group.get("name")
        seen = set()
        for entry in series:
            if not isinstance(entry, Mapping):
                raise _body_error(LOG_SLICE, f"is not an object (got {str(entry)[:40]!r})")
            start = _number(entry, "@timestamp", LOG_SLICE)
            if start not in midnights:
                raise _body_error(f"{LOG_SLICE}.@timestamp", f"is not a UTC midnight of {first}..{last} (got {int(start)})")
            if start in seen:
                raise _body_error(f"{LOG_SLICE}.@timestamp", f"repeats {int(start)} for log {log_id!r}")
            seen.add(start)
            value = _number(entry, "value", LOG_SLICE)
            count = int(round(_number(entry, "count", LOG_SLICE)))
            if value == 0 and count == 0:
                continue
            rows.append({
                **common,
                "usage_date": midnights[start],
                "resource_id": log_id,
                "resource_name": str(name) if name is not None else None,
                "slice_start": from_ms(start),
                "slice_end": from_ms(start + MS_PER_DAY),
                "slice_bytes": value,
                "slice_count": count,
                "day_bytes": value,
                "day_count": float(count),
            })
    return LogsUsage(rows, len(groups))


def key_fingerprint(base_url: str, api_key: str) -> str:
    """A short digest of the API host and key, never the key: it tells whether the organization
    id kept in the state was learnt with the key in use."""
    return hashlib.blake2b(f"{base_url.rstrip('/')}\n{api_key}".encode(), digest_size=8, person=b"bronto-org").hexdigest()


def usage_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows to a pyarrow table with the raw table's explicit schema."""
    return table(PROVIDER, list(rows), settings.USAGE_SCHEMA)


# -- the fewest requests -----------------------------------------------------------------------
def _requests_by_type(simulator: Any, usage_type: str, first: dt.date, last: dt.date):
    """(logs requests, cut days, per-day requests needed) of one usage type over first..last."""
    requests, cut, by_day = 0, [], False
    for piece in windows.split(first, last, settings.LOGS_MAX_SLICES):
        requests += 1
        if simulator.logs_listed(usage_type, piece.first, piece.last) < settings.LOGS_LIMIT:
            continue
        if piece.n_days > 1:
            requests += piece.n_days
            by_day = True
        cut += [day for day in windows.days(piece.first, piece.last)
                if simulator.logs_listed(usage_type, day, day) >= settings.LOGS_LIMIT]
    return requests, cut, by_day


def min_requests(simulator: Any, first: dt.date, last: dt.date) -> int:
    """Per usage type, one /usage/organizations/logs request per 1440 days (one slice per day);
    a window listing the endpoint's limit of logs is asked again day by day (one request per
    day: an organization with that many logs usually has them every day), and the usage type's
    days that still list the limit take one /usage request for all of them. Plus one minute of
    /usage to learn the organization id, until a run has kept it: the simulator says whether
    it ever named it (`organization_named`)."""
    total = 0 if getattr(simulator, "organization_named", False) else 1
    for usage_type in settings.USAGE_TYPES:
        requests, cut, _ = _requests_by_type(simulator, usage_type, first, last)
        total += requests + (1 if cut else 0)
    return total


def longest_chain(simulator: Any, first: dt.date, last: dt.date) -> int:
    """The requests one after another: the first one alone (the organization probe, or the first
    logs request once the id is kept), so that a rejected key fails after one request; then the
    other logs requests at once; the day-by-day requests of windows listing the limit; the
    /usage requests for the days that still do."""
    known = getattr(simulator, "organization_named", False)
    logs_requests, by_day, cut = 0, False, False
    for usage_type in settings.USAGE_TYPES:
        _, cut_days, per_day = _requests_by_type(simulator, usage_type, first, last)
        logs_requests += len(windows.split(first, last, settings.LOGS_MAX_SLICES))
        by_day |= per_day
        cut |= bool(cut_days)
    return 1 + (not known or logs_requests > 1) + by_day + cut
