"""SIGTERM and SIGINT, as a scheduler or a person sends them, at every step of a run.

Each test runs the real command in a subprocess against the simulators over HTTP and sends the
signal at a chosen moment: while the simulator holds a request (mid-extract), between two
backfill windows, or from a dlt tracking hook as a step starts (normalize, load), while load jobs
run, or while the models are built. Then: the command ends within seconds with 130 (SIGINT) or
143 (SIGTERM) and one line on stderr, no traceback; no further window, provider or request
started; every provider account of the run has its `load_runs` row saying `interrupted`; and the
next nightly completes or discards what was left and ends equal to the simulators' truth.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

from pipelines import config
from simulators.base import Fault, Simulator
from tests.conftest import query, yesterday
from tests.providers import case
from tests.test_faults import SMALL
from tests.test_faults_cli import CRASH_HARNESS, assert_state_consistent, models_equal_truth, raw_equals_truth

ROOT = Path(__file__).resolve().parent.parent
PATIENT_RETRIES = {
    # a held request stays held until the test lets it go: no timeout, no retry in between
    "RUNTIME__REQUEST_TIMEOUT": "120",
    "RUNTIME__REQUEST_MAX_ATTEMPTS": "2",
    "RUNTIME__REQUEST_BACKOFF_FACTOR": "0.05",
    "RUNTIME__REQUEST_MAX_RETRY_DELAY": "1",
}
PROMPT_S = 8.0
"""The most a stopped run may take from the signal to its exit: the threads' grace (3 s) and
the recording, with room for a loaded machine."""
THEN = "then the next nightly equal to the ground truth"
"""What a test of a stopped run checks last."""
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO ")

KILL = "def die():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
SIGNAL = '''sent = []


def die():
    # instead of the kill, the signal a scheduler sends, once: the process gets it from outside the step
    if not sent:
        sent.append(moment)
        print(f"SIGNAL SENT {moment}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), int(os.environ["SIGNAL_TO_SEND"]))
'''
ENTRY = "from pipelines.__main__ import main\n\nsys.exit(main(sys.argv[3:]))\n"
IN_MODELS_AND_AS_THE_CONSOLE_SCRIPT = r'''
if moment in ("models", "models-query"):
    import threading

    from pipelines import models

    build_provider = models._build_provider

    def signalled_build(client, *args, **kwargs):
        if moment == "models-query":
            # the signal comes while the database runs a query; DuckDB answers it with an error
            # of its own, which a model build takes for a failing model and goes on
            threading.Timer(0.3, die).start()
            try:
                client.execute_sql("select count(*) from range(20000000000) a")
            except Exception:
                pass
        else:
            die()
        return build_provider(client, *args, **kwargs)

    models._build_provider = signalled_build

from pipelines.__main__ import main

sys.argv = ["usage-elt", *sys.argv[3:]]
sys.exit(main())  # as the console script runs it: the command is the whole process
'''
assert KILL in CRASH_HARNESS and ENTRY in CRASH_HARNESS
SIGNAL_HARNESS = CRASH_HARNESS.replace(KILL, SIGNAL).replace(ENTRY, IN_MODELS_AND_AS_THE_CONSOLE_SCRIPT)
"""The SIGKILL harness of tests/test_faults_cli.py (a dlt tracking hook as a step starts; a load
job's SQL run but not yet recorded), sending `SIGNAL_TO_SEND` instead, and in the models too."""


class Running:
    """A command in a subprocess, its output read as it comes."""

    def __init__(self, *args: str, harness: Sequence[str] = ()):
        command = [sys.executable, "-c", SIGNAL_HARNESS, *harness] if harness else [sys.executable, "-m", "pipelines"]
        self.process = subprocess.Popen([*command, *args], cwd=ROOT, env=dict(os.environ), text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out: List[str] = []
        self.err: List[str] = []
        self.signalled_at: Optional[float] = None
        self.readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                        for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: List[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.err):
            assert self.process.poll() is None, f"ended before {text!r}:\n" + "\n".join(self.err)
            assert time.monotonic() < deadline, f"no {text!r} in:\n" + "\n".join(self.err)
            time.sleep(0.02)
        if text.startswith("SIGNAL SENT"):
            self.signalled_at = time.monotonic()

    def send(self, signum: int) -> None:
        os.kill(self.process.pid, signum)
        self.signalled_at = time.monotonic()

    def end(self, timeout: float = 120) -> float:
        """Wait for the exit; the seconds from the signal to it."""
        self.process.wait(timeout)
        ended = time.monotonic()
        for reader in self.readers:
            reader.join(10)
        return ended - (self.signalled_at or ended)

    @property
    def stderr(self) -> str:
        return "\n".join(self.err)


def ended_cleanly(running: Running, signum: int, record_property, what: str) -> str:
    """The run ended within `PROMPT_S` of the signal, with its code and one line (returned)."""
    seconds = running.end()
    name = signal.Signals(signum).name
    record_property(f"seconds from {name} to exit ({what})", round(seconds, 2))
    assert running.process.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum], running.stderr
    assert seconds < PROMPT_S, f"{seconds:.1f} s from {name} to exit"
    return the_one_line(running, signum)


def stopped_while_held(running: Running, held: Fault, signum: int, record_property, what: str) -> str:
    """Send `signum` while the simulator holds a request of the run; then as `ended_cleanly`."""
    assert held.reached.wait(60), "the held request never came"
    running.send(signum)
    try:
        return ended_cleanly(running, signum, record_property, what)
    finally:
        held.release.set()


def the_one_line(running: Running, signum: int) -> str:
    """Besides the run's progress log (INFO lines) and the harness's own mark, stderr holds one
    line: the interruption's."""
    assert "Traceback" not in running.stderr, running.stderr
    lines = [line for line in running.err if not LOG_LINE.match(line) and not line.startswith("SIGNAL SENT")]
    assert len(lines) == 1, running.stderr
    assert lines[0].startswith(f"interrupted by {signal.Signals(signum).name} "), lines[0]
    return lines[0]


def last_run(destination: str = "duckdb") -> Dict[str, tuple]:
    """The last run's load_runs rows by account label: (command, status, error_message)."""
    rows = query(destination, "select provider, account, command, status, error_message from analytics.load_runs "
                              "where run_id = (select run_id from analytics.load_runs order by started_at desc limit 1)")
    return {config.label_of(provider, account): (command, status, error) for provider, account, command, status, error in rows}


@pytest.fixture
def sims(monkeypatch, api_key):
    """start(providers, first_day, **overrides): simulators, sources pointed at them, START_DATE set."""
    started: Dict[str, Simulator] = {}
    for name, value in PATIENT_RETRIES.items():
        monkeypatch.setenv(name, value)

    def start(providers: Sequence[str], first_day: dt.date, **overrides) -> Dict[str, Simulator]:
        for provider in providers:
            provider_case = case(provider)
            sim = provider_case.make_simulator(api_key=f"{api_key}-{provider}", seed=3,
                                               **{**SMALL.get(provider, {}), **overrides.get(provider, {})}).start()
            started[provider] = sim
            for name, value in provider_case.env(sim).items():
                monkeypatch.setenv(name, value)
            monkeypatch.setenv(config.env_name(provider, "start_date"), first_day.isoformat())
        return started

    yield start
    for sim in started.values():
        sim.stop()


def requests_after(sim: Simulator, moment: float) -> list:
    return [r for r in sim.requests_to() if r.at > moment]


def next_nightly_equals_truth(started: Dict[str, Simulator], first_day: dt.date, destination: str = "duckdb") -> str:
    for sim in started.values():
        sim.clear_faults()
        sim.latency_s = 0
    done = subprocess.run([sys.executable, "-m", "pipelines", "nightly"], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    for provider, sim in started.items():
        raw_equals_truth(provider, sim, first_day, yesterday(), destination)
        models_equal_truth(provider, sim, first_day, yesterday(), destination)
        assert_state_consistent(provider, yesterday(), destination)
    assert set(status for _, status, _ in last_run(destination).values()) == {"ok"}
    return done.stderr


# -- a backfill ------------------------------------------------------------------------------------
def test_sigterm_mid_backfill_starts_no_further_window(sims, record_property, fault_report):
    last = yesterday()
    first = last - dt.timedelta(days=69)  # ten windows of a week
    started = sims(["rafay"], first)
    rafay = started["rafay"]
    running = Running("backfill", "--provider", "rafay", "--start", first.isoformat(), "--end", last.isoformat())
    running.wait_for("backfill 2/10 windows: rafay")
    held = rafay.inject(Fault(kind="block", delay_s=120))  # the third window's next request is held
    line = stopped_while_held(running, held, signal.SIGTERM, record_property, "backfill")
    assert "while loading rafay (window 3/10" in line and "recorded in analytics.load_runs" in line, line
    assert not [l for l in running.err if "backfill 3/10" in l or "backfill 4/10" in l], "a window after the signal"
    assert not requests_after(rafay, running.signalled_at), "requests sent after the signal"
    ((command, status, error),) = last_run().values()
    assert (command, status) == ("backfill", "interrupted")
    assert error.startswith("interrupted by SIGTERM while loading (window 3/10: "), error

    stderr = next_nightly_equals_truth(started, first)
    assert "removing the partial extract of an interrupted run" in stderr, stderr
    fault_report("SIGTERM mid backfill", 1, outcome=f"exit 143, one line, load_runs interrupted, {THEN}")


# -- a nightly of several providers, side by side --------------------------------------------------
def test_sigint_mid_extract_stops_every_provider_and_records_them(sims, record_property, fault_report):
    first = yesterday() - dt.timedelta(days=6)
    # the others are slow (every answer 150 ms), so they are mid-extract too when the signal comes
    started = sims(["neon", "rafay", "bronto"], first, neon={"latency_ms": 150}, bronto={"latency_ms": 150})
    held = started["rafay"].inject(Fault(kind="block", after=5, delay_s=120))
    running = Running("nightly")
    line = stopped_while_held(running, held, signal.SIGINT, record_property, "nightly, 3 providers")
    assert "while loading" in line and "rafay" in line, line
    for provider, sim in started.items():
        # a request in flight at the signal may still be answered; none starts a second later
        assert not requests_after(sim, running.signalled_at + 1.0), f"{provider} kept loading after SIGINT"
    runs = last_run()
    assert set(runs) == {"neon", "rafay", "bronto"}
    assert {status for _, status, _ in runs.values()} == {"interrupted"}, runs
    assert runs["rafay"][2].startswith("interrupted by SIGINT while loading"), runs
    assert not query("duckdb", "select table_name from information_schema.tables where table_schema = 'analytics' "
                               "and table_name in ('fct_daily_usage', 'model_loads')"), "models were built after the signal"

    next_nightly_equals_truth(started, first)
    fault_report("SIGINT mid extract (3 providers)", 1, outcome=f"exit 130, one line, load_runs interrupted, {THEN}")


# -- every step of a run ---------------------------------------------------------------------------
MOMENTS = ["extract", "normalize", "load", "load-jobs", "models", "models-query"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("moment", MOMENTS)
def test_a_signal_at_any_step_ends_the_run_cleanly(moment, signum, sims, record_property, monkeypatch, fault_report):
    first = yesterday() - dt.timedelta(days=5)
    started = sims(["bronto", "adverity"], first)
    name = signal.Signals(signum).name
    if moment == "extract":
        held = started["bronto"].inject(Fault(kind="block", after=2, delay_s=120))
        line = stopped_while_held(Running("nightly"), held, signum, record_property, moment)
    else:
        monkeypatch.setenv("SIGNAL_TO_SEND", str(int(signum)))
        running = Running("nightly", harness=("bronto_usage_duckdb", moment))
        running.wait_for(f"SIGNAL SENT {moment}")
        line = ended_cleanly(running, signum, record_property, moment)
    runs = last_run()
    assert set(runs) == {"bronto", "adverity"}
    assert {status for _, status, _ in runs.values()} == {"interrupted"}, runs
    step = "in the models step" if moment.startswith("models") else "while loading"
    assert step in line, line
    assert all(error.startswith(f"interrupted by {name}") for _, _, error in runs.values()), runs
    if moment == "extract":
        assert runs["bronto"][2].startswith(f"interrupted by {name} while loading"), runs
    elif not moment.startswith("models"):
        # the signal came mid-step: the step stops at its next safe point, or ends in its grace
        assert runs["bronto"][2].split(" (")[0] in (f"interrupted by {name} while loading",
                                                    f"interrupted by {name} after its load"), runs

    next_nightly_equals_truth(started, first)
    fault_report(f"{name} during {moment.replace('-', ' ')}", 1,
                 outcome=f"exit {128 + int(signum)}, one line, load_runs interrupted, {THEN}")
