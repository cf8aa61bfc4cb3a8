"""`make bench` / `python -m pipelines bench`: the pipeline against a bare reference, on loopback.

The simulators run in a process of their own (`python -m bench.harness serve`), so what is
measured is only the loading process: its wall time (interpreter start included), its peak
resident memory (from `wait4`) and the requests the simulators answered. Two loaders are
measured over the same complete days (60 of the large set, 20 of the demo-sized one):

- the **baseline**, `bench/baseline.py`: requests + pyarrow + duckdb, the fewest requests, rows
  appended straight into one DuckDB table of the daily fact shape;
- the **pipeline**: `python -m pipelines nightly` on a fresh warehouse with every START_DATE set to
  the first day, i.e. the real sources, dlt pipelines, models, checks and run record; then the
  same command again, the incremental nightly that re-reads the lookback window.

Every request count is compared with the minimum the APIs' rules allow (each provider's own
`min_requests`, see `bench/minimum.py`), and the wall time at a simulated latency with the
longest chain of requests that must run one after another. The full load is repeated at 10x the
Neon and Rafay sizes to show how time and memory grow, and a 20-day nightly on the demo-sized set
(the simulators' defaults, as `make demo` runs them) shows the fixed costs: imports, pipeline
set-up, models, checks and the run record, which a small window cannot hide behind data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import sources
from bench.minimum import Minimum, minimum_requests
from sources import windows

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = sources.names()
DAYS = 60
"""The full load's complete days: Neon's daily history reaches back exactly this far."""
SMALL_WINDOW_DAYS = 20
"""The small-window run's complete days, on the demo-sized set."""

LARGE: Dict[str, Dict[str, Any]] = {
    "neon": {"n_projects": 1000},
    "adverity": {"n_workspaces": 100, "datastreams_per_workspace": 20},
    # history_days spreads the instances' creation over the whole 60 days
    "rafay": {"n_compute_instances": 1000, "n_service_instances": 1000, "history_days": DAYS},
    "bronto": {},
}
"""The "large" set: Neon 1,000 projects x 8 metrics, Adverity 100 workspaces x 20 datastreams,
Rafay 2,000 instances (1,000 compute, 1,000 service) with their profiles, Bronto 3 usage types."""
SCALED = {"neon": ("n_projects",), "rafay": ("n_compute_instances", "n_service_instances")}
"""What grows at 10x: the Neon and Rafay sizes."""

NEON_DOCUMENTED_PER_MINUTE = 30
"""Neon's consumption endpoints: about 30 requests a minute per account (the simulator's bucket)."""
NEON_RAISED_PER_MINUTE = 700
"""The limit simulated at 10x unless `--neon-documented-limit`: Neon's global 700 a minute, as
an account with a raised limit would have; the client's limiter is raised to match."""

def sizes(scale: int, neon_per_minute: float) -> Dict[str, Dict[str, Any]]:
    """Simulator parameters of the large set times `scale` (Neon and Rafay only); scale 0 is
    the demo-sized set, the simulators' own defaults."""
    if scale == 0:
        return {}
    out = {provider: dict(values) for provider, values in LARGE.items()}
    for provider, names in SCALED.items():
        for name in names:
            out[provider][name] *= scale
    out["neon"].update(rate_per_minute=neon_per_minute, burst=neon_per_minute)
    return out


def last_days(n_days: int, now: Optional[dt.datetime] = None) -> windows.Window:
    """The last `n_days` complete days."""
    last = windows.last_complete_day(now)
    return windows.Window(last - dt.timedelta(days=n_days - 1), last)


# -- the simulators' process ---------------------------------------------------------------------
def serve(scale: int, latency_ms: float, neon_per_minute: float) -> None:
    """Run the four simulators; print their settings as one JSON line, then answer commands on
    stdin, one JSON line each: `minimum FIRST LAST`, `counts`, `reset`, `quit`."""
    from simulators import start_all

    keys = {provider: f"bench-{provider}-{secrets.token_hex(8)}" for provider in PROVIDERS}
    sims = start_all(keys, seed=1, sizes=sizes(scale, neon_per_minute), latency_ms=latency_ms)
    settings: Dict[str, str] = {}
    for sim in sims.values():
        settings.update(sim.source_env())
    print(json.dumps({"env": settings}), flush=True)
    for line in sys.stdin:
        command, *words = line.split()
        if command == "minimum":
            first, last = (dt.date.fromisoformat(word) for word in words)
            answer: Any = {p: vars(m) for p, m in minimum_requests(sims, first, last).items()}
        elif command == "counts":
            answer = {provider: len(sim.requests) for provider, sim in sims.items()}
        elif command == "reset":
            for sim in sims.values():
                sim.reset_log()
            answer = "ok"
        else:
            break
        print(json.dumps(answer), flush=True)
    for sim in sims.values():
        sim.stop()


class Simulators:
    """The simulators' process, seen from the bench."""

    def __init__(self, scale: int, latency_ms: float, neon_per_minute: float):
        self.neon_per_minute = neon_per_minute
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.harness", "serve", str(scale), str(latency_ms), str(neon_per_minute)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        self.env: Dict[str, str] = self._read()["env"]

    def _read(self) -> Any:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the simulators' process ended unexpectedly")
        return json.loads(line)

    def ask(self, command: str) -> Any:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read()

    def minimum(self, window: windows.Window) -> Dict[str, Minimum]:
        return {p: Minimum(**m) for p, m in self.ask(f"minimum {window.first} {window.last}").items()}

    def take_counts(self) -> Dict[str, int]:
        """Requests answered since the last call."""
        counts = self.ask("counts")
        self.ask("reset")
        return counts

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
            self.process.wait(timeout=30)


# -- measured runs --------------------------------------------------------------------------------
@dataclass
class Run:
    """One measured process."""

    label: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    rows: int
    requests: Dict[str, int]
    minimum: Dict[str, Minimum]
    exit_code: int = 0
    output: str = ""
    readable: Optional[Tuple[int, int]] = None
    """(read-only connections opened, tried) while the run held or could have held the file."""

    @property
    def readable_share(self) -> Optional[float]:
        return self.readable[0] / self.readable[1] if self.readable and self.readable[1] else None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def minimal(self) -> bool:
        return all(self.requests.get(p, 0) == m.requests for p, m in self.minimum.items())


def measure(command: List[str], env: Dict[str, str], log_path: Path) -> Tuple[float, float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS in MB, exit code, output) of one child process."""
    with open(log_path, "w") as log:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss / 1024.0, process.returncode, log_path.read_text()


class ReadOnlyProbe:
    """An analyst trying to open the warehouse read-only every `every_s` while a run goes on,
    from the moment its file exists: DuckDB lets a process read only while none writes."""

    def __init__(self, database: Path, every_s: float = 0.05):
        import threading

        self.database, self.every_s = database, every_s
        self.opened = self.tried = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="read-only-probe", daemon=True)

    def __enter__(self) -> "ReadOnlyProbe":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        import duckdb

        while not self._done.wait(self.every_s):
            if not self.database.exists():
                continue
            self.tried += 1
            try:
                with duckdb.connect(str(self.database), read_only=True) as con:
                    con.execute("select 1").fetchone()
                self.opened += 1
            except duckdb.Error:
                pass


def clean_env(extra: Dict[str, str]) -> Dict[str, str]:
    """This process's environment without provider or warehouse settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOURCES__", "DESTINATION__")) and k not in ("DESTINATION", "USAGE_NOW", "DLT_DATA_DIR")}
    env.update({"RUNTIME__DLTHUB_TELEMETRY": "false", "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def count_rows(database: Path, table: str, since: Optional[dt.date] = None) -> int:
    import duckdb

    where = f" where usage_date >= date '{since.isoformat()}'" if since else ""
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(f"select count(*) from {table}{where}").fetchone()[0]


def run_baseline(sims: Simulators, window: windows.Window, folder: Path, minimum: Dict[str, Minimum]) -> Run:
    database = folder / "baseline.duckdb"
    env = clean_env({**sims.env, "BENCH_NEON_RATE_PER_MINUTE": str(sims.neon_per_minute)})
    command = [sys.executable, str(ROOT / "bench" / "baseline.py"), "--first", str(window.first),
               "--last", str(window.last), "--database", str(database)]
    seconds, cpu, rss, code, output = measure(command, env, folder / "baseline.log")
    requests = sims.take_counts()
    rows = count_rows(database, "daily_usage") if code == 0 else 0
    return Run("baseline", seconds, cpu, rss, rows, requests, minimum, code, output)


def bench_pricing(folder: Path) -> Dict[str, str]:
    """A rate card pricing every metric and the example's ownership rules, so that the runs
    build the cost marts (fct_daily_cost, focus, budget_status, anomalies' impact) as a priced
    warehouse does: the shipped templates with each row in use and an illustrative 0.01 USD per
    pricing unit (no vendor's price)."""
    def in_use(template: str, target: Path, price: bool) -> Path:
        lines = []
        for line in (ROOT / "pricing" / template).read_text().splitlines():
            if line.startswith("# ") and line[2:].split(",", 1)[0] in PROVIDERS:
                line = line[2:].replace("<price>", "0.01").replace(",EUR,", ",USD,") if price else line[2:]
            lines.append(line)
        target.write_text("\n".join(lines) + "\n")
        return target

    return {"PRICING__RATE_CARD": str(in_use("rate_card.example.csv", folder / "rate_card.csv", True)),
            "PRICING__OWNERS": str(in_use("owners.example.csv", folder / "owners.csv", False))}


def run_pipeline(label: str, sims: Simulators, window: windows.Window, folder: Path,
                 minimum: Dict[str, Minimum], since: Optional[dt.date] = None, command: str = "nightly") -> Run:
    """`python -m pipelines nightly` (or `models`, every day rebuilt) on the warehouse in
    `folder` (fresh on the first call), priced (`bench_pricing`)."""
    database = folder / "warehouse.duckdb"
    env = clean_env({
        **bench_pricing(folder),
        **sims.env,
        **{provider.setting("start_date"): str(window.first) for provider in sources.providers().values()},
        sources.get("neon").setting("rate_per_minute"): str(_client_rate(sims.neon_per_minute)),
        "DESTINATION": "duckdb",
        "DESTINATION__DUCKDB__CREDENTIALS": str(database),
        "DLT_DATA_DIR": str(folder / "dlt"),
    })
    command = [sys.executable, "-m", "pipelines", command, "--destination", "duckdb"]
    with ReadOnlyProbe(database) as probe:
        seconds, cpu, rss, code, output = measure(command, env, folder / f"{label.replace(' ', '_')}.log")
    requests = sims.take_counts()
    rows = count_rows(database, "analytics.fct_daily_usage", since) if code == 0 else 0
    return Run(label, seconds, cpu, rss, rows, requests, minimum, code, output, readable=(probe.opened, probe.tried))


def _client_rate(api_per_minute: float) -> int:
    """The pipeline's own Neon pace: its default (under the documented 30 a minute), or just
    under a raised limit."""
    from sources.neon import settings

    if api_per_minute <= NEON_DOCUMENTED_PER_MINUTE:
        return settings.CLIENT_RATE_PER_MINUTE
    return int(api_per_minute * settings.CLIENT_RATE_PER_MINUTE / NEON_DOCUMENTED_PER_MINUTE)


# -- the report -----------------------------------------------------------------------------------
@dataclass
class Phase:
    """The runs of one data set at one latency."""

    scale: int
    latency_ms: float
    window: windows.Window
    neon_per_minute: float
    minimum: Dict[str, Minimum] = field(default_factory=dict)
    runs: Dict[str, Run] = field(default_factory=dict)

    @property
    def data_set(self) -> str:
        return {0: "demo-sized", 1: "large"}.get(self.scale, f"{self.scale}x large (Neon and Rafay)")

    @property
    def title(self) -> str:
        return f"{self.data_set}, {self.window.first}..{self.window.last}, latency {self.latency_ms:g} ms"

    def chain(self) -> Tuple[str, int, float]:
        """(provider, requests, seconds) of the longest chain of requests one after another."""
        best = ("", 0, 0.0)
        for provider, minimum in self.minimum.items():
            seconds = minimum.chain_seconds(self.latency_ms / 1000)
            if seconds > best[2]:
                best = (provider, minimum.chain, seconds)
        return best


def table(phase: Phase) -> List[str]:
    head = f"{'run':<16}{'wall s':>8}{'CPU s':>7}{'rows':>11}{'rows/s':>10}{'peak RSS MB':>13}  " + "  ".join(
        f"{p + ' req/min':>16}" for p in PROVIDERS)
    lines = [phase.title, head]
    for run in phase.runs.values():
        requests = "  ".join(f"{f'{run.requests.get(p, 0)}/{run.minimum[p].requests}':>16}" for p in PROVIDERS)
        status = "" if run.exit_code == 0 else f"   FAILED (exit {run.exit_code})"
        lines.append(f"{run.label:<16}{run.seconds:>8.1f}{run.cpu_seconds:>7.1f}{run.rows:>11,}{run.rows_per_s:>10,.0f}{run.peak_rss_mb:>13.0f}  "
                     f"{requests}{status}")
    base, pipe = phase.runs.get("baseline"), phase.runs.get("pipeline")
    if base and pipe and base.seconds and base.rows_per_s and base.peak_rss_mb:
        lines.append(f"{'pipeline/base':<16}{pipe.seconds / base.seconds:>7.2f}x{pipe.cpu_seconds / base.cpu_seconds:>6.2f}x{'':>11}"
                     f"{pipe.rows_per_s / base.rows_per_s:>9.2f}x{pipe.peak_rss_mb / base.peak_rss_mb:>12.2f}x")
    shares = [f"{run.label} {run.readable_share:.0%} of {run.readable[1]:,} tries" for run in phase.runs.values()
              if run.readable_share is not None]
    if shares:
        lines.append("read-only connections opened while it ran (an analyst every 50 ms): " + "; ".join(shares))
    if phase.latency_ms:
        provider, chain, seconds = phase.chain()
        lines.append(f"longest chain: {provider}, {chain} requests one after another = {seconds:.1f} s at "
                     f"{phase.latency_ms:g} ms" + (f"; pipeline {pipe.seconds / seconds:.2f}x" if pipe and seconds else ""))
    return lines


def targets(phases: Sequence[Phase]) -> List[str]:
    """Each target of the performance issue with its measured value and met / MISSED."""
    lines = ["targets"]

    def line(text: str, ok: bool) -> None:
        lines.append(f"  {'met   ' if ok else 'MISSED'}  {text}")

    # a run that failed measured a load that did not finish: no time or memory target it is in is met
    failed = [f"{phase.data_set} {run.label}" for phase in phases for run in phase.runs.values() if run.exit_code != 0]
    line("every run succeeds" + (f" (failed: {'; '.join(failed)})" if failed else ""), not failed)

    def finished(*runs: Optional[Run]) -> bool:
        return all(run is not None and run.exit_code == 0 for run in runs)

    # the pipeline's runs: the baseline is a reference, and stops Neon's paging on a short page
    runs = [(phase, run) for phase in phases for run in phase.runs.values() if run.label != "baseline"]
    extra = [f"{phase.data_set} {run.label} {p} {run.requests.get(p, 0)}/{m.requests}" for phase, run in runs
             for p, m in run.minimum.items() if run.requests.get(p, 0) != m.requests]
    line("requests == minimum, every provider, full loads and nightlies" + (f" ({'; '.join(extra)})" if extra else ""),
         not extra)
    large = [phase for phase in phases if phase.scale == 1]
    for phase in large:
        pipe, base = phase.runs.get("pipeline"), phase.runs.get("baseline")
        if pipe is None:
            continue
        if phase.latency_ms == 0 and base is not None:
            ratio = pipe.seconds / base.seconds
            line(f"wall at 0 ms <= 1.5x baseline: {pipe.seconds:.1f} s / {base.seconds:.1f} s = {ratio:.2f}x",
                 ratio <= 1.5 and finished(pipe, base))
        if phase.latency_ms:
            provider, chain, seconds = phase.chain()
            ratio = pipe.seconds / seconds
            line(f"wall at {phase.latency_ms:g} ms <= 1.2x longest chain ({provider} {chain} x {phase.latency_ms:g} ms "
                 f"= {seconds:.1f} s): {pipe.seconds:.1f} s = {ratio:.2f}x", ratio <= 1.2 and finished(pipe))
        if phase.latency_ms == 50:
            for run in (phase.runs.get("pipeline"), phase.runs.get("nightly")):
                if run is not None and run.readable_share is not None:
                    line(f"warehouse readable at 50 ms >= 90 % of the {run.label}'s wall time: {run.readable_share:.0%} "
                         f"({run.readable[0]:,} of {run.readable[1]:,} read-only connections opened)",
                         run.readable_share >= 0.9 and finished(run))
    large_runs = [phase.runs["pipeline"] for phase in large if "pipeline" in phase.runs]
    if large_runs:
        peak = max(run.peak_rss_mb for run in large_runs)
        line(f"peak RSS <= 400 MB (large): {peak:.0f} MB", peak <= 400 and finished(*large_runs))
    ones = {phase.latency_ms: phase for phase in large}
    for phase in phases:
        if phase.scale <= 1 or "pipeline" not in phase.runs or phase.latency_ms not in ones:
            continue
        one = ones[phase.latency_ms].runs.get("pipeline")
        big = phase.runs["pipeline"]
        if one is None:
            continue
        rss, growth = big.peak_rss_mb / one.peak_rss_mb, big.seconds / one.seconds
        line(f"peak RSS at {phase.scale}x <= 1.2x large: {big.peak_rss_mb:.0f} MB = {rss:.2f}x", rss <= 1.2 and finished(one, big))
        line(f"time at {phase.scale}x <= {phase.scale + 1}x time at 1x ({phase.latency_ms:g} ms): "
             f"{big.seconds:.1f} s / {one.seconds:.1f} s = {growth:.1f}x", growth <= phase.scale + 1 and finished(one, big))
    for phase in phases:
        pipe, base = phase.runs.get("pipeline"), phase.runs.get("baseline")
        if phase.scale == 0 and pipe is not None and base is not None and base.seconds:
            ratio = pipe.seconds / base.seconds
            line(f"small window ({phase.window.n_days} days, demo-sized) wall <= 1.5x baseline: "
                 f"{pipe.seconds:.1f} s / {base.seconds:.1f} s = {ratio:.2f}x", ratio <= 1.5 and finished(pipe, base))
    return lines


# -- the command ----------------------------------------------------------------------------------
def _latencies(text: str) -> List[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m pipelines bench", description=__doc__.split("\n")[0])
    cli.add_argument("--latencies", default="0,50", metavar="MS,MS",
                     help="simulated latencies per request for the large set (default 0,50)")
    cli.add_argument("--scale", type=int, default=10, help="the growth run's multiple of the Neon and Rafay sizes (default 10)")
    cli.add_argument("--scale-latencies", default="0", metavar="MS,MS",
                     help="latencies of the growth run (default 0; empty skips it)")
    cli.add_argument("--scale-baseline", action="store_true", help="also run the baseline in the growth run")
    cli.add_argument("--neon-documented-limit", action="store_true",
                     help=f"keep Neon's {NEON_DOCUMENTED_PER_MINUTE} requests/minute in the growth run too "
                          f"(default: raised to {NEON_RAISED_PER_MINUTE}, see README)")
    cli.add_argument("--no-nightly", action="store_true", help="skip the incremental nightly after each full load")
    cli.add_argument("--small-window-days", type=int, default=SMALL_WINDOW_DAYS, metavar="DAYS",
                     help=f"days of the small-window nightly on the demo-sized set (default {SMALL_WINDOW_DAYS}; 0 skips it)")
    cli.add_argument("--work-dir", default="data/bench", help="warehouses, dlt folders and logs (default data/bench)")
    cli.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    return cli


def run_phase(scale: int, latency_ms: float, neon_per_minute: float, folder: Path, with_baseline: bool,
              with_nightly: bool, n_days: int = DAYS) -> Phase:
    window = last_days(n_days)
    phase = Phase(scale, latency_ms, window, neon_per_minute)
    print(f"... {phase.title}", file=sys.stderr, flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sims = Simulators(scale, latency_ms, neon_per_minute)
    try:
        # computing the minimum also warms the simulators' caches, so neither loader pays for it
        phase.minimum = sims.minimum(window)
        nightly_window = windows.Window(window.last - dt.timedelta(days=2), window.last)
        if with_baseline:
            phase.runs["baseline"] = run_baseline(sims, window, folder, phase.minimum)
            _say(phase.runs["baseline"])
        phase.runs["pipeline"] = run_pipeline("pipeline", sims, window, folder, phase.minimum)
        _say(phase.runs["pipeline"])
        if with_nightly and phase.runs["pipeline"].exit_code == 0:
            nightly_minimum = sims.minimum(nightly_window)
            run = run_pipeline("nightly", sims, window, folder, nightly_minimum, since=nightly_window.first)
            phase.runs["nightly"] = run
            _say(run)
        if with_nightly and phase.runs["pipeline"].exit_code == 0:
            # the models alone, every day rebuilt with its prices: their share of a full load
            run = run_pipeline("models (all)", sims, window, folder, {p: Minimum(0, 0) for p in phase.minimum},
                               command="models")
            phase.runs["models (all)"] = run
            _say(run)
    finally:
        sims.close()
    return phase


def _say(run: Run) -> None:
    print(f"    {run.label}: {run.seconds:.1f} s, exit {run.exit_code}", file=sys.stderr, flush=True)
    if run.exit_code != 0:
        print(run.output[-3000:], file=sys.stderr, flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    work = Path(args.work_dir)
    started = time.monotonic()
    phases: List[Phase] = []
    for latency in _latencies(args.latencies):
        phases.append(run_phase(1, latency, NEON_DOCUMENTED_PER_MINUTE, work / f"large-{latency:g}ms", True,
                                not args.no_nightly))
    neon_scaled = NEON_DOCUMENTED_PER_MINUTE if args.neon_documented_limit else NEON_RAISED_PER_MINUTE
    for latency in _latencies(args.scale_latencies):
        phases.append(run_phase(args.scale, latency, neon_scaled, work / f"x{args.scale}-{latency:g}ms",
                                args.scale_baseline, False))
    if args.small_window_days:
        phases.append(run_phase(0, 0, NEON_DOCUMENTED_PER_MINUTE, work / f"demo-{args.small_window_days}d", True, False,
                                n_days=args.small_window_days))
    print()
    print(f"bench {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}; requests shown as sent/minimum")
    for phase in phases:
        print()
        print("\n".join(table(phase)))
        if phase.scale > 1:
            limit = phase.neon_per_minute
            print(f"(Neon's simulated limit in this run: {limit:g} requests/minute"
                  f"{'' if limit == NEON_DOCUMENTED_PER_MINUTE else ', raised from the documented 30'})")
    print()
    print("\n".join(targets(phases)))
    print(f"\nbench took {time.monotonic() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps([_as_dict(phase) for phase in phases], indent=2, default=str))
    failed = [run for phase in phases for run in phase.runs.values() if run.exit_code != 0]
    return 1 if failed else 0


def _as_dict(phase: Phase) -> Dict[str, Any]:
    return {
        "data_set": phase.data_set, "scale": phase.scale, "latency_ms": phase.latency_ms, "first": str(phase.window.first),
        "last": str(phase.window.last), "neon_per_minute": phase.neon_per_minute,
        "runs": {label: {"seconds": run.seconds, "cpu_seconds": run.cpu_seconds, "peak_rss_mb": run.peak_rss_mb, "rows": run.rows,
                         "requests": run.requests, "minimum": {p: m.requests for p, m in run.minimum.items()},
                         "exit_code": run.exit_code, "readable_share": run.readable_share}
                 for label, run in phase.runs.items()},
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
    else:
        raise SystemExit(main(sys.argv[1:]))
