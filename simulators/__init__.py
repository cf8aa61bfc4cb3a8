"""Local stand-ins of the provider APIs, faithful to their documented behaviour.

Each simulator is a real HTTP server on loopback that serves deterministic usage data (from a
seed, relative to the real current date), counts and records the requests it served, and can
tell the exact expected daily figures for any window (`truth`). Which simulator stands in for
which provider is the provider's own word (`Provider.simulator` in the registry, `sources`).
"""

from typing import Any, Dict, Optional


def simulator_class(provider: str):
    import sources

    return sources.get(provider).simulator_class()


def start_all(keys: Dict[str, str], seed: int = 0, sizes: Optional[Dict[str, Dict[str, Any]]] = None, **common: Any) -> Dict[str, Any]:
    """Start one simulator per registered provider on loopback; `keys` gives each its API key."""
    import sources

    sizes = sizes or {}
    return {
        name: provider.simulator_class()(api_key=keys[name], seed=seed, **common, **sizes.get(name, {})).start()
        for name, provider in sources.providers().items()
        if provider.simulator
    }
