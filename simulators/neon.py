"""Neon consumption API stand-in: `/api/v2/consumption_history/v2/projects` and the legacy
`/api/v2/consumption_history/account`.

Faithful to the documented behaviour: Bearer auth, `{"request_id", "code", "message"}` error
bodies, required `from`/`to`/`granularity`/`org_id`/`metrics`, range limits answered with 406,
projects paged newest first with an opaque cursor, billing periods cut at month starts, integer
values, and a per-account token bucket (about 30 requests/minute) answered with 429 and no
Retry-After. Where Neon's docs leave a point open the simulator picks one behaviour, and the
quirk switches serve the others:

- `paging_end`: how the last page looks. "cursor" (default: the docs warn the last page may
  still carry a cursor; following it gives empty pages that carry fresh cursors), "empty" (the
  page after the last one is empty and has no cursor), "missing" (the last page has no cursor),
  "repeat" (the last page echoes the cursor it was asked with).
- `max_page_size`: a server that clamps `limit` below what was asked (Neon documents 1..100 and
  says nothing of clamping; PROVIDERS.md warns a server may): pages hold at most this many
  projects and still carry a cursor, so a short page is not the end.
- `plan_eligible=False`: the organization's plan has no consumption history (403).
- `legacy`: the deprecated account endpoint is "gone" (410, default), "not_found" (404) or
  "serve" (flat integer fields per timeframe in `{"periods": [...]}`).

Projects created inside a window have no timeframes before their creation day; projects created
after a window's end are still listed, with no periods. Every value is a pure function of
(project, metric, day), so any window gives the same numbers.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from simulators.base import Request, Response, Simulator, TokenBucket, day_start, iso_z, parse_instant

UTC = dt.timezone.utc
ONE_DAY = dt.timedelta(days=1)

METRICS = (
    "compute_unit_seconds",
    "root_branch_bytes_month",
    "child_branch_bytes_month",
    "instant_restore_bytes_month",
    "public_network_transfer_bytes",
    "private_network_transfer_bytes",
    "extra_branches_month",
    "snapshot_storage_bytes_month",
)
LEGACY_METRICS = (
    "active_time_seconds",
    "compute_time_seconds",
    "written_data_bytes",
    "synthetic_storage_size_bytes",
    "data_storage_bytes_hour",
)
METRIC_CEILINGS = {  # a day's plausible maximum per metric
    "compute_unit_seconds": 4 * 86_400,
    "root_branch_bytes_month": 60_000_000_000,
    "child_branch_bytes_month": 8_000_000_000,
    "instant_restore_bytes_month": 20_000_000_000,
    "public_network_transfer_bytes": 3_000_000_000,
    "private_network_transfer_bytes": 1_000_000_000,
    "extra_branches_month": 12,
    "snapshot_storage_bytes_month": 5_000_000_000,
    "active_time_seconds": 86_400,
    "compute_time_seconds": 4 * 86_400,
    "written_data_bytes": 2_000_000_000,
    "synthetic_storage_size_bytes": 50_000_000_000,
    "data_storage_bytes_hour": 24 * 50_000_000_000,
}
ORG_ID_RE = re.compile(r"^[a-z0-9-]{1,60}$")
EARLIEST = dt.datetime(2024, 3, 1, tzinfo=UTC)
GRANULARITIES = ("hourly", "daily", "monthly")
PAGING_ENDS = ("cursor", "empty", "missing", "repeat")
LEGACY_MODES = ("gone", "not_found", "serve")
ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    406: "NOT_ACCEPTABLE",
    410: "GONE",
    429: "TOO_MANY_REQUESTS",
}
WORDS_A = ("autumn", "bold", "calm", "dawn", "empty", "frosty", "gentle", "hidden", "icy", "lively", "misty", "quiet")
WORDS_B = ("bird", "brook", "cloud", "dew", "field", "forest", "glade", "lake", "meadow", "moon", "river", "sun")


@dataclass(frozen=True)
class Project:
    project_id: str
    created_at: dt.datetime
    plan: str
    plan_before: str  # the plan of billing periods before the current month (an upgrade shows up)

    @property
    def created_day(self) -> dt.date:
        return self.created_at.date()


class NeonSimulator(Simulator):
    """Neon's consumption endpoints for one organization with `n_projects` projects."""

    provider = "neon"
    base_path = "/api/v2"

    def __init__(
        self,
        api_key: str,
        seed: int = 0,
        latency_ms: float = 0.0,
        port: int = 0,
        clock: Optional[Callable[[], dt.datetime]] = None,
        *,
        org_id: str = "org-quiet-sun-12345678",
        n_projects: int = 7,
        paging_end: str = "cursor",
        max_page_size: int = 100,
        legacy: str = "gone",
        plan_eligible: bool = True,
        daily_history_days: int = 60,
        rate_per_minute: float = 30,
        burst: float = 30,
    ):
        super().__init__(api_key, seed=seed, latency_ms=latency_ms, port=port, clock=clock)
        if paging_end not in PAGING_ENDS:
            raise ValueError(f"paging_end must be one of {PAGING_ENDS}")
        if legacy not in LEGACY_MODES:
            raise ValueError(f"legacy must be one of {LEGACY_MODES}")
        self.org_id = org_id
        self.n_projects = n_projects
        self.paging_end = paging_end
        self.max_page_size = max_page_size
        self.legacy = legacy
        self.plan_eligible = plan_eligible
        self.daily_history_days = daily_history_days
        self.bucket = TokenBucket(rate_per_minute, 60.0, burst=burst)
        self.throttled = 0
        """Requests refused with 429 for going over the account's rate."""
        self.projects = self._make_projects()
        self._fresh = 0  # makes every past-the-end cursor of paging_end="cursor" different
        self.routes[self.base_path + "/consumption_history/v2/projects"] = self.projects_page
        self.routes[self.base_path + "/consumption_history/account"] = self.account_history

    # -- the data --------------------------------------------------------------------------------
    def _make_projects(self) -> List[Project]:
        """Projects of mixed ages: every third one created in the last days, one created today."""
        today = self.today()
        projects = []
        for index in range(self.n_projects):
            pick = self.rand("project", index)
            if index == 4:
                age_days = 0  # created today: listed, but no complete day yet
            elif index % 3 == 1:
                age_days = 1 + pick % 6
            elif index % 3 == 2:
                age_days = 20 + pick % 60
            else:
                age_days = 90 + pick % 600
            created = day_start(today - dt.timedelta(days=age_days)) + dt.timedelta(seconds=pick % 86_400)
            name = f"{WORDS_A[pick % len(WORDS_A)]}-{WORDS_B[(pick >> 8) % len(WORDS_B)]}-{pick % 10**8:08d}"
            plan = "scale" if (pick >> 16) % 3 else "launch"
            plan_before = "launch" if index % 5 == 3 else plan
            projects.append(Project(name, created, plan, plan_before))
        # newest first, as the API orders its pages
        return sorted(projects, key=lambda p: (p.created_at, p.project_id), reverse=True)

    def value(self, project_id: str, metric: str, day: dt.date) -> int:
        """The day's integer figure of one metric of one project (or of the account, legacy)."""
        pick = self.rand("value", project_id, metric, day.isoformat())
        if metric in ("compute_unit_seconds", "active_time_seconds", "compute_time_seconds") and pick % 7 == 0:
            return 0  # suspended all day
        if metric == "private_network_transfer_bytes" and pick % 3:
            return 0
        return (pick >> 8) % (METRIC_CEILINGS[metric] + 1)

    def project_days(self, project: Project, first: dt.date, last: dt.date) -> List[dt.date]:
        """Days of first..last on which the project existed, up to today."""
        first = max(first, project.created_day)
        last = min(last, self.today())
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)] if first <= last else []

    def truth(self, first: dt.date, last: dt.date, include_legacy: bool = False) -> List[Dict[str, Any]]:
        """Daily figures per project and metric (zeros included: the API sends them too); with
        `include_legacy`, also the legacy account rows (resource `account` / the org id)."""
        facts = []
        for project in self.projects:
            for day in self.project_days(project, first, last):
                for metric in METRICS:
                    facts.append(
                        {
                            "usage_date": day,
                            "account_id": self.org_id,
                            "resource_type": "project",
                            "resource_id": project.project_id,
                            "metric": metric,
                            "quantity": float(self.value(project.project_id, metric, day)),
                        }
                    )
        if include_legacy:
            for day in _days(first, min(last, self.today())):
                for metric in LEGACY_METRICS:
                    facts.append(
                        {
                            "usage_date": day,
                            "account_id": self.org_id,
                            "resource_type": "account",
                            "resource_id": self.org_id,
                            "metric": metric,
                            "quantity": float(self.value(self.org_id, metric, day)),
                        }
                    )
        return facts

    def source_env(self) -> Dict[str, str]:
        return {**super().source_env(), "SOURCES__NEON__ORG_ID": self.org_id}

    # -- auth, errors, limits ------------------------------------------------------------------
    def error(self, status: int, message: str) -> Response:
        """Neon's error body; the `code` values are this simulator's pick (Neon lists no table)."""
        request_id = str(uuid.UUID(int=self.rand("request", len(self.requests), status) << 64 | self.rand("id", len(self.requests))))
        return Response(status, {"request_id": request_id, "code": ERROR_CODES.get(status, ""), "message": message})

    def authorized(self, headers: Dict[str, str]) -> Optional[Response]:
        if headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        return self.error(401, "authentication required: missing or invalid API key")

    def _throttled(self) -> Optional[Response]:
        allowed, _ = self.bucket.take()
        if allowed:
            return None
        self.throttled += 1
        # Neon documents no Retry-After and no RateLimit-* headers: none are sent
        return self.error(429, "too many requests: consumption endpoints are limited per account")

    def _range(self, request: Request) -> Tuple[Optional[Response], Optional[Tuple[str, dt.datetime, dt.datetime]]]:
        """Validated (granularity, from, to), rounded down to the granularity, or the error."""
        granularity = request.one("granularity")
        if granularity not in GRANULARITIES:
            return self.error(400, f"granularity is required and must be one of {', '.join(GRANULARITIES)}"), None
        bounds = []
        for name in ("from", "to"):
            text = request.one(name)
            if not text:
                return self.error(400, f"{name} is required (RFC 3339)"), None
            try:
                bounds.append(_round_down(parse_instant(text), granularity))
            except ValueError:
                return self.error(400, f"{name}={text!r} is not an RFC 3339 date-time"), None
        start, end = bounds
        if end <= start:
            return self.error(400, "to must be later than from"), None
        now = self.now()
        if granularity == "daily":
            oldest = day_start(self.today() - dt.timedelta(days=self.daily_history_days))
            limit = f"daily consumption is limited to the last {self.daily_history_days} days"
        elif granularity == "hourly":
            oldest = _round_down(now, "hourly") - dt.timedelta(hours=168)
            limit = "hourly consumption is limited to the last 168 hours"
        else:
            oldest = _round_down(now - dt.timedelta(days=365), "monthly")
            limit = "monthly consumption is limited to the past year"
        if start < EARLIEST:
            return self.error(406, "consumption history is available from 2024-03-01T00:00:00Z"), None
        if start < oldest:
            return self.error(406, limit), None
        return None, (granularity, start, end)

    def _org(self, request: Request, required: bool) -> Tuple[Optional[Response], Optional[str]]:
        org_id = request.one("org_id")
        if org_id is None or org_id == "":
            if required:
                return self.error(400, "org_id is required"), None
            return None, None
        if not ORG_ID_RE.match(org_id):
            return self.error(400, f"org_id must match {ORG_ID_RE.pattern}"), None
        if org_id != self.org_id:
            return self.error(404, "organization not found or you are not a member"), None
        return None, org_id

    # -- /consumption_history/v2/projects ---------------------------------------------------------
    def projects_page(self, request: Request) -> Response:
        denied = self._throttled()
        if denied:
            return denied
        error, _ = self._org(request, required=True)
        if error:
            return error
        if not self.plan_eligible:
            return self.error(403, "consumption history is not available on the Free plan")
        error, bounds = self._range(request)
        if error:
            return error
        granularity, start, end = bounds
        metrics = _list_param(request, "metrics")
        if not metrics:
            return self.error(400, "metrics is required")
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            return self.error(400, f"unknown metric {unknown[0]!r}")
        project_ids = _list_param(request, "project_ids")
        if len(project_ids) > 100:
            return self.error(400, "project_ids accepts at most 100 ids")
        limit_text = request.one("limit") or "10"
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
            return self.error(400, "limit must be an integer from 1 to 100")
        limit = min(int(limit_text), self.max_page_size)
        sent_cursor = request.one("cursor")
        offset = 0
        if sent_cursor:
            offset = decode_cursor(sent_cursor)
            if offset is None:
                return self.error(400, "invalid cursor")
        listed = [p for p in self.projects if not project_ids or p.project_id in project_ids]
        page = listed[offset : offset + limit]
        next_offset = offset + len(page)
        body: Dict[str, Any] = {"projects": [self._project(p, granularity, start, end, metrics) for p in page]}
        if not page:
            if self.paging_end == "cursor":
                with self.lock:
                    self._fresh += 1
                    fresh = self._fresh
                body["pagination"] = {"cursor": encode_cursor(next_offset, fresh)}
            else:
                body["pagination"] = {}
        elif next_offset < len(listed) or self.paging_end in ("cursor", "empty"):
            body["pagination"] = {"cursor": encode_cursor(next_offset)}
        elif self.paging_end == "repeat" and sent_cursor:
            body["pagination"] = {"cursor": sent_cursor}
        else:
            body["pagination"] = {}
        return Response(200, body)

    def _project(self, project: Project, granularity: str, start: dt.datetime, end: dt.datetime, metrics: Sequence[str]) -> Dict[str, Any]:
        """One project's periods; timeframes oldest first, none before its creation day."""
        periods: Dict[dt.date, Dict[str, Any]] = {}
        for frame_start, frame_end, days in _timeframes(granularity, start, end, self.now()):
            alive = [d for d in days if project.created_day <= d <= self.today()]
            if not alive:
                continue
            month = frame_start.date().replace(day=1)
            period = periods.get(month)
            if period is None:
                period = periods[month] = self._period(project.project_id, month, project.created_at,
                                                       project.plan if month == self.today().replace(day=1) else project.plan_before)
            period["consumption"].append(
                {
                    "timeframe_start": iso_z(frame_start),
                    "timeframe_end": iso_z(frame_end),
                    "metrics": [
                        {"metric_name": metric, "value": self._frame_value(project.project_id, metric, granularity, frame_start, alive)}
                        for metric in metrics
                    ],
                }
            )
        return {"project_id": project.project_id, "periods": list(periods.values())}

    def _period(self, owner: str, month: dt.date, created_at: Optional[dt.datetime], plan: str) -> Dict[str, Any]:
        """The billing period of `month`: starts at the month start (or creation), and carries
        `period_end` only when it is over."""
        start = day_start(month)
        if created_at is not None and created_at > start:
            start = created_at
        period: Dict[str, Any] = {
            "period_id": str(uuid.UUID(int=self.rand("period", owner, month.isoformat()) << 64 | self.rand("p2", owner, month.isoformat()))),
            "period_plan": plan,
            "period_start": iso_z(start),
        }
        next_month = _next_month(month)
        if day_start(next_month) <= self.now():
            period["period_end"] = iso_z(day_start(next_month))
        period["consumption"] = []
        return period

    def _frame_value(self, owner: str, metric: str, granularity: str, frame_start: dt.datetime, days: List[dt.date]) -> int:
        if granularity == "hourly":
            # the day's figure spread over its 24 hours, remainder on the first hours
            daily = self.value(owner, metric, days[0])
            share, rest = divmod(daily, 24)
            return share + (1 if frame_start.hour < rest else 0)
        return sum(self.value(owner, metric, day) for day in days)

    # -- /consumption_history/account (legacy) -----------------------------------------------------
    def account_history(self, request: Request) -> Response:
        if self.legacy == "gone":
            return self.error(410, "this endpoint was retired on 2026-06-01; use /consumption_history/v2/projects")
        if self.legacy == "not_found":
            return self.error(404, "not found")
        denied = self._throttled()
        if denied:
            return denied
        error, org_id = self._org(request, required=False)
        if error:
            return error
        error, bounds = self._range(request)
        if error:
            return error
        granularity, start, end = bounds
        owner = org_id or "personal"
        periods: Dict[dt.date, Dict[str, Any]] = {}
        for frame_start, frame_end, days in _timeframes(granularity, start, end, self.now()):
            days = [d for d in days if d <= self.today()]
            if not days:
                continue
            month = frame_start.date().replace(day=1)
            if month not in periods:
                periods[month] = self._period(owner, month, None, "scale")
            frame = {"timeframe_start": iso_z(frame_start), "timeframe_end": iso_z(frame_end)}
            for metric in LEGACY_METRICS:
                frame[metric] = self._frame_value(owner, metric, granularity, frame_start, days)
            periods[month]["consumption"].append(frame)
        return Response(200, {"periods": list(periods.values())})


# -- helpers ------------------------------------------------------------------------------------
def _days(first: dt.date, last: dt.date) -> List[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)] if first <= last else []


def _next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _round_down(instant: dt.datetime, granularity: str) -> dt.datetime:
    if granularity == "hourly":
        return instant.replace(minute=0, second=0, microsecond=0)
    if granularity == "daily":
        return day_start(instant.date())
    return day_start(instant.date().replace(day=1))


def _timeframes(granularity: str, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> List[Tuple[dt.datetime, dt.datetime, List[dt.date]]]:
    """(start, end, days covered) of each timeframe in start..end, none after `now`; a month's
    timeframe never crosses a billing period (periods start at month starts)."""
    frames = []
    cursor = start
    while cursor < end and cursor <= now:
        if granularity == "hourly":
            frame_end = cursor + dt.timedelta(hours=1)
            days = [cursor.date()]
        elif granularity == "daily":
            frame_end = cursor + ONE_DAY
            days = [cursor.date()]
        else:
            frame_end = day_start(_next_month(cursor.date()))
            days = _days(cursor.date(), min(frame_end, end).date() - ONE_DAY)
        frames.append((cursor, frame_end, days))
        cursor = frame_end
    return frames


def _list_param(request: Request, name: str) -> List[str]:
    """A repeated param or a comma list (both are accepted)."""
    values = []
    for raw in request.query.get(name, []):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return values


def encode_cursor(offset: int, salt: int = 0) -> str:
    return base64.urlsafe_b64encode(f"neon:{offset}:{salt}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Optional[int]:
    """The offset of the next project a cursor points at; None when it is not one of ours (tests
    read it to check which page a request asked for)."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, offset, _ = text.split(":")
        return int(offset) if prefix == "neon" and int(offset) >= 0 else None
    except (ValueError, UnicodeDecodeError):
        return None
