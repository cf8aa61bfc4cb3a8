"""Schema drift: what changed in a provider's answers since the last run that read them, and in
its raw tables, for the run's record (`load_runs.schema_changes`), its summary and its alert.

The sources read only the fields they know, into raw tables of explicit schemas, so a field an
API adds never reaches a table on its own, and a field it drops may leave nulls without a word:
the fields each endpoint's answers carried are noted as they are read (`sources.fields`) and
kept per account in `analytics.api_fields`; each run compares its own with them. The first run
of an account (nothing kept yet) reports none. dlt's own schema updates (columns added to a raw
table that existed before) are named too.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Set

from pipelines import warehouse
from pipelines.config import split_label

API_FIELDS = "analytics.api_fields"
CREATE = f"""
create table if not exists {API_FIELDS} (
    provider varchar not null,
    account varchar not null,
    endpoint varchar not null,
    field varchar not null,
    seen_at timestamp not null
)
"""
LISTED = 12
"""Fields named per endpoint and kind; the rest are counted."""


def describe(endpoint: str, added: Set[str], dropped: Set[str]) -> str:
    """One endpoint's change in words: its new fields and the fields gone."""
    parts = []
    for kind, found in (("new fields", added), ("fields gone", dropped)):
        if found:
            names = sorted(found)
            more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
            parts.append(f"{kind} {', '.join(names[:LISTED])}{more}")
    return f"{endpoint}: {'; '.join(parts)}"


def compare_and_keep(dest, results: Sequence) -> None:
    """For every load that went well and read answers: set its `schema_changes` (None when
    nothing changed) from the fields kept for its account, then keep its own instead."""
    read = [r for r in results if r.status == "ok" and r.fields]
    if not read:
        for r in results:
            r.schema_changes = "; ".join(r.table_changes) or None
        return
    now = warehouse.utc_now()
    reading = {id(r) for r in read}
    with warehouse.sql_client(dest) as client:
        client.execute_sql(f"create schema if not exists {warehouse.SCHEMA}")
        client.execute_sql(CREATE)
        for r in results:
            changes: List[str] = list(r.table_changes)
            if id(r) in reading:
                provider, account = split_label(r.provider)
                kept = _kept(client, provider, account)
                for endpoint in sorted(r.fields):
                    before = kept.get(endpoint)
                    if before is not None and before != r.fields[endpoint]:
                        changes.append(describe(endpoint, r.fields[endpoint] - before, before - r.fields[endpoint]))
                with client.begin_transaction():
                    for endpoint, found in r.fields.items():
                        client.execute_sql(f"delete from {API_FIELDS} where provider = %s and account = %s and endpoint = %s",
                                           provider, account, endpoint)
                        warehouse.insert_rows(client, API_FIELDS, ("provider", "account", "endpoint", "field", "seen_at"),
                                              [(provider, account, endpoint, name, now) for name in sorted(found)])
            r.schema_changes = "; ".join(changes) or None


def _kept(client, provider: str, account: str) -> Dict[str, Set[str]]:
    kept: Dict[str, Set[str]] = {}
    for endpoint, name in client.execute_sql(
            f"select endpoint, field from {API_FIELDS} where provider = %s and account = %s", provider, account) or []:
        kept.setdefault(endpoint, set()).add(name)
    return kept


def table_changes(dataset: str, known: Optional[Dict[str, Set[str]]], schema_updates: Sequence[dict]) -> List[str]:
    """The columns a load added to raw tables that existed before it (dlt's `schema_update` of
    each package); none on an account's first load, which makes every table."""
    if not known:
        return []
    added: Dict[str, Set[str]] = {}
    for update in schema_updates:
        for table, change in (update or {}).items():
            if table.startswith("_dlt"):
                continue
            columns = set((change or {}).get("columns") or {}) - known.get(table, set())
            if columns:
                added.setdefault(table, set()).update(columns)
    return [f"{dataset}.{table}: {'new table with columns' if table not in known else 'new columns'} "
            f"{', '.join(sorted(columns))}" for table, columns in sorted(added.items())]
