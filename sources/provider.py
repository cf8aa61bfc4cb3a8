"""The provider contract: the one value each `sources/<provider>/` exports for `pipelines/`.

`pipelines/` knows a provider only through its `Provider`: the dlt source to run, the API's
limits, the settings it needs and how they are checked, and the simulator that stands in for
the API. Nothing else about an endpoint, a limit or a setting leaves the provider's folder.
"""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Tuple

from sources.windows import ApiLimits

SettingLookup = Callable[[str], Optional[str]]
"""Looks a provider setting up by key (`org_id`), as dlt resolves it; None when absent."""


def check_runtime(lookup: SettingLookup) -> None:
    """The checks every provider shares: dlt's `[runtime]` request settings, which every API
    client uses. A provider's own `check_settings` calls this too."""
    from sources.http import retry_settings  # sources.http needs dlt; this module does not

    retry_settings()


@dataclass(frozen=True)
class Provider:
    name: str
    source: Callable[..., Any]
    """The dlt source function: called with `start_date`, `end_date`, `lookback_days`."""
    limits: ApiLimits = field(default_factory=ApiLimits)
    required_settings: Tuple[str, ...] = ("api_key",)
    """Setting keys without which the provider cannot run; `api_key` decides "configured"."""
    check_settings: Callable[[SettingLookup], None] = check_runtime
    """Raises `ProviderError` naming the setting whose form is wrong (before anything runs);
    `check_runtime` (the default) checks the request settings every provider shares."""
    simulator: str = ""
    """`module:Class` of the local stand-in of the API, imported only when asked for."""
    sql_dir: Optional[str] = None
    """A folder of the provider's own models (`staging/`, `intermediate/`, with
    `int_<provider>__usage` in the fact's shape) for a provider whose SQL is not in `sql/`."""
    min_requests: Optional[Callable[[Any, dt.date, dt.date], int]] = None
    """The fewest requests the API's rules allow for loading first..last from that simulator's
    data: `min_requests(simulator, first, last)`, from the provider's limits and page sizes and
    the simulator's real ones (its clamped page size, say). `longest_chain(simulator, first,
    last)` is how many of them must run one after another (the rest may overlap): the least
    time a load takes at a given latency. The test suite and the bench both count against these."""
    longest_chain: Optional[Callable[[Any, dt.date, dt.date], int]] = None

    def setting(self, key: str) -> str:
        """The environment variable of a setting, e.g. SOURCES__NEON__API_KEY."""
        return f"SOURCES__{self.name.upper()}__{key.upper()}"

    def simulator_class(self) -> Any:
        module, _, name = self.simulator.partition(":")
        return getattr(importlib.import_module(module), name)
