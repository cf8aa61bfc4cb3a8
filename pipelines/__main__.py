"""`usage-elt <command>` (the console script) and `python -m pipelines <command>`: the twin of
every Make target, and what schedulers call (their exit codes are the documented ones; `make`
turns every failure into 2)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from pipelines import config, memory
from pipelines.lock import LockBusy


def _setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%SZ",
        stream=sys.stderr,
    )
    logging.Formatter.converter = __import__("time").gmtime
    # dlt's own chatter stays at warnings; our lines say what happened
    logging.getLogger("dlt").setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    prog = "usage-elt" if invoked == "usage-elt" else "python -m pipelines"
    parser = argparse.ArgumentParser(prog=prog, description="Usage metrics ELT")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_destination(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--destination", default=None, help="duckdb (default) or postgres; env DESTINATION")
        return sub

    def with_wait(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                         help="wait this long for a running nightly/backfill/models to finish (default: exit at once)")
        return sub

    nightly = with_wait(with_destination(commands.add_parser("nightly", help="incremental load of every configured provider")))
    nightly.add_argument("--providers", default=None, help="comma list, default all configured")
    backfill = with_wait(with_destination(commands.add_parser("backfill", help="load an inclusive day range, leave the cursor alone")))
    backfill.add_argument("--provider", default="all", help="a provider name, a comma list, or all (configured)")
    backfill.add_argument("--start", required=True, help="first day YYYY-MM-DD")
    backfill.add_argument("--end", required=True, help="last day YYYY-MM-DD (inclusive)")
    with_destination(commands.add_parser("status", help="last runs and each provider's freshest day"))
    commands.add_parser("demo", help="simulators + nightly into data/demo/warehouse.duckdb + summary")
    models_cmd = with_wait(with_destination(commands.add_parser("models", help="rebuild the SQL models, for a day range or all")))
    models_cmd.add_argument("--start", default=None, help="first day YYYY-MM-DD (inclusive)")
    models_cmd.add_argument("--end", default=None, help="last day YYYY-MM-DD (inclusive)")
    with_destination(commands.add_parser("check", help="completeness (no missing day) and model tests; non-zero on failure"))
    commands.add_parser("bench", add_help=False,
                        help="the pipeline against a bare requests+pyarrow+duckdb loader (bench --help)")
    return parser


def cmd_nightly(args: argparse.Namespace) -> int:
    from pipelines.lock import warehouse_lock
    from pipelines.nightly import providers_to_run, run_nightly

    providers = config.parse_providers(args.providers) if args.providers else None
    providers_to_run(providers)  # configuration errors before waiting for the lock
    dest = config.destination(args.destination)
    with warehouse_lock(dest, "nightly", args.wait):
        report = run_nightly(providers, dest=dest)
    print("\n".join(report.lines()))
    return report.exit_code


def cmd_backfill(args: argparse.Namespace) -> int:
    from pipelines.backfill import plan, run_backfill
    from pipelines.lock import warehouse_lock
    from pipelines.runs import RunReport

    providers, first, last = plan(args.provider, args.start, args.end)
    dest = config.destination(args.destination)
    with warehouse_lock(dest, "backfill", args.wait):
        report = RunReport("backfill", dest)
        report.results = run_backfill(providers, first, last, dest)
        report.finish(check=False)
    print("\n".join(report.lines()))
    return report.exit_code


def cmd_status(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipelines.demo import DEMO_WAREHOUSE
    from pipelines.runs import status_lines

    dest = config.destination(args.destination)
    if dest.name == "duckdb" and not Path(dest.location).exists() and DEMO_WAREHOUSE.exists():
        # right after `make demo` the only warehouse is the demo's: show it rather than nothing
        print(f"{dest.location} does not exist yet; showing the demo warehouse")
        dest = config.Destination("duckdb", str(DEMO_WAREHOUSE))
    print("\n".join(status_lines(dest)))
    return config.EXIT_OK


def _day_range(start: Optional[str], end: Optional[str]):
    from sources import windows

    try:
        first = windows.parse_day(start, "START") if start else None
        last = windows.parse_day(end, "END") if end else None
    except windows.WindowError as exc:
        raise config.ConfigError(str(exc)) from None
    if first and last and first > last:
        raise config.ConfigError(f"START={first} is after END={last}; give START <= END")
    return first, last


def cmd_models(args: argparse.Namespace) -> int:
    from pipelines import models

    from pipelines.lock import warehouse_lock

    first, last = _day_range(args.start, args.end)
    dest = config.destination(args.destination)
    with warehouse_lock(dest, "models", args.wait):
        report = models.build(dest, first, last)
    span = f"{first or 'all'}..{last or 'all'}"
    print(f"built {len(report.models)} models; analytics.fct_daily_usage {span}: {report.rows} rows")
    for name in report.empty_views:
        print(f"  {name}: no raw data yet (empty view)")
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    return config.EXIT_FAILED if report.errors else config.EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from pipelines import checks

    dest = config.destination(args.destination)
    providers, _ = config.configured_providers(config.provider_names())
    problems = checks.run_checks(dest, providers)
    for problem in problems:
        print(f"CHECK FAILED {problem}")
    if not problems:
        print(f"all checks passed ({', '.join(providers) or 'no provider configured'})")
    return config.EXIT_FAILED if problems else config.EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo import run_demo

    return run_demo()


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    memory.lean_allocators()
    if argv[:1] == ["bench"]:
        from pipelines import bench

        return bench.main(argv[1:])
    args = _parser().parse_args(argv)
    _setup_logging()
    handler = {
        "nightly": cmd_nightly, "backfill": cmd_backfill, "models": cmd_models, "check": cmd_check,
        "status": cmd_status, "demo": cmd_demo,
    }[args.command]
    try:
        return handler(args)
    except config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return config.EXIT_CONFIG
    except LockBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return config.EXIT_LOCKED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, no traceback, unless asked for
        if os.environ.get("PIPELINES_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return config.EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
