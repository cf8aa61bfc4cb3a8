"""Rafay partner usage metrics (billing.envmgmt.io), simulated.

Serves the four usage endpoints of a partner controller with `x-api-key` auth and offset/limit
paging. Usage is aggregated over the requested range: one row per instance (or per profile and
tenant org) for the whole range, `raw_usage` = hours in the range. Each instance runs a number of
hours per UTC day (a pure function of instance and day); a range sums the days it covers, a
partially covered day counting in proportion to the part covered.

Choices where the vendor documents nothing (see PROVIDERS.md):
- error bodies are `{"error": "..."}`; 401 for a wrong or missing key, 400 for bad parameters;
- `limit` defaults to 10 and may be 1..1000 (`MAX_LIMIT`); `offset` >= 0;
- `count` is the total number of rows matching the request, not the page's;
- profile rows are listed under `profile_usage_data`, one per profile and tenant org;
- no rate limit.
Quirks: `ignore_offset=True` serves the first page whatever `offset` says; `max_limit=N` plays a
controller that clamps a larger `limit` to N (instead of refusing it) and echoes the `limit` it
applied in the envelope, as PROVIDERS.md says a clamping server does.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any, Dict, List, Optional, Tuple

from simulators.base import Request, Response, Simulator, day_start, iso_z

API = "/apis/billing.envmgmt.io/v1/metrics/partner"
COMPUTE_INSTANCE_PATH = f"{API}/instance/kind/compute/usage"
SERVICE_INSTANCE_PATH = f"{API}/instance/kind/service/usage"
COMPUTE_PROFILE_PATH = f"{API}/profile/kind/compute/usage"
SERVICE_PROFILE_PATH = f"{API}/profile/kind/service/usage"

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
DAY_S = 86400

ORG_NAMES = ["acme-research", "globex-ml", "initech-labs", "umbrella-ai", "hooli-data", "stark-sims"]
PROJECT_NAMES = ["default", "training", "inference", "notebooks"]

# name, sizes of the label parameters (CPU cores, GPUs, memory GiB, disk GiB), ServiceID
COMPUTE_PROFILES = [
    ("gpu-a100-x1", {"CPU": 24, "GPU": 1, "Memory": 256, "Disk": 150}, "svc-gpu-vm"),
    ("cpu-large", {"CPU": 32, "Memory": 128, "Disk": 500}, "svc-cpu-vm"),
    ("gpu-h100-x8", {"CPU": 96, "GPU": 8, "Memory": 1024, "Disk": 2000}, "svc-gpu-cluster"),
    ("cpu-small", {"CPU": 4, "Memory": 16, "Disk": 50}, "svc-cpu-vm"),
]
# name, label sizes, ServiceID, storage GiB per instance (a quantity parameter: GiB x hours)
SERVICE_PROFILES = [
    ("jupyter-notebook", {"CPU": 4, "Memory": 16}, "svc-jupyter", 50),
    ("postgres-db", {"CPU": 2, "Memory": 8}, "svc-postgres", 200),
    ("vector-store", {"CPU": 8, "Memory": 64}, "svc-qdrant", 500),
]


def _error(status: int, message: str) -> Response:
    return Response(status, {"error": message})


class RafaySimulator(Simulator):
    """A Rafay partner controller serving instance and profile usage for a few tenant orgs."""

    provider = "rafay"

    def __init__(
        self,
        api_key: str,
        seed: int = 0,
        latency_ms: float = 0.0,
        port: int = 0,
        clock=None,
        n_orgs: int = 3,
        projects_per_org: int = 2,
        n_compute_profiles: int = 3,
        n_service_profiles: int = 2,
        n_compute_instances: int = 12,
        n_service_instances: int = 8,
        history_days: int = 30,
        ignore_offset: bool = False,
        service_profile_path: str = SERVICE_PROFILE_PATH,
        max_limit: Optional[int] = None,
    ):
        super().__init__(api_key, seed=seed, latency_ms=latency_ms, port=port, clock=clock)
        self.ignore_offset = ignore_offset
        self.max_limit = max_limit
        self.history_days = history_days
        self.partner_id = self._uuid("partner")
        self.partner_org_id = self._uuid("partner-org")
        self.orgs = [
            {"id": self._uuid("org", i), "name": f"{ORG_NAMES[i % len(ORG_NAMES)]}{'' if i < len(ORG_NAMES) else i}"}
            for i in range(n_orgs)
        ]
        self.projects = {
            org["id"]: [
                {"id": self._uuid("project", org["id"], j), "name": f"{PROJECT_NAMES[j % len(PROJECT_NAMES)]}-{j}"}
                for j in range(projects_per_org)
            ]
            for org in self.orgs
        }
        self.profiles = {
            "compute": [self._profile("compute", i, COMPUTE_PROFILES) for i in range(n_compute_profiles)],
            "service": [self._profile("service", i, SERVICE_PROFILES) for i in range(n_service_profiles)],
        }
        today = self.today()
        self.instances = {
            "compute": [self._instance("compute", i, today) for i in range(n_compute_instances)],
            "service": [self._instance("service", i, today) for i in range(n_service_instances)],
        }
        for kind in self.instances:
            self.instances[kind].sort(key=lambda instance: instance["id"])
        self._cache: Dict[Tuple[str, str, str], List[Dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()
        self.routes[COMPUTE_INSTANCE_PATH] = lambda request: self._serve(request, "compute", "instance")
        self.routes[SERVICE_INSTANCE_PATH] = lambda request: self._serve(request, "service", "instance")
        self.routes[COMPUTE_PROFILE_PATH] = lambda request: self._serve(request, "compute", "profile")
        self.routes[service_profile_path.rstrip("/")] = lambda request: self._serve(request, "service", "profile")

    # -- catalogue ---------------------------------------------------------------------------
    def _uuid(self, *parts: Any) -> str:
        return str(uuid.UUID(int=(self.rand("id-hi", *parts) << 64) | self.rand("id-lo", *parts)))

    def _profile(self, kind: str, i: int, catalog: List[tuple]) -> Dict[str, Any]:
        name, labels, service_id, *storage_gib = catalog[i % len(catalog)]
        return {"id": self._uuid("profile", kind, i), "name": name if i < len(catalog) else f"{name}-{i}",
                "labels": labels, "service_id": service_id, "storage_gib": storage_gib[0] if storage_gib else None}

    def _instance(self, kind: str, i: int, today: dt.date) -> Dict[str, Any]:
        """An instance: owner, profile, lifetime (created, maybe deleted) and running pattern."""
        r = lambda *parts: self.rand("instance", kind, i, *parts)  # noqa: E731
        org = self.orgs[r("org") % len(self.orgs)]
        project = self.projects[org["id"]][r("project") % len(self.projects[org["id"]])]
        profile = self.profiles[kind][r("profile") % len(self.profiles[kind])]
        if r("lifetime") % 10 < 4:  # long-lived: created well before any window, still running
            created_day = today - dt.timedelta(days=self.history_days + r("age") % 100)
            deleted_day = None
        else:  # created recently; half of them stopped for good after a few days
            created_day = today - dt.timedelta(days=r("age") % max(1, self.history_days))
            deleted_day = created_day + dt.timedelta(days=1 + r("life") % 15) if r("deleted") % 2 else None
        start_s = r("start") % DAY_S
        stop_s = 600 + r("stop") % (DAY_S - 600)
        if deleted_day == created_day:
            stop_s = max(stop_s, start_s + 600)
        return {
            "id": self._uuid("instance", kind, i),
            "name": f"{profile['name']}-{r('name') % 10000:04d}",
            "org": org,
            "project": project,
            "profile": profile,
            "created_day": created_day,
            "created_s": start_s,
            "deleted_day": deleted_day,
            "stop_s": min(stop_s, DAY_S),
            "intermittent": r("pattern") % 10 < 3,  # runs a few hours on some days only
            "storage_gib": (profile["storage_gib"] * (1 + r("storage") % 3)) if profile["storage_gib"] else None,
        }

    def running_interval(self, instance: Dict[str, Any], day: dt.date) -> Optional[Tuple[int, int]]:
        """Seconds of `day` (start, end) the instance ran, or None: a pure function of both."""
        if day < instance["created_day"] or (instance["deleted_day"] and day > instance["deleted_day"]):
            return None
        if day > self.today():
            return None
        start, end = 0, DAY_S
        if instance["intermittent"]:
            r = lambda *parts: self.rand("run", instance["id"], day.isoformat(), *parts)  # noqa: E731
            if r("off") % 3 == 0:
                return None
            start = r("start") % (DAY_S // 2)
            end = start + 3600 + r("length") % (10 * 3600)
        if day == instance["created_day"]:
            start = max(start, instance["created_s"])
        if day == instance["deleted_day"]:
            end = min(end, instance["stop_s"])
        if day == self.today():
            now = self.now()
            end = min(end, int((now - day_start(day)).total_seconds()))
        return (start, end) if end > start else None

    # -- range aggregation ---------------------------------------------------------------------
    def instance_rows(self, kind: str, range_from: dt.datetime, range_to: dt.datetime) -> List[Dict[str, Any]]:
        """One row per instance that ran in [range_from, range_to), sorted by instance id."""
        key = (kind, iso_z(range_from), iso_z(range_to))
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        rows = []
        first_day, last_day = range_from.date(), (range_to - dt.timedelta(microseconds=1)).date()
        for instance in self.instances[kind]:
            hours, start_time, end_time = 0.0, None, None
            day = first_day
            while day <= last_day:
                interval = self.running_interval(instance, day)
                if interval is not None:
                    midnight = day_start(day)
                    covered_from = max(range_from, midnight)
                    covered_to = min(range_to, midnight + dt.timedelta(days=1))
                    share = (covered_to - covered_from).total_seconds() / DAY_S
                    hours += (interval[1] - interval[0]) / 3600 * share
                    run_from = max(covered_from, midnight + dt.timedelta(seconds=interval[0]))
                    run_to = min(covered_to, midnight + dt.timedelta(seconds=interval[1]))
                    if run_to > run_from:
                        start_time = min(start_time or run_from, run_from)
                        end_time = max(end_time or run_to, run_to)
                day += dt.timedelta(days=1)
            raw_usage = round(hours, 6)
            if raw_usage <= 0:
                continue
            rows.append(self._instance_row(kind, instance, raw_usage, start_time, end_time))
        with self._cache_lock:
            if len(self._cache) > 512:
                self._cache.clear()
            self._cache[key] = rows
        return rows

    def _parameters(self, profile: Dict[str, Any], raw_usage: float, storage_usage: Optional[float]) -> List[Dict[str, Any]]:
        parameters = [
            {"name": name, "usage": f"{raw_usage:.2f}h", "is_label": True, "raw_usage": raw_usage,
             "label_value": str(size)}
            for name, size in sorted(profile["labels"].items())
        ]
        parameters.append({"name": "ServiceID", "usage": f"{raw_usage:.2f}h", "is_label": True,
                           "raw_usage": raw_usage, "label_value": profile["service_id"]})
        if storage_usage is not None:  # a quantity parameter: GiB x hours, no label value
            parameters.append({"name": "Storage", "usage": f"{storage_usage:.2f}", "is_label": False,
                               "raw_usage": storage_usage})
        return parameters

    def _instance_row(self, kind: str, instance: Dict[str, Any], raw_usage: float,
                      start_time: dt.datetime, end_time: dt.datetime) -> Dict[str, Any]:
        storage = round(instance["storage_gib"] * raw_usage, 6) if instance["storage_gib"] else None
        created_at = day_start(instance["created_day"]) + dt.timedelta(seconds=instance["created_s"])
        return {
            "instance_organization_id": instance["org"]["id"],
            "instance_organization_name": instance["org"]["name"],
            "instance_project_id": instance["project"]["id"],
            "instance_project_name": instance["project"]["name"],
            "profile_id": instance["profile"]["id"],
            "profile_name": instance["profile"]["name"],
            "instance_id": instance["id"],
            "instance_name": instance["name"],
            "created_at": iso_z(created_at),
            "parameters": self._parameters(instance["profile"], raw_usage, storage),
            "usage": f"{raw_usage:.2f}h",
            "raw_usage": raw_usage,
            "start_time": iso_z(start_time),
            "end_time": iso_z(end_time),
        }

    def profile_rows(self, kind: str, range_from: dt.datetime, range_to: dt.datetime) -> List[Dict[str, Any]]:
        """One row per profile and tenant org, summing that org's instances of the profile."""
        groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
        for row in self.instance_rows(kind, range_from, range_to):
            groups.setdefault((row["profile_id"], row["instance_organization_id"]), []).append(row)
        profiles = {profile["id"]: profile for profile in self.profiles[kind]}
        rows = []
        for (profile_id, org_id), members in sorted(groups.items()):
            raw_usage = round(sum(row["raw_usage"] for row in members), 6)
            storage = None
            if profiles[profile_id]["storage_gib"]:
                storage = round(sum(p["raw_usage"] for row in members for p in row["parameters"]
                                    if p["name"] == "Storage"), 6)
            rows.append({
                "profile_id": profile_id,
                "profile_name": profiles[profile_id]["name"],
                "instance_organization_id": org_id,
                "instance_organization_name": members[0]["instance_organization_name"],
                "parameters": self._parameters(profiles[profile_id], raw_usage, storage),
                "usage": f"{raw_usage:.2f}h",
                "raw_usage": raw_usage,
            })
        return rows

    # -- HTTP ----------------------------------------------------------------------------------
    def authorized(self, headers: Dict[str, str]) -> Optional[Response]:
        if headers.get("x-api-key") == self.api_key:
            return None
        return _error(401, "unauthorized: missing or invalid x-api-key")

    def _serve(self, request: Request, kind: str, level: str) -> Response:
        instants = {}
        for name in ("range_from", "range_to"):
            text = request.one(name)
            if not text:
                return _error(400, f"{name} is required (RFC 3339 UTC, e.g. 2026-02-12T00:00:00Z)")
            try:
                instant = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
                if instant.utcoffset() != dt.timedelta(0):  # naive or not UTC
                    raise ValueError(text)
            except ValueError:
                return _error(400, f"{name}={text!r} is not an RFC 3339 UTC timestamp")
            instants[name] = instant
        if instants["range_to"] <= instants["range_from"]:
            return _error(400, "range_to must be after range_from")
        try:
            limit = int(request.one("limit") or DEFAULT_LIMIT)
            offset = int(request.one("offset") or 0)
        except ValueError:
            return _error(400, "limit and offset must be integers")
        if self.max_limit is not None and limit > self.max_limit:
            limit = self.max_limit  # clamped, and the envelope says so
        if not 1 <= limit <= MAX_LIMIT:
            return _error(400, f"limit must be between 1 and {MAX_LIMIT}")
        if offset < 0:
            return _error(400, "offset must be >= 0")
        if level == "instance":
            rows = self.instance_rows(kind, instants["range_from"], instants["range_to"])
        else:
            rows = self.profile_rows(kind, instants["range_from"], instants["range_to"])
        org_filter = request.one("instance_organization_id")
        if org_filter:
            rows = [row for row in rows if row["instance_organization_id"] == org_filter]
        first = 0 if self.ignore_offset else offset
        return Response(200, {
            "kind": kind,
            "partner_id": self.partner_id,
            "organization_id": self.partner_org_id,
            f"{level}_usage_data": rows[first:first + limit],
            "count": len(rows),
            "offset": offset,
            "limit": limit,
            "range_from": iso_z(instants["range_from"]),
            "range_to": iso_z(instants["range_to"]),
        })

    # -- expected figures ------------------------------------------------------------------------
    def truth(self, first: dt.date, last: dt.date) -> List[Dict[str, Any]]:
        """Daily facts: what one-day requests serve, in the metrics of CONTRACT.md. Instances
        only: they are the leaves, the profiles' figures are rollups of them."""
        return self._daily(first, last, "instance")

    def profile_truth(self, first: dt.date, last: dt.date) -> List[Dict[str, Any]]:
        """The profile endpoints' daily figures in the same shape (`compute_profile`,
        `service_profile`): what analytics.rafay_profile_usage holds."""
        return self._daily(first, last, "profile")

    def _daily(self, first: dt.date, last: dt.date, level: str) -> List[Dict[str, Any]]:
        facts = []
        day = first
        while day <= last:
            start, end = day_start(day), day_start(day + dt.timedelta(days=1))
            for kind in ("compute", "service"):
                rows = self.instance_rows(kind, start, end) if level == "instance" else self.profile_rows(kind, start, end)
                id_field, name_field = f"{level}_id", f"{level}_name"
                resource_type = f"{kind}_{level}"
                for row in rows:
                    metrics = {"usage_hours": row["raw_usage"]}
                    for parameter in row["parameters"]:
                        name = parameter["name"].lower() + "_hours"
                        if not parameter["is_label"]:
                            metrics[name] = parameter["raw_usage"]
                        elif parameter["label_value"].isdigit():
                            metrics[name] = float(parameter["label_value"]) * parameter["raw_usage"]
                    facts.extend(
                        {"usage_date": day, "account_id": row["instance_organization_id"],
                         "account_name": row["instance_organization_name"],
                         "resource_type": resource_type, "resource_id": row[id_field],
                         "resource_name": row[name_field], "project_id": row.get("instance_project_id"),
                         "project_name": row.get("instance_project_name"), "profile_id": row["profile_id"],
                         "profile_name": row["profile_name"], "metric": metric, "quantity": quantity}
                        for metric, quantity in metrics.items()
                    )
            day += dt.timedelta(days=1)
        return facts
