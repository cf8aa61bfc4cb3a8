"""The fewest requests, per provider, that a load of a day range can take, and the least time.

Each provider says it itself (`Provider.min_requests` and `Provider.longest_chain`, from its own
limits and page sizes and the simulator's real ones); this module only asks every provider of
the registry that has a simulator running, and turns the longest chain of requests that must
run one after another into seconds at a given latency.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Dict, Optional

import sources


@dataclass
class Minimum:
    """The fewest requests a provider's API allows for a range, how many of them must run one
    after another (the rest may run concurrently), and the API's token bucket if it has one."""

    requests: int
    chain: int
    per_minute: Optional[float] = None
    burst: Optional[float] = None

    def chain_seconds(self, latency_s: float) -> float:
        return chain_seconds(self.chain, latency_s, self.per_minute, self.burst)


def minimum_requests(sims: Dict[str, Any], first: dt.date, last: dt.date) -> Dict[str, Minimum]:
    """Per provider with a simulator in `sims`: its minimum for first..last from that simulator's
    data. A simulator with a token bucket (`bucket`) paces the chain at the bucket's rate."""
    out: Dict[str, Minimum] = {}
    for name, provider in sources.providers().items():
        sim = sims.get(name)
        if sim is None or provider.min_requests is None:
            continue
        requests = provider.min_requests(sim, first, last)
        chain = provider.longest_chain(sim, first, last) if provider.longest_chain else requests
        bucket = getattr(sim, "bucket", None)
        out[name] = Minimum(requests, chain,
                            per_minute=bucket.refill_per_s * 60 if bucket else None,
                            burst=bucket.capacity if bucket else None)
    return out


def chain_seconds(chain: int, latency_s: float, per_minute: Optional[float] = None,
                  burst: Optional[float] = None) -> float:
    """The least time `chain` requests one after another can take at `latency_s` each, under a
    token bucket of `per_minute` (full at the start) when the API has one."""
    if not per_minute:
        return chain * latency_s
    rate, clock = per_minute / 60.0, 0.0
    for number in range(1, chain + 1):
        earliest = max(0.0, (number - (burst or per_minute)) / rate)
        clock = max(clock, earliest) + latency_s
    return clock
