"""The registry behind the parametrized provider suite: one `ProviderCase` per provider.

Each provider fills its case in `tests/cases/<provider>.py`; the shared tests run every check
over all of them the same way, against the provider's simulator over real HTTP.
"""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from simulators.base import Request, Simulator

import sources

PROVIDER_NAMES = sources.names()
"""The registry's providers: every one of them has a case."""


@dataclass
class ProviderCase:
    name: str
    make_simulator: Callable[..., Simulator]
    """Builds a small, fast simulator: make_simulator(api_key=..., seed=..., **overrides)."""
    env: Callable[[Simulator], Dict[str, str]]
    """Environment (dlt config) that points the source at a started simulator with good keys."""
    key_setting: str
    """The env var holding the API key, e.g. SOURCES__NEON__API_KEY."""
    tables: Dict[str, List[str]]
    """Raw tables the source loads, each with its primary key columns."""
    facts_sql: str
    """SQL over `{dataset}` giving usage_date, account_id, resource_type, resource_id, metric,
    quantity: the raw rows in the shape of `Simulator.truth()`."""
    assert_requests: Callable[[List[Request], dt.date, dt.date], None]
    """Asserts the query strings a full load of first..last sent (paging to the end, params)."""
    min_requests: Callable[[Simulator, dt.date, dt.date], int]
    """The fewest requests the API's rules allow for loading first..last."""
    tolerance: float = 0.0
    """Relative tolerance when comparing daily figures with the truth (Bronto's split slices)."""
    extra: Dict[str, Any] = field(default_factory=dict)


def case(name: str) -> ProviderCase:
    return importlib.import_module(f"tests.cases.{name}").CASE


def all_cases() -> List[ProviderCase]:
    return [case(name) for name in PROVIDER_NAMES]


def truth_rows(sim: Simulator, first: dt.date, last: dt.date) -> Dict[tuple, float]:
    """The simulator's truth keyed by grain, for comparisons."""
    return {
        (r["usage_date"], r["account_id"], r["resource_type"], r["resource_id"], r["metric"]): float(r["quantity"])
        for r in sim.truth(first, last)
    }


def optional(value: Optional[str]) -> str:
    return value or ""
