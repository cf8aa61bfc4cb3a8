"""`usage-elt <command>` (the console script) and `python -m pipelines <command>`: the twin of
every Make target, and what schedulers call (their exit codes are the documented ones; `make`
turns every failure into 2)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from pipelines import config, memory, stop, warehouse
from pipelines.lock import LockBusy


def _setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%SZ",
        stream=sys.stderr,
    )
    logging.Formatter.converter = __import__("time").gmtime
    # dlt's own chatter stays at warnings, each one line (its tracebacks only with PIPELINES_DEBUG);
    # our lines say what happened
    dlt_log = logging.getLogger("dlt")
    dlt_log.setLevel(logging.WARNING)
    if not os.environ.get("PIPELINES_DEBUG"):
        dlt_log.addFilter(_first_line_only)
        sys.unraisablehook = _unraisable_logged


def _unraisable_logged(unraisable) -> None:
    """An error Python cannot raise (a file writer's `__del__` closing on a full disk, after the
    run has failed and said why): one debug line, not a traceback on the run's output."""
    logging.getLogger(__name__).debug("ignored while cleaning up %r: %s: %s", unraisable.object,
                                      type(unraisable.exc_value).__name__, unraisable.exc_value)


def _masked_line(exc: BaseException) -> str:
    """An error no step turned into a line of its own, as one line cut at a word, masked like
    every other (it may quote a URL, a header or a key back): masked first, so that a cut
    never leaves part of a secret."""
    from sources.lines import one_line
    from sources.secrets import redact

    return one_line(redact(str(exc)))


def _first_line_only(record: logging.LogRecord) -> bool:
    """A log record reduced to the first line of its message, without its traceback."""
    message = record.getMessage()
    record.msg, record.args = message.splitlines()[0] if message else message, None
    record.exc_info = record.exc_text = None
    return True


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
                         help="wait this long for a running nightly/backfill/models (or a process holding the "
                              "DuckDB file) to finish (default: exit at once)")
        return sub

    def with_providers(sub: argparse.ArgumentParser, *flags: str, default: Optional[str] = None) -> argparse.ArgumentParser:
        sub.add_argument(*flags, "--providers", dest="providers", default=default,
                         help="a provider, provider.account, a comma list, or all (default: every configured one)")
        return sub

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return with_providers(with_wait(with_destination(commands.add_parser(name, help=help))))

    nightly = command("nightly", "incremental load of every configured provider")
    nightly.add_argument("--report", nargs="?", const="", default=None, metavar="PATH",
                         help="after a successful run, write the HTML usage report (default path "
                              "data/report/usage.html; REPORT__AFTER_NIGHTLY=true makes it the default)")
    backfill = with_providers(with_wait(with_destination(commands.add_parser(
        "backfill", help="load an inclusive day range, leave the cursor alone"))), "--provider", default="all")
    backfill.add_argument("--start", required=True, help="first day YYYY-MM-DD")
    backfill.add_argument("--end", required=True, help="last day YYYY-MM-DD (inclusive)")
    command("status", "last runs and each provider's freshest day")
    commands.add_parser("demo", help="simulators + nightly into data/demo/warehouse.duckdb + summary")
    models_cmd = command("models", "rebuild the SQL models, for a day range or all")
    models_cmd.add_argument("--start", default=None, help="first day YYYY-MM-DD (inclusive)")
    models_cmd.add_argument("--end", default=None, help="last day YYYY-MM-DD (inclusive)")
    command("check", "completeness (no missing day) and model tests; non-zero on failure")
    grant = with_wait(with_destination(commands.add_parser(
        "grant-readonly", help="create or update a Postgres role that reads analytics and nothing else")))
    grant.add_argument("role", metavar="ROLE", help="the analysts' role, e.g. analysts")
    commands.add_parser("report", add_help=False,
                        help="one self-contained HTML usage report of the warehouse (report --help)")
    commands.add_parser("bench", add_help=False,
                        help="the pipeline against a bare requests+pyarrow+duckdb loader (bench --help)")
    return parser


def cmd_nightly(args: argparse.Namespace) -> int:
    from pipelines.lock import warehouse_lock
    from pipelines.nightly import chosen, providers_to_run, run_nightly

    providers = chosen(args.providers)
    providers_to_run(providers)  # configuration errors before waiting for the lock
    dest = config.destination(args.destination)
    with warehouse_lock(dest, "nightly", args.wait):
        report = run_nightly(providers, dest=dest)
    print("\n".join(report.lines()))
    if report.exit_code == config.EXIT_OK and _report_after_nightly(args):
        from pipelines.report import DEFAULT_OUT, write_report

        try:
            written = write_report(dest, args.report or DEFAULT_OUT)
        except Exception as exc:  # noqa: BLE001 - the night's data is loaded; only the page failed
            print(f"error: the report was not written: {_masked_line(exc)}", file=sys.stderr)
            return config.EXIT_FAILED
        print(f"report: {written}")
    return report.exit_code


def _report_after_nightly(args: argparse.Namespace) -> bool:
    """`--report`, or `REPORT__AFTER_NIGHTLY=true` (dlt config) so that a scheduled nightly
    publishes a fresh page every morning."""
    import dlt

    if args.report is not None:
        return True
    return str(dlt.config.get("report.after_nightly") or "").strip().lower() in ("1", "true", "yes")


def cmd_backfill(args: argparse.Namespace) -> int:
    from pipelines.backfill import plan, run_backfill
    from pipelines.lock import warehouse_lock
    from pipelines.runs import RunReport

    providers, first, last = plan(args.providers, args.start, args.end)
    dest = config.destination(args.destination)
    with warehouse_lock(dest, "backfill", args.wait):
        report = RunReport("backfill", dest, accounts=providers)
        with report.recorded():
            report.results = run_backfill(providers, first, last, dest, report=report)
            report.finish(check=False)
    print("\n".join(report.lines()))
    return report.exit_code


def _configured(providers: Optional[str]) -> List[str]:
    """The provider accounts a command acts on: those named, each configured, or every
    configured one; none configured is a configuration error, as for every command."""
    from pipelines.nightly import chosen, providers_to_run

    return providers_to_run(chosen(providers))[0]


def _existing(dest: config.Destination) -> config.Destination:
    """A warehouse that commands only read or check must be there: a DuckDB path that does not
    exist is a configuration error, not an empty warehouse made on the spot."""
    from pathlib import Path

    from pipelines.demo import DEMO_WAREHOUSE

    if dest.name == "duckdb" and not Path(dest.location).exists():
        demo = f" (the demo's is {DEMO_WAREHOUSE})" if DEMO_WAREHOUSE.exists() else ""
        raise config.ConfigError(
            f"the DuckDB warehouse {dest.location} does not exist; set DESTINATION__DUCKDB__CREDENTIALS to the "
            f"warehouse's path{demo}, or create it with `make nightly`"
        )
    return dest


def _readable(dest: config.Destination, wait_s: float) -> config.Destination:
    from pipelines.lock import wait_for_duckdb

    if dest.name == "duckdb":
        wait_for_duckdb(_existing(dest), wait_s)
    return dest


def cmd_status(args: argparse.Namespace) -> int:
    from pipelines.runs import status_lines

    providers = config.parse_providers(args.providers) if args.providers else None  # status needs no credentials
    dest = _readable(config.destination(args.destination), args.wait)
    with warehouse.held(dest):
        lines = status_lines(dest, providers=providers)
    print("\n".join(lines))
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
    from pipelines.nightly import chosen

    first, last = _day_range(args.start, args.end)
    providers = _configured(args.providers)
    names = sorted({config.split_label(label)[0] for label in providers}) if chosen(args.providers) else None
    dest = config.destination(args.destination)
    with warehouse_lock(dest, "models", args.wait), warehouse.held(dest):
        # on a thread, free to stop: DuckDB answers a signal in a query with an error of its
        # own, which the model runner would take for a failing model and go on
        report = stop.run_on_threads({"models": lambda: models.build(dest, first, last, providers=names)})["models"]
    span = f" {first or 'the first day'}..{last or 'the last day'}" if first or last else ""
    print(f"built {len(report.models)} models; analytics.fct_daily_usage{span}: {report.rows} rows")
    for provider in _without_raw_data(report):
        print(f"  {provider}: no raw data yet, its staging views are empty; load it with a nightly or a backfill")
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    return config.EXIT_FAILED if report.errors else config.EXIT_OK


def _without_raw_data(report) -> List[str]:
    """The providers none of whose staging views found a raw table: news worth a line. A view
    of an optional table (an endpoint a provider's account does not use) is empty every night
    and is no news."""
    staging: dict = {}
    for name in report.models:
        if name.startswith("stg_") and "__" in name:
            staging.setdefault(name[len("stg_"):].split("__", 1)[0], []).append(name)
    empty = set(report.empty_views)
    return [provider for provider, views in sorted(staging.items()) if empty.issuperset(views)]


def cmd_check(args: argparse.Namespace) -> int:
    from pipelines import checks

    providers = _configured(args.providers)
    dest = _readable(config.destination(args.destination), args.wait)
    with warehouse.held(dest):  # the file open once, waiting for readers' moments
        problems = checks.run_checks(dest, providers)
        warnings, anomalies = checks.run_warnings(dest), checks.new_anomalies(dest)
    for problem in problems:
        print(f"CHECK FAILED {problem}")
    for warning in warnings:
        print(f"CHECK WARNING {warning}")
    for anomaly in anomalies:
        print(f"CHECK ANOMALY {anomaly}")
    if not problems:
        print(f"all checks passed ({', '.join(providers)})")
    return config.EXIT_FAILED if problems else config.EXIT_OK


def cmd_grant_readonly(args: argparse.Namespace) -> int:
    from pipelines import readonly
    from pipelines.lock import warehouse_lock

    dest = config.destination(args.destination)
    role = readonly.check_role(dest, args.role)
    with warehouse_lock(dest, "grant-readonly", args.wait):  # no grant beside a model build's table swap
        created, relations = readonly.grant_readonly(role)
    print("\n".join(readonly.lines(role, created, relations)))
    return config.EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo import run_demo

    return run_demo()


def main(argv: Optional[List[str]] = None) -> int:
    """The command line (`argv`: the process's own when None, the console script's and
    `python -m pipelines`'s case, where a stopped run ends the process itself)."""
    whole_process = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    memory.lean_allocators()
    if argv[:1] == ["bench"]:
        from pipelines import bench

        return bench.main(argv[1:])
    if argv[:1] == ["report"]:
        from pipelines import report

        return report.main(argv[1:])
    args = _parser().parse_args(argv)
    _setup_logging()
    handler = {
        "nightly": cmd_nightly, "backfill": cmd_backfill, "models": cmd_models, "check": cmd_check,
        "status": cmd_status, "demo": cmd_demo, "grant-readonly": cmd_grant_readonly,
    }[args.command]
    with stop.signals_stop_the_run():
        try:
            code = handler(args)
            if stop.requested() is not None:
                return _stopped(stop.requested(), whole_process)  # a library took the signal for an error and went on
            return code
        except config.ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return config.EXIT_CONFIG
        except LockBusy as exc:
            print(f"error: {exc}", file=sys.stderr)
            return config.EXIT_LOCKED
        except KeyboardInterrupt as exc:  # SIGINT, SIGTERM, a lost warehouse lock (`pipelines.stop`)
            return _stopped(exc, whole_process)
        except Exception as exc:  # noqa: BLE001 - one line, no traceback, unless asked for
            if stop.requested() is not None:
                return _stopped(exc, whole_process)  # a library took the signal for an error of its own
            busy = _busy_behind(exc, args)
            if busy is not None:
                print(f"error: {busy}", file=sys.stderr)
                return config.EXIT_LOCKED
            if os.environ.get("PIPELINES_DEBUG"):
                raise
            print(f"error: {type(exc).__name__}: {_masked_line(exc)}", file=sys.stderr)
            return config.EXIT_FAILED


def _stopped(exc: BaseException, whole_process: bool) -> int:
    """One line for a stopped run. The process then ends at once: threads of the run still
    blocked (a request a provider holds, a retry's wait) are not waited for. The run is
    recorded and the lock released by now."""
    stopped = stop.taken(exc)
    print(stopped.line(), file=sys.stderr)
    if whole_process:
        stop.exit_now(stopped.exit_code)
    return stopped.exit_code


def _busy_behind(exc: Exception, args: argparse.Namespace) -> Optional[LockBusy]:
    """A failure whose cause is another process holding the DuckDB file: the busy warehouse."""
    from pipelines.lock import busy_behind

    try:
        dest = config.destination(getattr(args, "destination", None))
    except config.ConfigError:
        return None
    return busy_behind(exc, dest)


if __name__ == "__main__":
    sys.exit(main())
