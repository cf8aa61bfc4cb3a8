"""Bronto requests and the pure functions that turn a /usage body into daily rows.

/usage has no absolute window and no paging: one request per usage type answers one page that
covers `Last <n> minutes` up to the server's "now", cut into slices whose boundaries follow the
request time. So the source asks for a window that starts just before the first day's midnight,
and splits the slices into UTC days here: a slice straddling midnight is shared between the two
days in proportion to time.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import pyarrow as pa

from sources import windows
from sources.bronto import settings
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
    """A /usage body the source cannot read; the message names the field (and never a
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
        except (TypeError, ValueError):
            pass
    if number is None or not math.isfinite(number):
        raise _body_error(field, f"is not a finite number (got {str(value)[:40]!r})")
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
    """A /usage body (object or list) to rows of the raw table for the covered days of first..last."""
    usage = select_usage(body, usage_type)
    organization = organization_id(usage)
    is_exact = usage.get("is_exact")
    common = {
        "organization_id": organization,
        "usage_type": usage_type,
        "usage_id": usage.get("id"),
        "usage_name": usage.get("name"),
        "is_exact": is_exact if isinstance(is_exact, bool) else None,
        "fetched_at": fetched_at,
    }
    return [{**common, **row} for row in day_rows(series_slices(usage, range_ms, num_of_slices), first, last)]


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


def flatten_logs_usage(body: Any, organization: str, usage_type: str, first: dt.date, last: dt.date,
                       fetched_at: dt.datetime) -> List[Dict[str, Any]]:
    """A /usage/organizations/logs body (asked with `logs_params`) to rows of the raw table: the
    logs' day slices summed, one row per day of first..last, exact (no slice straddles midnight).

    A day no log wrote to counts zero bytes. Slices off the days' midnights, or as many logs as
    the endpoint's maximum (some may be missing from the sum), are a BodyError.
    """
    if not isinstance(body, Mapping):
        raise _body_error("groups_series", f"cannot be read from a {type(body).__name__} body")
    groups = body.get("groups_series")
    if not isinstance(groups, list):
        raise _body_error("groups_series", "is missing or not a list")
    if len(groups) >= settings.LOGS_LIMIT:
        raise BodyError(
            f"{settings.LOGS_USAGE_PATH} lists {len(groups)} logs, its maximum, so logs beyond them may be "
            f"missing from the total; backfill days of the last {settings.EXACT_RELATIVE_DAYS} days, which "
            f"{settings.USAGE_PATH} answers for the whole organization"
        )
    days = list(windows.days(first, last))
    totals = {to_ms(windows.midnight(day)): [0.0, 0] for day in days}
    for group in groups:
        series = group.get("timeseries") if isinstance(group, Mapping) else None
        if not isinstance(series, list):
            raise _body_error("groups_series[].timeseries", "is missing or not a list")
        for entry in series:
            start = _number(entry, "@timestamp", LOG_SLICE)
            if start not in totals:
                raise _body_error(f"{LOG_SLICE}.@timestamp", f"is not a UTC midnight of {first}..{last} (got {int(start)})")
            totals[start][0] += _number(entry, "value", LOG_SLICE)
            totals[start][1] += int(round(_number(entry, "count", LOG_SLICE)))
    is_exact = body.get("is_exact")
    common = {
        "organization_id": organization,
        "usage_type": usage_type,
        "usage_id": f"{organization}#{usage_type}-logs_usage",
        "usage_name": body.get("name"),
        "is_exact": is_exact if isinstance(is_exact, bool) else None,
        "fetched_at": fetched_at,
    }
    slices = [Slice(start, start + MS_PER_DAY, value, count) for start, (value, count) in sorted(totals.items())]
    return [{**common, **row} for row in day_rows(slices, first, last)]


def usage_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows to a pyarrow table with the raw table's explicit schema."""
    return pa.Table.from_pylist(list(rows), schema=settings.USAGE_SCHEMA)


# -- the fewest requests -----------------------------------------------------------------------
def min_requests(simulator: Any, first: dt.date, last: dt.date) -> int:
    """One /usage request per usage type: a window ending now fits in one request whatever its
    length (720 slices at most), so the days loaded do not change the count."""
    return len(settings.USAGE_TYPES)


def longest_chain(simulator: Any, first: dt.date, last: dt.date) -> int:
    """One: the usage types are independent of each other."""
    return 1
