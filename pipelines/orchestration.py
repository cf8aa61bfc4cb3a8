"""Dagster definitions (the optional `[dagster]` extra): the loads as daily-partitioned assets.

One asset per configured provider account, named after its raw dataset (`raw_neon`,
`raw_neon_eu`) and partitioned by UTC day from the account's START_DATE. Materializing a range
of its days is a backfill of those days (every incremental gets an `end_value`: the nightly
cursor stays where it is); the account's daily schedule runs the nightly path instead (from
the saved cursor, the lookback days read again) and materializes the lookback days and
yesterday. Downstream, `analytics` rebuilds the SQL models for the days the loads changed, and
its asset checks are `usage-elt check`'s: completeness, every model's own tests (its grain
unique and not null), the reconciliations across models.

Each account has a job of its own, which also builds `analytics` (the accounts start on
different days, and Dagster's jobs share one partitions definition): a failing provider fails
its own run, never another account's. Every run is tagged with its warehouse
(`usage-elt/warehouse`), so that the instance's run queue (`deploy/dagster/dagster.yaml`) lets
one run per warehouse go at a time; and a run holds the warehouse lock (`pipelines.lock`) from
its first step to its last, so a Dagster run and a `usage-elt nightly` from cron never overlap
either: the one that comes second waits `wait_seconds` (the resource's setting) or fails with
the busy message.

The loads are `pipelines.load.load_provider`'s: dlt's working folder (its pending packages and
state) is kept between runs, so a load that crashed is finished by the next run, as under cron.

`make dagster` shows them in Dagster's UI. Settings are the project's usual ones (env vars,
`.dlt/`), read when the definitions load.
"""

import contextlib
import datetime as dt
import os
import warnings
from typing import Dict, Iterator, List, Optional, Sequence

import dagster as dg
from pydantic import PrivateAttr

from pipelines import checks, completeness, config, drift, models, stop, warehouse
from pipelines.backfill import run_backfill, servable_range
from pipelines.load import LoadResult
from pipelines.lock import LockBusy, warehouse_lock
from pipelines.nightly import load_side_by_side
from pipelines.runs import RunReport, record
from sources import windows
from sources.secrets import without_password

WAREHOUSE_TAG = "usage-elt/warehouse"
"""Names the warehouse a run writes; the run queue lets one run per value go at a time."""
PATH_TAG = "usage-elt/path"
"""`nightly` on the schedule's runs: the load starts from the saved cursor, not at the range."""
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
NIGHTLY_CRON = "0 3 * * *"
"""When the nightly schedules run (UTC): yesterday is complete, and late data has come in."""
ANALYTICS = dg.AssetKey("analytics")


class Warehouse(dg.ConfigurableResource):
    """The warehouse (`DESTINATION` and its credentials, as for every command), held for the
    whole run: the warehouse lock is taken when the run starts and released when it ends."""

    wait_seconds: float = 0.0
    """How long a run waits for another run of the warehouse (a cron nightly) to finish."""

    _dest: Optional[config.Destination] = PrivateAttr(default=None)
    _refused: Optional[str] = PrivateAttr(default=None)

    @contextlib.contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator["Warehouse"]:
        job = context.dagster_run.job_name if context.dagster_run else "run"
        stop.reset()  # this run's stop only: a stop of an earlier run in this process is over
        with contextlib.ExitStack() as held:
            try:
                dest = config.destination()
                held.enter_context(warehouse_lock(dest, f"dagster:{job}", self.wait_seconds))
                self._dest = dest
            except (config.ConfigError, LockBusy) as exc:
                self._refused = str(exc)  # each step fails with the one line, and nothing runs
            yield self

    @property
    def dest(self) -> config.Destination:
        """The warehouse this run holds; a step of a run refused it fails with the reason."""
        if self._dest is None:
            raise dg.Failure(description=self._refused or "the warehouse was not resolved for this run")
        return self._dest


def warehouse_tag() -> str:
    """The run tag of the warehouse the settings name, from the settings alone (the
    definitions load without connecting to it): its kind and a digest of its identity."""
    name = (os.environ.get("DESTINATION") or "duckdb").strip().lower()
    if name == "postgres":
        location = without_password(config.postgres_url())
    else:
        location = str(dlt_setting("destination.duckdb.credentials") or config.DEFAULT_DUCKDB_PATH)
    return os.path.basename(config.Destination(name, location).pipelines_dir)  # e.g. duckdb-<digest of its identity>


def dlt_setting(key: str) -> Optional[object]:
    import dlt

    return dlt.config.get(key) or dlt.secrets.get(key)


class _LoadReport(RunReport):
    """One account's load, recorded in `analytics.load_runs` like a command's, with the days
    read noted (`load_coverage`) and, on the nightly path, missing days read again; the models
    and checks are the `analytics` asset's."""

    def finish_load(self, repair: bool) -> None:
        with warehouse.held(self.destination):  # DuckDB: the file held for these steps only
            self._finish_load(repair)

    def _finish_load(self, repair: bool) -> None:
        self._enter("coverage")
        self._record_coverage(self.results)
        if repair:
            self._enter("repair")
            self._repair(*completeness.expectations([r.provider for r in self.results]))
        self._enter("record")
        drift.compare_and_keep(self.destination, self.results)
        record(self.destination, self.run_id, self.command, self.started_at, self.results)
        self._recorded = True


def load_metadata(result: LoadResult, report: RunReport) -> Dict[str, object]:
    """What a materialization of an account shows: rows, days, requests, and its load_runs row."""
    return {
        "status": result.status,
        "rows": result.rows,
        "days": len(result.days),
        "first_day": str(result.first_day or "-"),
        "last_day": str(result.last_day or "-"),
        "requests": result.requests,
        "seconds": round(result.seconds, 1),
        "path": report.command,
        "load_runs.run_id": report.run_id,
    }


def account_asset(label: str, start: dt.date) -> dg.AssetsDefinition:
    """The account's raw dataset, one partition per UTC day from `start` through yesterday."""
    partitions = dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # single-run backfills: beta, and what a range needs
        return _account_asset(label, start, partitions)


def _account_asset(label: str, start: dt.date, partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=config.dataset_of(label),
        group_name="raw",
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),  # a range is one backfill, chunked to the API's limits
        kinds={"dlt"},
        description=f"{label}'s daily usage, loaded with dlt into the warehouse's {config.dataset_of(label)} dataset",
    )
    def load(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        span = context.partition_key_range
        first, last = dt.date.fromisoformat(span.start), dt.date.fromisoformat(span.end)
        nightly = context.run.tags.get(PATH_TAG) == "nightly"
        dest = warehouse.dest
        if not nightly:
            try:
                servable_range(label, first, last)
            except config.ConfigError as exc:
                raise dg.Failure(description=str(exc)) from None
        report = _LoadReport("nightly" if nightly else "backfill", dest, accounts=[label])
        with report.recorded():
            if nightly:
                report.results = load_side_by_side([label], dest, report)
            else:
                report.results = run_backfill([label], first, last, dest, report=report)
            report.finish_load(repair=nightly)
        for line in report.lines():
            context.log.info(line)
        if report.late_failure:  # a step after the load (coverage, repair, the record) failed: said, recorded
            raise dg.Failure(description=report.late_failure)
        result = report.results[0]
        metadata = load_metadata(result, report)
        if result.status != "ok":
            raise dg.Failure(description=result.error, metadata=metadata)
        for day in sorted(day for day in result.days if start <= day < first):  # a nightly catching up on an outage
            context.log_event(dg.AssetMaterialization(asset_key=context.asset_key, partition=day.isoformat(),
                                                      metadata={"path": report.command, "load_runs.run_id": report.run_id}))
        return dg.MaterializeResult(metadata=metadata)

    return load


def analytics_asset(labels: Sequence[str]) -> dg.AssetsDefinition:
    @dg.asset(
        key=ANALYTICS,
        group_name="analytics",
        deps=[dg.AssetKey(config.dataset_of(label)) for label in labels],
        kinds={"sql"},
        description="The SQL models (analytics.fct_daily_usage and the tables beside it), rebuilt for every day "
                    "a raw load not modelled yet changed",
    )
    def analytics(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        dest = warehouse.dest
        built = stop.run_on_threads({"models": lambda: models.build_pending(dest)})["models"]
        metadata = {
            "models": len(built.models),
            "rows": built.rows,
            "first_day": str(built.start or "-"),
            "last_day": str(built.end or "-"),
            "rebuilt": ", ".join(f"{provider} {first}..{last}" for provider, (first, last) in sorted(built.built.items()))
                       or "no day needed rebuilding",
        }
        if built.errors:
            raise dg.Failure(description="; ".join(built.errors), metadata=metadata)
        return dg.MaterializeResult(metadata=metadata)

    return analytics


CHECKS = {
    "completeness": "every day of every account since its start through yesterday read from the API and in the facts",
    "grain": "each model's own tests: its grain unique and not null, its keys, sane quantities",
    "reconciliation": "the checks across models (sql/checks): Rafay's profiles against their instances, prices",
}


def analytics_checks(labels: Sequence[str]) -> dg.AssetChecksDefinition:
    """`usage-elt check`'s checks on the warehouse, after each build of `analytics`."""

    @dg.multi_asset_check(specs=[dg.AssetCheckSpec(name, asset=ANALYTICS, description=text) for name, text in CHECKS.items()])
    def usage_checks(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> Iterator[dg.AssetCheckResult]:
        dest = warehouse.dest
        found = {
            "completeness": checks.completeness_problems(dest, labels),
            "grain": checks.model_tests(dest),
            "reconciliation": checks.reconciliation(dest),
        }
        for name, problems in found.items():
            for problem in problems:
                context.log.warning(f"CHECK FAILED {problem}")
            yield dg.AssetCheckResult(check_name=name, asset_key=ANALYTICS, passed=not problems,
                                      description="; ".join(problems)[:2000] or None,
                                      metadata={"problems": len(problems)})

    return usage_checks


def nightly_days(start: dt.date, lookback: int, now: dt.datetime) -> windows.Window:
    """The days a nightly run at `now` materializes: the lookback days and yesterday."""
    last = windows.last_complete_day(now)
    return windows.Window(max(start, last - dt.timedelta(days=lookback)), last)


def account_schedule(label: str, start: dt.date, job) -> dg.ScheduleDefinition:
    lookback = config.check_provider(label).lookback_days

    @dg.schedule(name=f"nightly_{config.dataset_of(label)}", job=job, cron_schedule=NIGHTLY_CRON,
                 execution_timezone="UTC", description=f"{label}'s nightly load (from its cursor), then the models and checks")
    def nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        days = nightly_days(start, lookback, context.scheduled_execution_time or windows.utc_now())
        return dg.RunRequest(tags={PATH_TAG: "nightly", RANGE_START: days.first.isoformat(), RANGE_END: days.last.isoformat()})

    return nightly


def account_start(label: str) -> dt.date:
    """The first partition: START_DATE, else the first day a first nightly run loads."""
    return config.check_provider(label).start_date or windows.default_start_date()


def build_definitions(labels: Optional[Sequence[str]] = None) -> dg.Definitions:
    """The definitions for these account labels, by default every configured one."""
    labels = list(labels) if labels is not None else config.configured_providers(config.provider_names())[0]
    tags = {WAREHOUSE_TAG: warehouse_tag()}
    assets: List[dg.AssetsDefinition] = [analytics_asset(labels)]
    jobs, schedules = [], []
    for label in labels:
        start = account_start(label)
        asset = account_asset(label, start)
        assets.append(asset)
        job = dg.define_asset_job(f"load_{asset.key.path[-1]}", selection=dg.AssetSelection.assets(asset, ANALYTICS),
                                  partitions_def=asset.partitions_def, executor_def=dg.in_process_executor, tags=tags,
                                  description=f"{label}: its days, then the models and checks")
        jobs.append(job)
        schedules.append(account_schedule(label, start, job))
    jobs.append(dg.define_asset_job("models", selection=dg.AssetSelection.assets(ANALYTICS),
                                    executor_def=dg.in_process_executor, tags=tags,
                                    description="the models for every day not modelled yet, then the checks"))
    return dg.Definitions(assets=assets, asset_checks=[analytics_checks(labels)], jobs=jobs, schedules=schedules,
                          resources={"warehouse": Warehouse()})


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
