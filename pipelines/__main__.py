"""`python -m pipelines <command>`: the twin of every Make target."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from pipelines import config


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
    parser = argparse.ArgumentParser(prog="python -m pipelines", description="Usage metrics ELT")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_destination(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--destination", default=None, help="duckdb (default) or postgres; env DESTINATION")
        return sub

    nightly = with_destination(commands.add_parser("nightly", help="incremental load of every configured provider"))
    nightly.add_argument("--providers", default=None, help="comma list, default all configured")
    commands.add_parser("demo", help="simulators + nightly into data/demo.duckdb + summary")
    return parser


def cmd_nightly(args: argparse.Namespace) -> int:
    from pipelines.nightly import run_nightly

    providers = config.parse_providers(args.providers) if args.providers else None
    report = run_nightly(providers, args.destination)
    print("\n".join(report.lines()))
    return report.exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo import run_demo

    return run_demo()


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging()
    handler = {"nightly": cmd_nightly, "demo": cmd_demo}[args.command]
    try:
        return handler(args)
    except config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return config.EXIT_CONFIG
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
