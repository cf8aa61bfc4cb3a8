"""Local stand-ins of the four provider APIs, faithful to their documented behaviour.

Each simulator is a real HTTP server on loopback that serves deterministic usage data (from a
seed, relative to the real current date), counts and records the requests it served, and can
tell the exact expected daily figures for any window (`truth`).
"""

import importlib
from typing import Any, Dict

CLASSES = {
    "neon": "simulators.neon:NeonSimulator",
    "adverity": "simulators.adverity:AdveritySimulator",
    "rafay": "simulators.rafay:RafaySimulator",
    "bronto": "simulators.bronto:BrontoSimulator",
}


def simulator_class(provider: str):
    module, name = CLASSES[provider].split(":")
    return getattr(importlib.import_module(module), name)


def start_all(keys: Dict[str, str], seed: int = 0, sizes: Dict[str, Dict[str, Any]] = None, **common: Any) -> Dict[str, Any]:
    """Start one simulator per provider on loopback; `keys` gives each its API key."""
    sizes = sizes or {}
    return {
        provider: simulator_class(provider)(api_key=keys[provider], seed=seed, **common, **sizes.get(provider, {})).start()
        for provider in CLASSES
    }
