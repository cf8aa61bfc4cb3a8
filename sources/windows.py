"""The one place that decides dates and windows.

Every day is a UTC calendar day. User ranges are inclusive (`START..END`); request windows
are lists of inclusive day ranges cut to what an API accepts. Sources ask this module,
never `date.today()`, so a whole run agrees on what "today" is.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional

UTC = dt.timezone.utc
ONE_DAY = dt.timedelta(days=1)


class WindowError(ValueError):
    """A day or range that cannot be served; the message names the setting and the fix."""


def utc_now() -> dt.datetime:
    """The current instant in UTC (overridable with `USAGE_NOW` for reproducible runs)."""
    pinned = os.environ.get("USAGE_NOW")
    if pinned:
        return dt.datetime.fromisoformat(pinned.replace("Z", "+00:00")).astimezone(UTC)
    return dt.datetime.now(UTC)


def utc_today() -> dt.date:
    return utc_now().date()


def last_complete_day(now: Optional[dt.datetime] = None) -> dt.date:
    """Yesterday in UTC: the newest day whose usage is complete."""
    return (now or utc_now()).date() - ONE_DAY


DEFAULT_HISTORY_DAYS = 7
"""Days a first nightly run loads when no START_DATE is configured."""


def default_start_date(now: Optional[dt.datetime] = None) -> dt.date:
    """First day of a first run without START_DATE: the last week of complete days."""
    return last_complete_day(now) - dt.timedelta(days=DEFAULT_HISTORY_DAYS - 1)


def parse_day(value: object, setting: str = "date") -> dt.date:
    """Parse `YYYY-MM-DD` (or accept a date) with an error that names the setting."""
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise WindowError(f"{setting}={text!r} is not a valid day; use YYYY-MM-DD, e.g. 2026-01-31") from None


def midnight(day: dt.date) -> dt.datetime:
    """The UTC instant a day starts."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def rfc3339(instant: dt.datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def days(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    """Every day of the inclusive range."""
    day = first
    while day <= last:
        yield day
        day += ONE_DAY


@dataclass(frozen=True)
class Window:
    """An inclusive range of UTC days, the unit a source requests at once."""

    first: dt.date
    last: dt.date

    @property
    def start(self) -> dt.datetime:
        return midnight(self.first)

    @property
    def end(self) -> dt.datetime:
        """Exclusive end instant: midnight after the last day."""
        return midnight(self.last + ONE_DAY)

    @property
    def n_days(self) -> int:
        return (self.last - self.first).days + 1

    def __str__(self) -> str:
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


def split(first: dt.date, last: dt.date, max_days: int) -> List[Window]:
    """Cut an inclusive range into consecutive windows of at most `max_days`."""
    windows = []
    while first <= last:
        window_last = min(last, first + dt.timedelta(days=max_days - 1))
        windows.append(Window(first, window_last))
        first = window_last + ONE_DAY
    return windows


def range_to_load(incremental, now: Optional[dt.datetime] = None) -> Optional[Window]:
    """The days a resource loads now, from its `dlt.sources.incremental` on `usage_date`.

    Starts at the incremental's start value (dlt has already stepped it back by the lag, the
    lookback window); ends at its `end_value` (exclusive, a backfill) or at the last complete
    day (a nightly run). None when there is nothing complete to load yet.

    The window is noted in the load package's state (`WINDOWS_KEY`, per resource): once the
    package is loaded, those days count as read from the API, also the ones that had no usage.
    """
    first = parse_day(incremental.start_value)
    last = last_complete_day(now)
    if incremental.end_value is not None:
        last = min(last, parse_day(incremental.end_value) - ONE_DAY)
    if first > last:
        return None
    window = Window(first, last)
    _note_window(getattr(incremental, "resource_name", None) or "resource", window)
    return window


WINDOWS_KEY = "usage_windows"
"""Key of the load package state that lists, per resource, the day windows read from the API."""


def _note_window(resource: str, window: Window) -> None:
    try:
        import dlt

        package_state = dlt.current.load_package_state()["state"]
    except Exception:  # noqa: BLE001 - outside an extraction (a unit test) there is no package
        return
    noted = package_state.setdefault(WINDOWS_KEY, {})
    noted.setdefault(resource, []).append([window.first.isoformat(), window.last.isoformat()])


def oldest_servable_day(history_days: Optional[int], earliest: Optional[dt.date],
                        now: Optional[dt.datetime] = None) -> Optional[dt.date]:
    """The oldest day an API with `history_days` of daily history (None: unlimited) and no
    data before `earliest` (None: no such floor) still serves; None when it serves any day."""
    oldest = (now or utc_now()).date() - dt.timedelta(days=history_days) if history_days is not None else None
    if earliest is not None:
        oldest = max(oldest, earliest) if oldest is not None else earliest
    return oldest


@dataclass(frozen=True)
class ApiLimits:
    """What an API serves, as values: every plan, refusal and chunk asks these.

    `history_days`: daily history kept (None: unlimited); `earliest_day`: nothing before it;
    `max_window_days`: the longest range one request (or chain of pages) serves (None: any).
    """

    history_days: Optional[int] = None
    earliest_day: Optional[dt.date] = None
    max_window_days: Optional[int] = None

    def oldest_day(self, now: Optional[dt.datetime] = None) -> Optional[dt.date]:
        """The oldest day the API still serves; None when it serves any day."""
        return oldest_servable_day(self.history_days, self.earliest_day, now)

    def windows(self, first: dt.date, last: dt.date) -> List[Window]:
        """`first..last` cut into the windows one request each serves."""
        return split(first, last, self.max_window_days) if self.max_window_days else [Window(first, last)]

    def chunk_days(self, minimum: int) -> int:
        """Days per backfill chunk: the API's own window when it is larger than `minimum`."""
        return max(minimum, self.max_window_days or 0)

    def refusal(self, provider: str, first: dt.date, now: Optional[dt.datetime] = None) -> Optional[str]:
        """Why a range starting on `first` cannot be served (None: it can), naming the fix."""
        oldest = self.oldest_day(now)
        if oldest is None or first >= oldest:
            return None
        if self.history_days is not None:
            return (f"{provider} keeps daily data for {self.history_days} days; earliest day you can backfill is {oldest} "
                    f"(START={first})")
        return f"{provider} has no data before {oldest}; earliest day you can backfill is {oldest}"


def ranges(days_: Iterable[dt.date]) -> List[Window]:
    """Sorted days folded into windows of consecutive days: for messages and for repairs."""
    out: List[Window] = []
    for day in sorted(set(days_)):
        if out and day == out[-1].last + ONE_DAY:
            out[-1] = Window(out[-1].first, day)
        else:
            out.append(Window(day, day))
    return out


def describe_days(days_: Iterable[dt.date], limit: int = 6) -> str:
    """`2026-01-01..2026-01-05, 2026-01-09` (at most `limit` ranges, then `and N more`)."""
    folded = ranges(days_)
    parts = [str(w) if w.n_days > 1 else w.first.isoformat() for w in folded[:limit]]
    if len(folded) > limit:
        parts.append(f"and {len(folded) - limit} more ranges")
    return ", ".join(parts)


def day_cursor(start_date: dt.date, end_date: Optional[dt.date] = None, lookback_days: int = 0):
    """A fresh `usage_date` cursor for one resource.

    Nightly (no `end_date`): starts at `start_date` on the first run, afterwards at the last
    loaded day minus `lookback_days` (dlt's lag), so recent days that providers revise are read
    again and replaced. Backfill (`end_date` set, inclusive): loads exactly `start_date..end_date`
    and, because dlt treats an `end_value` as stateless, leaves the nightly cursor alone.
    """
    import dlt  # local: keeps this module importable without dlt for the simulators

    return dlt.sources.incremental[dt.date](
        "usage_date",
        initial_value=start_date,
        end_value=end_date + ONE_DAY if end_date is not None else None,
        lag=lookback_days if end_date is None and lookback_days else None,
        range_end="open",
        # no boundary deduplication: every resource replaces whole days (merge on usage_date),
        # so rows dlt dropped as "already seen" would vanish with the day they belong to
        primary_key=(),
    )
