"""The fields the APIs' answers carry, noted as they are read, so that a run can tell when a
provider added or dropped one (schema drift) even though the sources read only the fields they
know: the raw tables' explicit schemas never show a field the source leaves out.

A field is named by its path in the body: `projects[].periods[].period_id` (`[]`: any item of a
list). An object with more than `MAP_KEYS` keys is a map keyed by data (ids, days), not a record:
its keys are one `*`, so that data never reads as fields.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Set

MAP_KEYS = 50

_SEEN: Dict[str, Dict[str, Set[str]]] = {}
"""Per account (its label, as its requests are counted: `sources.http.counted_as`) and endpoint,
the field paths of the answers read since `forget(label)`."""
_LOCK = threading.Lock()


def paths(body: Any, prefix: str = "", into: Set[str] = None) -> Set[str]:
    """Every field path of a decoded JSON body."""
    found: Set[str] = set() if into is None else into
    if isinstance(body, dict):
        keys = ["*"] if len(body) > MAP_KEYS else body.keys()
        for key in keys:
            path = f"{prefix}.{key}" if prefix else str(key)
            found.add(path)
            values = body.values() if key == "*" else [body[key]]
            for value in values:
                paths(value, path, found)
    elif isinstance(body, list):
        for item in body:
            paths(item, f"{prefix}[]", found)
    return found


def note(label: str, endpoint: str, body: Any) -> None:
    """Note the fields of one answer of `endpoint` to the account `label`."""
    found = paths(body)
    with _LOCK:
        _SEEN.setdefault(label, {}).setdefault(endpoint, set()).update(found)


def forget(label: str) -> None:
    """Start noting the account's fields afresh (a load of it)."""
    with _LOCK:
        _SEEN.pop(label, None)


def seen(label: str) -> Dict[str, Set[str]]:
    """Per endpoint, the fields the account's answers carried since `forget`."""
    with _LOCK:
        return {endpoint: set(found) for endpoint, found in _SEEN.get(label, {}).items()}
