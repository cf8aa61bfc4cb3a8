"""dlt sources for the usage providers, one package per provider, and their registry.

Each `sources/<provider>/__init__.py` exports `PROVIDER`, its `sources.provider.Provider`
value; `PACKAGES` below is the only list of them. The CLI, nightly, backfill, bench and the
test suite iterate `providers()`. Shared pieces live beside them: `windows` decides UTC days,
request windows and API limits, `http` builds the API clients (retries and timeouts from dlt's
`[runtime]` settings) and turns HTTP failures into one-line errors, `secrets` masks every
credential of the process in them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Dict, Tuple

if TYPE_CHECKING:  # imported lazily: the simulators use sources.windows without dlt
    from sources.provider import Provider

PACKAGES: Tuple[str, ...] = ("neon", "adverity", "rafay", "bronto")
"""The providers, in the order runs and summaries list them."""

_REGISTRY: Dict[str, "Provider"] = {}


def providers() -> Dict[str, "Provider"]:
    """Every registered provider by name: the packages' own (imported on first use), then any
    registered from elsewhere."""
    if not _REGISTRY:
        for package in PACKAGES:
            provider = importlib.import_module(f"sources.{package}").PROVIDER
            _REGISTRY[provider.name] = provider
    return _REGISTRY


def names() -> Tuple[str, ...]:
    return tuple(providers())


def get(name: str) -> "Provider":
    return providers()[name]


def register(provider: "Provider") -> None:
    """Add a provider defined outside `sources/` (a plug-in, or a test's own)."""
    providers()[provider.name] = provider


def unregister(name: str) -> None:
    if name not in PACKAGES:
        providers().pop(name, None)
