"""`make demo`: the bundled simulators, a nightly run into a DuckDB file of its own, a summary."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


DEMO_DIR = Path("data/demo")
DEMO_WAREHOUSE = DEMO_DIR / "warehouse.duckdb"


def demo_dir() -> Path:
    return Path(os.environ.get("DEMO_DIR") or DEMO_DIR)


def run_demo() -> int:
    import sources
    from simulators import start_all

    directory = demo_dir()
    directory.mkdir(parents=True, exist_ok=True)
    keys = {provider: f"demo-{provider}-{secrets.token_hex(8)}" for provider in sources.names()}
    sims = start_all(keys, seed=7)
    try:
        for sim in sims.values():
            os.environ.update(sim.source_env())
        os.environ["DESTINATION__DUCKDB__CREDENTIALS"] = str(directory / "warehouse.duckdb")
        os.environ["DLT_DATA_DIR"] = str((directory / "dlt").resolve())
        os.environ.pop("DESTINATION", None)
        from pipelines.nightly import run_nightly
        from pipelines.summary import fact_summary_lines

        report = run_nightly(destination="duckdb")
        print(f"demo warehouse: {report.destination.location}")
        print("\n".join(report.lines()))
        served = {provider: len(sim.requests) for provider, sim in sims.items()}
        print("requests served by the simulators: " + ", ".join(f"{p}={n}" for p, n in served.items()))
        print()
        print("\n".join(fact_summary_lines(report.destination)))
        return report.exit_code
    finally:
        for sim in sims.values():
            sim.stop()


if __name__ == "__main__":
    raise SystemExit(run_demo())
