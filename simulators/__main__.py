"""`python -m simulators`: serve all four provider simulators until interrupted.

Prints the environment (dlt settings) that points the pipelines at them, e.g.
`eval "$(python -m simulators --print-env-only)"` is not supported: run it in one terminal
and export the printed lines in another.
"""

from __future__ import annotations

import argparse
import secrets
import time

import sources
from simulators import start_all


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    keys = {provider: f"sim-{provider}-{secrets.token_hex(8)}" for provider in sources.names()}
    sims = start_all(keys, seed=args.seed, latency_ms=args.latency_ms)
    for sim in sims.values():
        for name, value in sim.source_env().items():
            print(f"export {name}={value}")
    print("# serving; Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        for sim in sims.values():
            sim.stop()


if __name__ == "__main__":
    main()
