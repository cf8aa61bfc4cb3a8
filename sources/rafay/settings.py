"""Rafay partner usage metrics: endpoints, page sizes, limits and raw table schemas."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from sources import windows

REQUIRED_SETTINGS = ("api_key", "base_url")
"""Config keys that must be present: the key and the console domain (there is no default host)."""

KEY_SETTING = "SOURCES__RAFAY__API_KEY"
BASE_URL_SETTING = "SOURCES__RAFAY__BASE_URL"
API_KEY_HEADER = "x-api-key"

API = "/apis/billing.envmgmt.io/v1/metrics/partner"
COMPUTE_INSTANCE_PATH = f"{API}/instance/kind/compute/usage"
SERVICE_INSTANCE_PATH = f"{API}/instance/kind/service/usage"
COMPUTE_PROFILE_PATH = f"{API}/profile/kind/compute/usage"
SERVICE_PROFILE_PATH = f"{API}/profile/kind/service/usage"
"""Default for the service-profile path. The vendor's own collection sends this request to the
compute path instead; the service path is the likely real one, so it is configurable."""

INSTANCE_PAGE_SIZE = 400
PROFILE_PAGE_SIZE = 100
"""Page sizes the vendor's collection uses (the API's maximum is not documented)."""

DEFAULT_MAX_WORKERS = 4
"""Days fetched at once per resource (each day is its own request window)."""

MAX_WINDOW_DAYS = 1
"""Usage is aggregated over the requested range, so a daily figure needs a one-day window."""

USAGE_LIST_SUFFIX = "_usage_data"
"""The rows of a page are the first list-valued field whose name ends with this."""

INSTANCE_KEY_FIELDS = ("instance_id",)
PROFILE_KEY_FIELDS = ("profile_id", "instance_organization_id")
"""What identifies a row within one window (used to detect a page served twice)."""

USAGE_METRIC = "usage_hours"
"""The contract metric of a row's own `raw_usage`; a parameter's metric (`<name>_hours`) may not
take this name."""

MERGE = {"disposition": "merge", "strategy": "delete-insert"}

TIMESTAMP = pa.timestamp("us", tz="UTC")

INSTANCE_SCHEMA = pa.schema([
    pa.field("usage_date", pa.date32(), nullable=False),
    pa.field("instance_id", pa.string(), nullable=False),
    pa.field("instance_name", pa.string()),
    pa.field("instance_organization_id", pa.string(), nullable=False),
    pa.field("instance_organization_name", pa.string()),
    pa.field("instance_project_id", pa.string()),
    pa.field("instance_project_name", pa.string()),
    pa.field("profile_id", pa.string()),
    pa.field("profile_name", pa.string()),
    pa.field("created_at", TIMESTAMP),
    pa.field("start_time", TIMESTAMP),
    pa.field("end_time", TIMESTAMP),
    pa.field("usage", pa.string()),
    pa.field("raw_usage", pa.float64(), nullable=False),
    pa.field("partner_id", pa.string()),
    pa.field("organization_id", pa.string()),
])
"""compute_instance_usage / service_instance_usage: one row per instance and day it ran."""

PROFILE_SCHEMA = pa.schema([
    pa.field("usage_date", pa.date32(), nullable=False),
    pa.field("profile_id", pa.string(), nullable=False),
    pa.field("profile_name", pa.string()),
    pa.field("instance_organization_id", pa.string(), nullable=False),
    pa.field("instance_organization_name", pa.string()),
    pa.field("usage", pa.string()),
    pa.field("raw_usage", pa.float64(), nullable=False),
    pa.field("partner_id", pa.string()),
    pa.field("organization_id", pa.string()),
])
"""compute_profile_usage / service_profile_usage: one row per profile, tenant org and day."""

PARAMETER_FIELDS = [
    pa.field("parameter_name", pa.string(), nullable=False),
    pa.field("is_label", pa.bool_()),
    pa.field("label_value", pa.string()),
    pa.field("raw_usage", pa.float64()),
    pa.field("usage", pa.string()),
    pa.field("metric", pa.string()),
    pa.field("quantity", pa.float64()),
]
"""A row's `parameters`, one row each. `metric`/`quantity` hold the contract's `<name>_hours`
(label value x hours, or a quantity parameter's raw_usage); null for a non-numeric label."""

INSTANCE_PARAMETER_SCHEMA = pa.schema([
    pa.field("usage_date", pa.date32(), nullable=False),
    pa.field("instance_id", pa.string(), nullable=False),
    pa.field("instance_organization_id", pa.string(), nullable=False),
    *PARAMETER_FIELDS,
])

PROFILE_PARAMETER_SCHEMA = pa.schema([
    pa.field("usage_date", pa.date32(), nullable=False),
    pa.field("profile_id", pa.string(), nullable=False),
    pa.field("instance_organization_id", pa.string(), nullable=False),
    *PARAMETER_FIELDS,
])

INSTANCE_PRIMARY_KEY = ["usage_date", "instance_id"]
INSTANCE_PARAMETER_PRIMARY_KEY = ["usage_date", "instance_id", "parameter_name"]
PROFILE_PRIMARY_KEY = ["usage_date", "profile_id", "instance_organization_id"]
PROFILE_PARAMETER_PRIMARY_KEY = ["usage_date", "profile_id", "instance_organization_id", "parameter_name"]
MERGE_KEY = ["usage_date"]
"""Reloading a day deletes that day's rows of the table and inserts the fresh ones."""

PARAMETERS_TABLE_SUFFIX = "_parameters"
"""`<resource>_parameters`: the sibling table holding each row's parameters."""


@dataclass(frozen=True)
class Endpoint:
    """One usage endpoint, loaded by the one resource definition into the table of its name."""

    table_name: str
    path: str
    level: str
    """`instance` or `profile`: the rows' identity, flattening and schemas (`helpers.LEVELS`)."""
    page_size: int
    doc: str
    """The resource's docstring: what one row of its table is."""


ENDPOINTS = (
    Endpoint(
        "compute_instance_usage", COMPUTE_INSTANCE_PATH, "instance", INSTANCE_PAGE_SIZE,
        """Hours each compute instance ran per UTC day, with its sizes in
        `compute_instance_usage_parameters` (keyed by day, instance and parameter).""",
    ),
    Endpoint(
        "service_instance_usage", SERVICE_INSTANCE_PATH, "instance", INSTANCE_PAGE_SIZE,
        """Hours each service instance ran per UTC day, with its sizes and quantities (e.g.
        Storage) in `service_instance_usage_parameters`.""",
    ),
    Endpoint(
        "compute_profile_usage", COMPUTE_PROFILE_PATH, "profile", PROFILE_PAGE_SIZE,
        """Hours per compute profile, tenant org and UTC day (summed over its instances), with
        parameters in `compute_profile_usage_parameters`.""",
    ),
    Endpoint(
        "service_profile_usage", SERVICE_PROFILE_PATH, "profile", PROFILE_PAGE_SIZE,
        """Hours per service profile, tenant org and UTC day (from `service_profile_path`), with
        parameters in `service_profile_usage_parameters`.""",
    ),
)
"""The four endpoints (compute and service, instance and profile), in the order they load."""

LIMITS = windows.ApiLimits(max_window_days=MAX_WINDOW_DAYS)
"""What the API serves, as the day arithmetic of plans, refusals and chunks asks it."""
