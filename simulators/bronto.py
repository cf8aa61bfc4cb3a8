"""Bronto (logs platform): usage over time, cut into time slices, per organization and per log.

Faithful to the documented API: `GET /usage` takes only a relative `time_range` (`Last <n>
<unit>`) that ends at the server's "now", cut into `num_of_slices` (max 720) slices whose
boundaries follow the request time, not UTC midnight; `GET /usage/organizations/logs` takes an
absolute `from_ts`/`to_ts` window (`num_of_slices` 1..1440) and answers the top `limit` logs
(1..500, default 50) of the window by bytes. Auth header `X-BRONTO-API-KEY`; errors `{"code",
"type", "correlation_id", "details"}`; 100 requests per 5 minutes announced by `RateLimit-*`
headers, and a 429 carries `RateLimit-Reset` but no `Retry-After`.

Data model: per usage type, a byte rate and an event rate that are constant within each UTC
day (deterministic from the seed and the day), so the bytes of any interval are an exact
integral. The organization's logs share each day's bytes and events by fixed weights: the
`n_logs` logs write every day; on a crowded day (`crowded_days`, for `crowded_usage_types`)
another `crowd_logs` small logs write too, so the day has more logs than the endpoint lists.
Choices where the documentation is silent: `time_range` is required; `/usage` rejects absolute
`from_ts`/`to_ts`; slice boundaries are `start + floor(i * range / n)` milliseconds;
`/usage/organizations/logs` defaults `usage_type` to `ingestion`, lists only logs that wrote in
the window (a listed log's slices of days it did not write are zero), ordered by bytes, ties by
key.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from simulators.base import Request, Response, Simulator, TokenBucket, day_start

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
MS_PER_DAY = 86_400_000
USAGE_TYPES = ("ingestion", "search", "export")
MAX_USAGE_SLICES = 720
MAX_LOG_SLICES = 1440
MAX_LOG_LIMIT = 500
DEFAULT_LOG_LIMIT = 50

# bytes per second and events per second of an average day, per usage type
BASE_BYTE_RATE = {"ingestion": 12_000.0, "search": 40_000.0, "export": 1_500.0}
BASE_EVENT_RATE = {"ingestion": 25.0, "search": 0.05, "export": 0.01}
LOG_NAMES = ("api-gateway", "billing-service", "auth", "ingest-workers", "web-frontend", "audit", "cron", "edge-proxy")
CROWD_WEIGHT = 0.02
"""A crowd log's weight beside a regular log's 0.2..1.2: short-lived logs that write little."""

RANGE_PATTERN = re.compile(r"^last\s+(\d+)\s+(minute|minutes|hour|hours|day|days)$", re.IGNORECASE)
UNIT_MS = {"minute": 60_000, "hour": 3_600_000, "day": MS_PER_DAY}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class BadRequest(Exception):
    """A parameter the API rejects with 400; the message becomes `details`."""


def epoch_ms(instant: dt.datetime) -> int:
    """Milliseconds since the epoch (sub-millisecond parts dropped)."""
    return (instant.astimezone(UTC) - EPOCH) // dt.timedelta(milliseconds=1)


def from_ms(ms: float) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def java_time(ms: int) -> str:
    """The vendor's `@time` format, e.g. `Sun Mar 01 00:00:00 UTC 2026` (Java's Date.toString)."""
    instant = from_ms(ms)
    return (f"{WEEKDAYS[instant.weekday()]} {MONTHS[instant.month - 1]} {instant.day:02d} "
            f"{instant:%H:%M:%S} UTC {instant.year}")


def parse_time_range(text: Optional[str]) -> int:
    """`Last <n> <unit>` to milliseconds; the unit is plural exactly when n != 1."""
    if text is None or not text.strip():
        raise BadRequest("time_range is required, e.g. 'Last 24 hours'")
    match = RANGE_PATTERN.match(text.strip())
    if match is None:
        raise BadRequest(f"invalid time_range {text!r}: expected 'Last <n> <minutes|hours|days>'")
    count, unit = int(match.group(1)), match.group(2).lower()
    if count < 1:
        raise BadRequest(f"invalid time_range {text!r}: the amount must be at least 1")
    if (count == 1) != (not unit.endswith("s")):
        raise BadRequest(f"invalid time_range {text!r}: use the singular unit for 1 and the plural otherwise")
    return count * UNIT_MS[unit.rstrip("s")]


def default_slices(range_ms: int, cap: int) -> int:
    """1-minute slices up to 12 hours, then 20-minute slices, capped."""
    if range_ms <= 12 * 3_600_000:
        return max(1, min(cap, math.ceil(range_ms / 60_000)))
    return min(cap, math.ceil(range_ms / 1_200_000))


def int_param(request: Request, name: str, low: int, high: int, default: Optional[int] = None) -> Optional[int]:
    raw = request.one(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


class BrontoSimulator(Simulator):
    """Bronto's usage API for one organization.

    Size/quirk parameters: `n_logs` (logs the organization writes to every day),
    `crowded_days` (days on which `crowd_logs` more logs write, default the endpoint's limit, so
    that the day lists more logs than one request can answer), `crowded_usage_types` (the usage
    types crowded on those days, default all), `list_body` (answer a single usage type as a
    one-element JSON list too), `numbers_as_strings` (`@timestamp`, `count`, `value` as strings
    like the vendor's example, or as numbers like its schema), `rate_limit`/`rate_period_s`
    (100 per 300 s documented), `unprivileged_key` (a key that authenticates but lacks the usage
    privilege: 403).

    `organization_named` says whether a /usage answer has named the organization (its id) to
    a client yet: a source that keeps the id needs no request for it afterwards.
    """

    provider = "bronto"

    def __init__(self, api_key: str, seed: int = 0, latency_ms: float = 0.0, port: int = 0, clock=None,
                 n_logs: int = 4, crowded_days: Iterable[dt.date] = (), crowd_logs: int = MAX_LOG_LIMIT,
                 crowded_usage_types: Sequence[str] = USAGE_TYPES, list_body: bool = False,
                 numbers_as_strings: bool = True, rate_limit: int = 100, rate_period_s: float = 300.0,
                 unprivileged_key: Optional[str] = None):
        super().__init__(api_key, seed=seed, latency_ms=latency_ms, port=port, clock=clock)
        self.n_logs = n_logs
        self.crowded_days = frozenset(crowded_days)
        self.crowded_usage_types = frozenset(crowded_usage_types)
        self.list_body = list_body
        self.numbers_as_strings = numbers_as_strings
        self.rate_limit = rate_limit
        self.rate_period_s = rate_period_s
        self.unprivileged_key = unprivileged_key
        self.bucket = TokenBucket(rate_limit, rate_period_s)
        self.org_id = self._uuid("organization")
        self.logs = self._make_logs(n_logs)
        self.crowd = self._make_logs(crowd_logs, crowd=True)
        self._weights: Dict[bool, Optional[float]] = {False: None, True: None}
        """The total weight of the logs writing on a day, by whether the day is crowded (filled once)."""
        self.organization_named = False
        self._errors = 0
        self.routes["/usage"] = self._usage
        self.routes["/usage/organizations/logs"] = self._logs_usage

    # -- data ------------------------------------------------------------------------------------
    def _uuid(self, *parts: Any) -> str:
        text = f"{self.rand(*parts):016x}{self.rand(*parts, 'low'):016x}"
        return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-a{text[17:20]}-{text[20:32]}"

    def _unit(self, *parts: Any) -> float:
        return self.rand(*parts) / 2.0**64

    def _make_logs(self, n: int, crowd: bool = False) -> List[Dict[str, Any]]:
        if crowd:
            return [{"key": self._uuid("crowd-log", i), "name": f"burst-{i + 1}", "crowd": True,
                     "weight": CROWD_WEIGHT * (0.5 + self._unit("crowd-weight", i))} for i in range(n)]
        return [{"key": self._uuid("log", i), "name": f"{LOG_NAMES[i % len(LOG_NAMES)]}-{i + 1}",
                 "weight": 0.2 + self._unit("log-weight", i)} for i in range(n)]

    def crowded(self, usage_type: str, day: dt.date) -> bool:
        return day in self.crowded_days and usage_type in self.crowded_usage_types

    def logs_writing(self, usage_type: str, day: dt.date) -> List[Dict[str, Any]]:
        """The logs that write `usage_type` bytes on `day`."""
        return self.logs + self.crowd if self.crowded(usage_type, day) else self.logs

    def share(self, log: Dict[str, Any], usage_type: str, day: dt.date) -> float:
        """The log's part of the organization's bytes and events of that day (0 when it did not write)."""
        crowded = self.crowded(usage_type, day)
        total = self._weights[crowded]
        if total is None:
            writing = self.logs + self.crowd if crowded else self.logs
            total = self._weights[crowded] = sum(other["weight"] for other in writing)
        if not crowded and log.get("crowd"):
            return 0.0
        return log["weight"] / total

    def logs_listed(self, usage_type: str, first: dt.date, last: dt.date) -> int:
        """How many logs `/usage/organizations/logs` lists for first..last at its largest `limit`."""
        keys = {log["key"] for day in _days(first, last) for log in self.logs_writing(usage_type, day)}
        return min(MAX_LOG_LIMIT, len(keys))

    def byte_rate(self, usage_type: str, day: dt.date) -> float:
        """Bytes per second, constant within the UTC day (±15 % around the type's average)."""
        return BASE_BYTE_RATE[usage_type] * (0.85 + 0.3 * self._unit("bytes", usage_type, day.isoformat()))

    def event_rate(self, usage_type: str, day: dt.date) -> float:
        return BASE_EVENT_RATE[usage_type] * (0.85 + 0.3 * self._unit("events", usage_type, day.isoformat()))

    def _integral(self, rate, usage_type: str, start_ms: float, end_ms: float,
                  weight: Optional[Callable[[dt.date], float]] = None) -> float:
        """The rate's integral over `[start_ms, end_ms)`, each day's part times `weight(day)`."""
        total = 0.0
        day = from_ms(start_ms).date()
        while True:
            day_ms = epoch_ms(day_start(day))
            low, high = max(start_ms, day_ms), min(end_ms, day_ms + MS_PER_DAY)
            if low >= end_ms:
                break
            if high > low:
                part = rate(usage_type, day) * (high - low) / 1000.0
                total += part * weight(day) if weight is not None else part
            day += dt.timedelta(days=1)
        return total

    def bytes_between(self, usage_type: str, start: dt.datetime, end: dt.datetime) -> float:
        """The exact bytes of `[start, end)`: what any slice covering that interval reports."""
        return self._integral(self.byte_rate, usage_type, _ms(start), _ms(end))

    def log_bytes(self, log: Dict[str, Any], usage_type: str, day: dt.date) -> float:
        """The log's exact bytes of the UTC day: what a slice of that whole day reports."""
        low = epoch_ms(day_start(day))
        return self._integral(self.byte_rate, usage_type, low, low + MS_PER_DAY,
                              lambda d: self.share(log, usage_type, d))

    def truth(self, first: dt.date, last: dt.date) -> List[Dict[str, Any]]:
        """The facts the contract asks for: each log's exact bytes of each day (resource_type
        `log`); a day that has as many logs as the endpoint's limit or more cannot be had per log,
        so it is one `organization` row with the organization's bytes."""
        rows = []
        for day in _days(first, last):
            for usage_type in USAGE_TYPES:
                common = {"usage_date": day, "account_id": self.org_id, "metric": f"{usage_type}_bytes"}
                writing = self.logs_writing(usage_type, day)
                if len(writing) >= MAX_LOG_LIMIT:
                    rows.append({**common, "resource_type": "organization", "resource_id": self.org_id,
                                 "resource_name": None, "quantity": self.byte_rate(usage_type, day) * 86_400})
                    continue
                for log in writing:
                    rows.append({**common, "resource_type": "log", "resource_id": log["key"],
                                 "resource_name": log["name"], "quantity": self.log_bytes(log, usage_type, day)})
        return rows

    # -- protocol --------------------------------------------------------------------------------
    def _error(self, status: int, kind: str, details: str, headers: Optional[Dict[str, str]] = None) -> Response:
        with self.lock:
            self._errors += 1
            number = self._errors
        body = {"code": status, "type": kind, "correlation_id": self._uuid("correlation", number), "details": details}
        return Response(status, body, headers or {})

    def authorized(self, headers: Dict[str, str]) -> Optional[Response]:
        key = headers.get("x-bronto-api-key")
        if not key:
            return self._error(401, "Unauthorized", "missing X-BRONTO-API-KEY header")
        if self.unprivileged_key is not None and key == self.unprivileged_key:
            return self._error(403, "Forbidden", "the API key lacks the privilege to read usage")
        if key != self.api_key:
            return self._error(401, "Unauthorized", "invalid API key")
        return None

    def _rate_headers(self, allowed: bool, wait_s: float) -> Dict[str, str]:
        bucket = self.bucket
        with bucket.lock:
            remaining = int(bucket.tokens)
            to_full = (bucket.capacity - bucket.tokens) / bucket.refill_per_s
        reset = wait_s if not allowed else to_full
        return {"RateLimit-Limit": str(self.rate_limit), "RateLimit-Remaining": str(remaining),
                "RateLimit-Reset": str(max(1 if not allowed else 0, math.ceil(reset)))}

    def _limited(self, handler, request: Request) -> Response:
        allowed, wait_s = self.bucket.take()
        headers = self._rate_headers(allowed, wait_s)
        if not allowed:
            return self._error(429, "Too Many Requests",
                               f"rate limit of {self.rate_limit} requests per {self.rate_period_s:g} seconds exceeded",
                               headers)
        try:
            response = handler(request)
        except BadRequest as exc:
            response = self._error(400, "Bad Request", str(exc))
        response.headers.update(headers)
        return response

    def _now_ms(self) -> int:
        return epoch_ms(self.now())

    def _number(self, value: Any) -> Any:
        return str(value) if self.numbers_as_strings else value

    def _series(self, usage_type: str, start_ms: int, end_ms: int, n: int,
                weight: Optional[Callable[[dt.date], float]] = None) -> List[Dict[str, Any]]:
        span = end_ms - start_ms
        bounds = [start_ms + (i * span) // n for i in range(n + 1)]
        series = []
        for low, high in zip(bounds, bounds[1:]):
            value = self._integral(self.byte_rate, usage_type, low, high, weight)
            count = round(self._integral(self.event_rate, usage_type, low, high, weight))
            series.append({"@time": java_time(low), "@timestamp": str(low) if self.numbers_as_strings else low,
                           "count": self._number(count), "value": self._number(float(value)), "quantiles": {}})
        return series

    def _usage_object(self, usage_type: str, start_ms: int, end_ms: int, n: int,
                      delta: Optional[Tuple[int, int]]) -> Dict[str, Any]:
        series = self._series(usage_type, start_ms, end_ms, n)
        total_count = sum(int(s["count"]) for s in series)
        total_value = sum(float(s["value"]) for s in series)
        body = {
            "id": f"{self.org_id}#{usage_type}-org_usage", "name": f"{usage_type}_org_usage",
            "filter": f"usage_type = '{usage_type}'", "stat": "SUM", "key": "bytes_total",
            "total_count": total_count, "total_value": total_value, "is_exact": True,
            "series": series, "groups_series": [], "delta": {},
        }
        if delta is not None:
            low, high = delta
            value = self._integral(self.byte_rate, usage_type, low, high)
            count = round(self._integral(self.event_rate, usage_type, low, high))
            body["delta"] = {"from_ts": low, "to_ts": high, "total_count": count, "total_value": value,
                             "count_change": total_count - count, "value_change": total_value - value}
        return body

    def _usage(self, request: Request) -> Response:
        return self._limited(self._usage_answer, request)

    def _usage_answer(self, request: Request) -> Response:
        if request.one("from_ts") is not None or request.one("to_ts") is not None:
            raise BadRequest("/usage takes a relative time_range only; from_ts/to_ts are not supported")
        text = request.one("time_range")
        if text is None:
            text = request.one("timeRange")
        range_ms = parse_time_range(text)
        n = int_param(request, "num_of_slices", 1, MAX_USAGE_SLICES, default_slices(range_ms, MAX_USAGE_SLICES))
        usage_type = request.one("usage_type")
        if usage_type is not None and usage_type not in USAGE_TYPES:
            raise BadRequest(f"invalid usage_type {usage_type!r}: expected one of {', '.join(USAGE_TYPES)}")
        end_ms = self._now_ms()
        start_ms = end_ms - range_ms
        delta = self._delta_window(request, start_ms, range_ms)
        if usage_type is None:
            body: Any = [self._usage_object(t, start_ms, end_ms, n, delta) for t in USAGE_TYPES]
        else:
            body = self._usage_object(usage_type, start_ms, end_ms, n, delta)
            body = [body] if self.list_body else body
        self.organization_named = True
        return Response(200, body)

    def _delta_window(self, request: Request, start_ms: int, range_ms: int) -> Optional[Tuple[int, int]]:
        """The comparison window: absolute delta_from_ts/delta_to_ts, or the relative
        delta_time_range just before the main window, or (delta=true) the same length before."""
        low, high = request.one("delta_from_ts"), request.one("delta_to_ts")
        if low is not None or high is not None:
            try:
                low_ms, high_ms = int(low or ""), int(high or "")
            except ValueError:
                raise BadRequest("delta_from_ts and delta_to_ts must both be epoch milliseconds") from None
            if low_ms >= high_ms:
                raise BadRequest("delta_from_ts must be before delta_to_ts")
            return low_ms, high_ms
        if request.one("delta_time_range") is not None:
            delta_ms = parse_time_range(request.one("delta_time_range"))
            return start_ms - delta_ms, start_ms
        if (request.one("delta") or "").lower() in ("true", "1"):
            return start_ms - range_ms, start_ms
        return None

    def _logs_usage(self, request: Request) -> Response:
        return self._limited(self._logs_answer, request)

    def _logs_answer(self, request: Request) -> Response:
        if request.one("time_range") is not None or request.one("timeRange") is not None:
            raise BadRequest("from_ts/to_ts cannot be combined with time_range")
        try:
            start_ms, end_ms = int(request.one("from_ts") or ""), int(request.one("to_ts") or "")
        except ValueError:
            raise BadRequest("from_ts and to_ts are required, in epoch milliseconds") from None
        if start_ms >= end_ms:
            raise BadRequest("from_ts must be before to_ts")
        usage_type = request.one("usage_type") or "ingestion"
        if usage_type not in USAGE_TYPES:
            raise BadRequest(f"invalid usage_type {usage_type!r}: expected one of {', '.join(USAGE_TYPES)}")
        n = int_param(request, "num_of_slices", 1, MAX_LOG_SLICES, default_slices(end_ms - start_ms, MAX_LOG_SLICES))
        limit = int_param(request, "limit", 1, MAX_LOG_LIMIT, DEFAULT_LOG_LIMIT)
        groups = []
        for log in self._logs_between(usage_type, start_ms, end_ms):
            series = self._series(usage_type, start_ms, end_ms, n, lambda day, log=log: self.share(log, usage_type, day))
            groups.append({
                "key": log["key"], "name": log["name"],
                "count": self._number(sum(int(s["count"]) for s in series)),
                "value": self._number(sum(float(s["value"]) for s in series)),
                "series_resolution_ms": (end_ms - start_ms) // n, "timeseries": series,
            })
        groups.sort(key=lambda g: (-float(g["value"]), g["key"]))
        body = {"name": f"{usage_type}_logs_usage", "filter": f"usage_type = '{usage_type}'", "stat": "SUM",
                "key": "bytes_total", "is_exact": True, "groups_series": groups[:limit]}
        return Response(200, body)

    def _logs_between(self, usage_type: str, start_ms: int, end_ms: int) -> List[Dict[str, Any]]:
        """The logs that wrote within `[start_ms, end_ms)`, each once."""
        first, last = from_ms(start_ms).date(), from_ms(end_ms - 1).date()
        seen: Dict[str, Dict[str, Any]] = {}
        for day in _days(first, last):
            for log in self.logs_writing(usage_type, day):
                seen.setdefault(log["key"], log)
        return list(seen.values())


def _days(first: dt.date, last: dt.date) -> Iterable[dt.date]:
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


def _ms(instant: dt.datetime) -> float:
    """Epoch milliseconds keeping sub-millisecond parts (for intervals a source computed)."""
    return (instant.astimezone(UTC) - EPOCH) / dt.timedelta(milliseconds=1)
