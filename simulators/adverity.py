"""A local stand-in for Adverity's usage API (`GET /api/v1/usage/`), faithful to PROVIDERS.md.

What it serves:
- Auth: `Authorization: Token <key>` or `Authorization: Bearer <key>` (scheme case-insensitive, as
  Django REST framework compares it). A missing or wrong key answers 401 with an opaque JSON body
  (`{"detail": "Invalid token."}`) and `WWW-Authenticate`.
- Params: `granularity` `daily` (default) | `monthly`; `date_from` (default: first of the current
  month), `date_to` (default: yesterday), both `YYYY-MM-DD` inclusive. `date_to` is **always capped
  to yesterday**: today is never returned. `workspace_id` / `datastream_id` are repeatable filters;
  unknown ids are silently ignored (the request behaves as if they had not been sent, so a filter
  made only of unknown ids filters nothing). Malformed values answer 400 with a Django REST
  framework style body (`{"date_from": ["..."]}`).
- Paging like Django REST framework's `PageNumberPagination`: `page` from 1 (default 1); a page
  past the end, or not a number, answers 404 `{"detail": "Invalid page."}` (page 1 of an empty
  result is a valid empty page). `page_size` defaults to 50; **a `page_size` above the maximum
  (100) is silently capped to it**, and a malformed or non-positive one falls back to the
  default, which is what DRF's `max_page_size` does. The maximum is a constructor parameter so
  tests can play an instance with a smaller cap.
- Body `{"count": <total matching rows>, "items": [...]}`, plus `next`/`previous` links when
  `links=True` (the default; whether the real API sends them is unknown). Each item is one
  date × workspace × datastream: `date`, `workspace_id`, `workspace_name`, `datastream_id` (null
  for rows no datastream can be charged with), `unique_rows`, `total_rows`. With
  `extra_fields=True` items also carry fields the source does not know (the vendor adds fields
  without notice).

Data: a workspace tree (one root workspace, the others its children, every third one a grandchild)
with `datastreams_per_workspace` datastreams each. The key is scoped to `scope_workspace` (default
the root) and sees it and every workspace beneath it. A datastream has a row on most days (a
deterministic few are idle), and about half of the workspace-days also carry an unattributed row.
Counts are a pure function of (workspace, datastream, day), so any window gives the same numbers.

`granularity=monthly` answers one item per month × workspace × datastream over the days asked
(`date` the month's 1st, the other fields as daily), in the same envelope and paging. Its
`total_rows` adds up the days; its `unique_rows` is counted per month (here: the month's largest
daily figure, as a row new on two days of a month is new once), so it is not the sum of the
daily figures. A range starting after the 1st counts only the days asked (the documentation
does not say; the source always asks from the 1st), and the current month is month to date
(`date_to` capped to yesterday as ever).

No rate limit is documented; the vendor asks for one call at a time, so the simulator records the
highest number of requests it was serving at once in `max_concurrency`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlencode

from simulators.base import Request, Response, Simulator

USAGE_PATH = "/api/v1/usage/"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    parent_id: Optional[str]
    datastream_ids: Tuple[str, ...]


class AdveritySimulator(Simulator):
    """Adverity's `/api/v1/usage/` over a deterministic workspace tree."""

    provider = "adverity"

    def __init__(
        self,
        api_key: str,
        seed: int = 0,
        latency_ms: float = 0.0,
        port: int = 0,
        clock=None,
        n_workspaces: int = 3,
        datastreams_per_workspace: int = 5,
        scope_workspace: Optional[str] = None,
        links: bool = True,
        extra_fields: bool = True,
        max_page_size: int = MAX_PAGE_SIZE,
    ):
        super().__init__(api_key, seed=seed, latency_ms=latency_ms, port=port, clock=clock)
        self.links = links
        self.extra_fields = extra_fields
        self.max_page_size = max_page_size
        self._items_cache: Dict[tuple, List[Dict[str, Any]]] = {}
        self.workspaces: List[Workspace] = []
        for index in range(n_workspaces):
            parent = None if index == 0 else self.workspaces[0 if index % 3 else index - 1].id
            self.workspaces.append(
                Workspace(
                    id=self._uuid("workspace", index),
                    name="Acme Group" if index == 0 else f"Acme Team {index}",
                    parent_id=parent,
                    datastream_ids=tuple(self._uuid("datastream", index, d) for d in range(datastreams_per_workspace)),
                )
            )
        self.scope_id = scope_workspace or (self.workspaces[0].id if self.workspaces else None)
        self.auth_schemes: List[str] = []
        """The scheme word of each request's Authorization header (never the key), in order."""
        # the base looks routes up without the trailing slash; both spellings are registered
        self.routes[USAGE_PATH] = self.usage
        self.routes[USAGE_PATH.rstrip("/")] = self.usage

    # -- auth ----------------------------------------------------------------------------------
    def authorized(self, headers: Dict[str, str]) -> Optional[Response]:
        parts = headers.get("authorization", "").split()
        with self.lock:
            self.auth_schemes.append(parts[0] if parts else "")
        challenge = {"WWW-Authenticate": 'Token realm="api"'}
        if not parts:
            return Response(401, {"detail": "Authentication credentials were not provided."}, challenge)
        if len(parts) == 2 and parts[0].lower() in ("token", "bearer") and parts[1] == self.api_key:
            return None
        return Response(401, {"detail": "Invalid token."}, challenge)

    # -- data ----------------------------------------------------------------------------------
    def _uuid(self, *parts: Any) -> str:
        return str(uuid.UUID(int=(self.rand(*parts, "hi") << 64) | self.rand(*parts, "lo"), version=4))

    def visible_workspaces(self) -> List[Workspace]:
        """The key's workspace and every workspace beneath it."""
        visible = {self.scope_id}
        for workspace in self.workspaces:  # parents come before children
            if workspace.parent_id in visible:
                visible.add(workspace.id)
        return [w for w in self.workspaces if w.id in visible]

    def daily_rows(self, day: dt.date, workspaces: Optional[List[Workspace]] = None) -> List[Dict[str, Any]]:
        """Every row of one day, in the API's order (workspace, then datastream, unattributed last)."""
        rows = []
        for workspace in workspaces if workspaces is not None else self.visible_workspaces():
            streams: List[Optional[str]] = list(workspace.datastream_ids)
            if self.rand("unattributed", workspace.id, day) % 2 == 0:
                streams.append(None)
            for datastream_id in streams:
                if datastream_id is not None and self.rand("idle", datastream_id, day) % 8 == 0:
                    continue
                total = 50 + self.rand("total", workspace.id, datastream_id, day) % 20000
                unique = 0 if self.rand("none-new", workspace.id, datastream_id, day) % 11 == 0 else (
                    total - self.rand("unique", workspace.id, datastream_id, day) % (total // 2 + 1)
                )
                rows.append(
                    {
                        "date": day.isoformat(),
                        "workspace_id": workspace.id,
                        "workspace_name": workspace.name,
                        "datastream_id": datastream_id,
                        "unique_rows": unique,
                        "total_rows": total,
                    }
                )
        return rows

    def rows(self, first: dt.date, last: dt.date) -> List[Dict[str, Any]]:
        """Daily rows of an inclusive range as the API would list them (capped to yesterday)."""
        last = min(last, self.today() - ONE_DAY)
        return list(self._items("daily", first, last, self.visible_workspaces(), set()))

    def monthly_rows(self, first: dt.date, last: dt.date) -> List[Dict[str, Any]]:
        """The monthly answer's items for an inclusive day range (capped to yesterday), in the
        API's order."""
        last = min(last, self.today() - ONE_DAY)
        return list(self._items("monthly", first, last, self.visible_workspaces(), set()))

    def monthly_truth(self, first_month: dt.date, last_month: dt.date) -> List[Dict[str, Any]]:
        """The exact monthly figures of every month from `first_month` to `last_month` (any day
        of each), each month whole through its last day or yesterday, whichever comes first:
        one dict per month × workspace × datastream in the raw `monthly_usage` table's terms
        (`usage_month`, `workspace_id`, `workspace_name`, `datastream_id`, `datastream_key`,
        `unique_rows`, `total_rows`, `through_date`). Months after yesterday's have none."""
        yesterday = self.today() - ONE_DAY
        out = []
        month = first_month.replace(day=1)
        while month <= min(last_month, yesterday):
            following = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
            through = min(following - ONE_DAY, yesterday)
            for item in self.monthly_rows(month, through):
                out.append(
                    {
                        "usage_month": month,
                        "workspace_id": item["workspace_id"],
                        "workspace_name": item["workspace_name"],
                        "datastream_id": item["datastream_id"],
                        "datastream_key": item["datastream_id"] or "unattributed",
                        "unique_rows": item["unique_rows"],
                        "total_rows": item["total_rows"],
                        "through_date": through,
                    }
                )
            month = following
        return out

    def truth(self, first: dt.date, last: dt.date) -> List[Dict[str, Any]]:
        facts = []
        for row in self.rows(first, last):
            for metric in ("unique_rows", "total_rows"):
                facts.append(
                    {
                        "usage_date": dt.date.fromisoformat(row["date"]),
                        "account_id": row["workspace_id"],
                        "resource_type": "datastream",
                        "resource_id": row["datastream_id"] or "unattributed",
                        "metric": metric,
                        "quantity": float(row[metric]),
                    }
                )
        return facts

    # -- the endpoint --------------------------------------------------------------------------
    def usage(self, request: Request) -> Response:
        granularity = request.one("granularity") or "daily"
        if granularity not in ("daily", "monthly"):
            return Response(400, {"granularity": [f'"{granularity}" is not a valid choice.']})
        yesterday = self.today() - ONE_DAY
        bounds = {}
        for name, default in (("date_from", self.today().replace(day=1)), ("date_to", yesterday)):
            text = request.one(name)
            if text in (None, ""):
                bounds[name] = default
                continue
            try:
                if len(text) != 10:
                    raise ValueError(text)
                bounds[name] = dt.date.fromisoformat(text)
            except ValueError:
                return Response(
                    400, {name: ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]}
                )
        first, last = bounds["date_from"], min(bounds["date_to"], yesterday)

        workspaces = self.visible_workspaces()
        known_workspaces = [w for w in request.query.get("workspace_id", []) if w in {ws.id for ws in workspaces}]
        if known_workspaces:
            workspaces = [w for w in workspaces if w.id in known_workspaces]
        all_streams = {d for w in self.visible_workspaces() for d in w.datastream_ids}
        known_streams = {d for d in request.query.get("datastream_id", []) if d in all_streams}

        items = self._items(granularity, first, last, workspaces, known_streams)

        page_size = _positive_int(request.one("page_size"), DEFAULT_PAGE_SIZE, self.max_page_size)
        page_text = request.one("page") or "1"
        n_pages = max(1, -(-len(items) // page_size))
        if not page_text.isdigit() or not 1 <= int(page_text) <= n_pages:
            return Response(404, {"detail": "Invalid page."})
        page = int(page_text)
        page_items = items[(page - 1) * page_size : page * page_size]
        if self.extra_fields:
            page_items = [dict(item, granularity=granularity) for item in page_items]
        body: Dict[str, Any] = {"count": len(items)}
        if self.links:
            body["next"] = self._page_link(request, page + 1) if page < n_pages else None
            body["previous"] = self._page_link(request, page - 1) if page > 1 else None
        body["items"] = page_items
        return Response(200, body)

    def _items(self, granularity: str, first: dt.date, last: dt.date, workspaces: List[Workspace],
               streams: set) -> List[Dict[str, Any]]:
        """Every row a query matches, in the API's order. The last few answers are kept, so paging
        through a large range does not recompute the whole range for every page."""
        key = (granularity, first, last, tuple(w.id for w in workspaces), frozenset(streams))
        with self.lock:
            cached = self._items_cache.get(key)
        if cached is not None:
            return cached
        items: List[Dict[str, Any]] = []
        day = first
        while day <= last:
            for row in self.daily_rows(day, workspaces):
                if not streams or row["datastream_id"] in streams:
                    items.append(row)
            day += ONE_DAY
        if granularity == "monthly":
            items = self._monthly(items)
        with self.lock:
            if len(self._items_cache) >= 4:
                self._items_cache.pop(next(iter(self._items_cache)))
            self._items_cache[key] = items
        return items

    def _monthly(self, items: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Daily rows rolled up per month; unique rows are counted per month, not summed."""
        months: Dict[Tuple[str, str, Optional[str]], Dict[str, Any]] = {}
        for item in items:
            month = item["date"][:8] + "01"
            key = (month, item["workspace_id"], item["datastream_id"])
            if key not in months:
                months[key] = dict(item, date=month, unique_rows=0, total_rows=0)
            months[key]["total_rows"] += item["total_rows"]
            months[key]["unique_rows"] = max(months[key]["unique_rows"], item["unique_rows"])
        return list(months.values())

    def _page_link(self, request: Request, page: int) -> str:
        query = {k: v for k, v in request.query.items() if k != "page"}
        if page > 1:  # like DRF, the link to page 1 drops the page parameter
            query["page"] = [str(page)]
        text = urlencode(query, doseq=True)
        return f"{self.base_url}{USAGE_PATH}" + (f"?{text}" if text else "")


def _positive_int(text: Optional[str], default: int, cutoff: int) -> int:
    """DRF's page size rule: a positive integer capped at `cutoff`, else the default."""
    if text is None or not text.strip().isdigit() or int(text) <= 0:
        return default
    return min(int(text), cutoff)
