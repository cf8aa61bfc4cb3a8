"""Stopping a run part-way, cleanly: on SIGTERM or SIGINT, or when the run loses the warehouse lock.

A scheduler stops a job with SIGTERM (systemd, a CI runner's cancel, an orchestrator's timeout),
a person with Ctrl-C. Either way no further window, account, provider or model starts, every
provider account of the run is recorded as `interrupted` in `analytics.load_runs`, and the
command ends with 130 (SIGINT) or 143 (SIGTERM) and one line, within seconds.

How: the main thread only supervises. Provider loads and model builds run on threads of their
own (`run_on_threads`), so the main thread is always free to take the signal, whatever the work
is blocked on (a request a provider holds, a retry's wait, a long query). A stop asks every
thread to stop at its next safe point: dlt's own signal flag, which its extract loop checks
between items and its normalize and load steps between jobs, and `check()`, which the run calls
before every window, account, provider and step. Threads still busy after `GRACE_S` are left
behind: the process exits without them, which the loads and the models survive as they survive
a kill (the next run completes or discards the load packages left, see `pipelines/load.py`, and
rebuilds the days whose models never committed, see `pipelines/models.py`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import _thread
from typing import Callable, Dict, Iterator, Mapping, Optional, TypeVar

T = TypeVar("T")

GRACE_S = 3.0
"""How long the threads of a stopped run get to reach a safe point (a load job finishing)."""
POLL_S = 0.2
THREAD_PREFIX = "usage-elt-"
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
"""Exit codes of a run stopped by a signal: 128 + its number, as shells report it."""


class Stopped(KeyboardInterrupt):
    """The run was told to stop (a signal) or can no longer go on (the lock is gone).

    A KeyboardInterrupt, so that `except Exception` (a provider's failure, a model's) never
    takes it for an error of its own. `where` says what the run was doing when it stopped."""

    def __init__(self, reason: str, exit_code: int, signum: int = signal.SIGTERM, error: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code
        self.signum = signum
        self.error = error
        self.where = ""

    @classmethod
    def by_signal(cls, signum: int) -> "Stopped":
        return cls(f"interrupted by {signal.Signals(signum).name}", SIGNAL_EXIT.get(signum, 128 + signum), signum)

    def line(self) -> str:
        """The one line the command ends with."""
        text = self.reason + (f" {self.where}" if self.where else "")
        return f"error: {text}" if self.error else text


_guard = threading.Lock()
_requested: Optional[Stopped] = None
_taken = threading.Event()
_installed = False
_delivering = 0
"""Stops requested from another thread (a lost lock) on their way to the main thread, whose
handler therefore is no second signal."""
_dlt_log_level: Optional[int] = None


def request(stop: Stopped) -> Stopped:
    """Ask the whole run to stop; the first request wins. Returns the stop in force. From a
    thread other than the main one (the lock's heartbeat), the main thread is interrupted too."""
    global _requested, _dlt_log_level, _delivering
    from dlt.common.runtime import signals as dlt_signals

    with _guard:
        first = _requested is None
        if first:
            _requested = stop
            _dlt_log_level = logging.getLogger("dlt").level
        stop = _requested
        deliver = first and _installed and threading.current_thread() is not threading.main_thread()
        if deliver:
            _delivering += 1
    if first:
        dlt_signals.set_received_signal(stop.signum)  # dlt's steps stop at their next safe point
        dlt_signals.wake_all()
        # dlt says so in a warning of its own for every step it stops; the run's one line says it once
        logging.getLogger("dlt").setLevel(logging.ERROR)
    if deliver:
        _thread.interrupt_main(stop.signum)
    return stop


def requested() -> Optional[Stopped]:
    return _requested


def check() -> None:
    """Raise the stop, if one was requested: before every window, account, provider and step."""
    if _requested is not None:
        raise _requested


def taken(exc: Optional[BaseException] = None) -> Stopped:
    """The run has caught the stop and is ending (recording, releasing the lock): a signal
    from now on ends the process at once. Returns the stop in force (one made from `exc`, a
    Ctrl-C or dlt's signal exception, when none was requested)."""
    stop = _requested or request(as_stopped(exc))
    _taken.set()
    return stop


def as_stopped(exc: Optional[BaseException]) -> Stopped:
    """The stop an interrupt stands for: the one requested, else one for its signal."""
    if _requested is not None:
        return _requested
    if isinstance(exc, Stopped):
        return exc
    signum = getattr(exc, "signal_code", signal.SIGINT)  # dlt's SignalReceivedException carries its signal
    return Stopped.by_signal(signum if signum in SIGNAL_EXIT else signal.SIGINT)


def _on_signal(signum: int, frame) -> None:
    global _delivering
    with _guard:
        delivered, _delivering = _delivering > 0, max(0, _delivering - 1)
    stop = request(Stopped.by_signal(signum))
    if _taken.is_set():
        if delivered:
            return  # the run took the stop before its delivery came
        # the run is already stopping and is told again: end now
        os.write(sys.stderr.fileno(), f"{stop.line()}; stopping at once\n".encode())
        os._exit(stop.exit_code)
    raise stop


@contextlib.contextmanager
def signals_stop_the_run() -> Iterator[None]:
    """SIGTERM and SIGINT stop the run (in the main thread; elsewhere a no-op)."""
    global _installed
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNAL_EXIT}
    for signum in SIGNAL_EXIT:
        signal.signal(signum, _on_signal)
    _installed = True
    try:
        yield
    finally:
        _installed = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        reset()


def reset() -> None:
    """Forget a stop (for a process that runs more than one command, e.g. the tests)."""
    global _requested, _delivering, _dlt_log_level
    from dlt.common.runtime import signals as dlt_signals

    with _guard:
        if _requested is not None:
            dlt_signals.set_received_signal(0)
        if _dlt_log_level is not None:
            logging.getLogger("dlt").setLevel(_dlt_log_level)
        _requested, _delivering, _dlt_log_level = None, 0, None
        _taken.clear()


def run_on_threads(jobs: Mapping[str, Callable[[], T]]) -> Dict[str, T]:
    """Run each job on a thread of its own, wait for all of them, and return their results
    by name (the first job's exception, in order, is raised).

    The calling thread only waits: on a stop, the jobs get `GRACE_S` to reach a safe point and
    `Stopped` is raised, whether or not they got there."""
    results: Dict[str, T] = {}
    errors: Dict[str, BaseException] = {}
    # Each job says it is done through an event of its own. `Thread.join` cannot be used to
    # wait here: on Python 3.11 a join that a signal handler's exception interrupts marks the
    # thread as ended although it still runs, and the grace below would not wait at all.
    done = {name: threading.Event() for name in jobs}

    def target(name: str, job: Callable[[], T]) -> None:
        try:
            results[name] = job()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            errors[name] = exc
        finally:
            done[name].set()

    threads = [threading.Thread(target=target, args=(name, job), name=THREAD_PREFIX + name, daemon=True)
               for name, job in jobs.items()]
    started = []
    try:
        for thread, name in zip(threads, jobs):
            thread.start()
            started.append(name)
        for name in jobs:
            while not done[name].wait(POLL_S):
                check()
    except KeyboardInterrupt as exc:  # a stop, or Ctrl-C where no handler is installed
        stop = taken(exc)  # from here on the main thread runs the run's own code only
        deadline = time.monotonic() + GRACE_S
        for name in started:
            done[name].wait(max(0.0, deadline - time.monotonic()))
        raise stop from None
    for name in jobs:
        if name in errors:
            if isinstance(errors[name], KeyboardInterrupt):
                raise request(as_stopped(errors[name])) from None
            raise errors[name]
    return results


def exit_now(code: int) -> None:
    """End the process at once, leaving behind threads that are still busy: waiting for them
    (Python waits for every executor's threads at exit) could take as long as a provider holds
    a request."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
