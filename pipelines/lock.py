"""One lock per warehouse, shared by `nightly`, `backfill` and `models`.

DuckDB: an exclusive `flock` on `<warehouse>.lock` beside the file. Postgres: a session-level
advisory lock keyed by the database, held on a connection of its own, whose session names the
run (`application_name`). Either way the holder says who it is (command, pid, start) so a second
run can name the running one.

The advisory lock lives as long as its session: a session ended from outside (an operator's
`pg_terminate_backend`, a restarted server, a dropped connection) takes the lock with it, and a
second run could start beside this one. A heartbeat checks every `HEARTBEAT_S` that the session
still holds it, and stops the run when it does not (`pipelines.stop`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import threading
import time
import zlib
from pathlib import Path
from typing import Iterator, Optional

from pipelines import stop
from pipelines.config import EXIT_LOCKED, Destination, postgres_url

POLL_S = 0.5
HEARTBEAT_S = 2.0
"""How often a run on Postgres checks that its session still holds the warehouse lock."""
KEY = zlib.crc32(b"usage-elt warehouse lock")
APPLICATION = re.compile(r"^usage-elt (?P<command>\S+) pid (?P<pid>\d+) started (?P<started>\S+)$")
"""The `application_name` of a run's lock session: the loader's own pid, not the backend's."""
MAKE_SETTING = "USAGE_ELT_VIA_MAKE"
"""Set by the Makefile for its commands, whose options are make variables (`WAIT=`)."""


class LockBusy(Exception):
    """Another run holds the warehouse; the message names it and what to do."""


def under_make() -> bool:
    return os.environ.get(MAKE_SETTING) == "1"


def option(flag: str, variable: str) -> str:
    """How the user gives an option: `--wait SECONDS` on the command line, `WAIT=SECONDS`
    under make (`flag` and `variable` written with their example value)."""
    return variable if under_make() else flag


def wait_hint() -> str:
    return "run it again with " + option("--wait SECONDS", "WAIT=SECONDS")


def _holder(command: str) -> dict:
    return {"command": command, "pid": os.getpid(), "started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _describe(holder: Optional[dict]) -> str:
    if not holder:
        return "another run"
    return f"`{holder.get('command')}` (pid {holder.get('pid')}, started {holder.get('started')})"


def _busy(dest: Destination, holder: Optional[dict]) -> LockBusy:
    return LockBusy(f"the warehouse {dest.location} is busy: {_describe(holder)} is running; "
                    f"wait for it to finish or {wait_hint()}")


@contextlib.contextmanager
def warehouse_lock(dest: Destination, command: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the warehouse for one command; wait up to `wait_s` for a running one to finish."""
    if dest.name == "duckdb":
        with _file_lock(Path(dest.location + ".lock"), command, wait_s, dest):
            wait_for_duckdb(dest, wait_s)
            yield
    else:
        with _advisory_lock(command, wait_s, dest):
            yield


# -- DuckDB ------------------------------------------------------------------------------------------
READERS_GRACE_S = 3.0
"""However short `--wait`, how long a command waits for the DuckDB file at its start: a
read-only query (a dashboard's, an analyst's) holds it for moments, and is no reason to fail."""


def wait_for_duckdb(dest: Destination, wait_s: float = 0.0) -> None:
    """DuckDB allows one writing process, and no reader beside it: wait up to `wait_s` (at
    least `READERS_GRACE_S`) for a process holding the file (an analyst's session, a running
    load) to let go, else LockBusy."""
    open_duckdb(dest, max(wait_s, READERS_GRACE_S)).close()


def open_duckdb(dest: Destination, wait_s: float, on_wait=None):
    """A connection to the DuckDB file, waiting up to `wait_s` while another process holds it
    (`on_wait()` called once when it must wait), else LockBusy."""
    import duckdb

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(dest.location)
        except duckdb.IOException as exc:
            if not is_lock_conflict(exc):
                raise
            if time.monotonic() >= deadline:
                raise duckdb_busy(dest, exc) from None
            if on_wait is not None:
                on_wait()
                on_wait = None
            time.sleep(POLL_S)


def is_lock_conflict(exc: BaseException) -> bool:
    return "lock" in str(exc).lower()


def duckdb_busy(dest: Destination, exc: BaseException) -> LockBusy:
    """The one line for a DuckDB file another process holds (`exc`: DuckDB's own error)."""
    pid = re.search(r"PID (\d+)", str(exc))
    run = _read_holder(Path(dest.location + ".lock")) if pid else None
    if run and str(run.get("pid")) == pid.group(1):
        return LockBusy(
            f"the DuckDB warehouse {dest.location} is open in {_describe(run)}, and DuckDB allows one process "
            f"at a time; wait for it to finish or {wait_hint()}"
        )
    who = f"process {pid.group(1)}" if pid else "another process"
    return LockBusy(
        f"the DuckDB warehouse {dest.location} is open in {who} (an analyst's session?), and DuckDB "
        f"allows one writer; close that session and retry (or {wait_hint()}), and query while loads run from a copy "
        f"or with duckdb.connect('{dest.location}', read_only=True) outside the load window"
    )


def busy_behind(exc: BaseException, dest: Destination) -> Optional[LockBusy]:
    """The LockBusy that a failure stands for, when another process holding the DuckDB file is
    its cause (dlt reports it as a connection error that suggests the internet is down)."""
    import duckdb

    from pipelines.load import causes

    if dest.name != "duckdb":
        return None
    for cause in causes(exc):
        if isinstance(cause, duckdb.IOException) and is_lock_conflict(cause):
            return duckdb_busy(dest, cause)
    return None


def _read_holder(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _file_lock(path: Path, command: str, wait_s: float, dest: Destination) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(dest, _read_holder(path)) from None
                time.sleep(POLL_S)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(_holder(command)))
            handle.flush()
            yield
        finally:
            # only the holder clears what it wrote: a run refused the lock leaves the holder's name
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
    finally:
        handle.close()  # closing releases the flock


# -- Postgres ----------------------------------------------------------------------------------------
def _application_name(holder: dict) -> str:
    return f"usage-elt {holder['command']} pid {holder['pid']} started {holder['started']}"


@contextlib.contextmanager
def _advisory_lock(command: str, wait_s: float, dest: Destination) -> Iterator[None]:
    import psycopg2

    holder = _holder(command)
    con = psycopg2.connect(postgres_url(), connect_timeout=10, application_name=_application_name(holder),
                           keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3)
    con.autocommit = True
    deadline = time.monotonic() + wait_s
    try:
        with con.cursor() as cur:
            while True:
                cur.execute("select pg_try_advisory_lock(%s)", (KEY,))
                if cur.fetchone()[0]:
                    break
                if time.monotonic() >= deadline:
                    raise _busy(dest, _advisory_holder(cur))
                time.sleep(POLL_S)
            cur.execute("select pg_backend_pid()")
            (backend,) = cur.fetchone()
        heartbeat = _Heartbeat(con, backend, command)
        heartbeat.start()
        try:
            yield
        finally:
            heartbeat.finish()
    finally:
        con.close()  # ends the session, which releases the advisory lock


def _advisory_holder(cur) -> Optional[dict]:
    """Who holds the lock: the run its session names, else the session itself."""
    cur.execute(
        "select a.application_name, a.pid, a.backend_start from pg_locks l join pg_stat_activity a "
        "on a.pid = l.pid where l.locktype = 'advisory' and l.objid = %s and l.objsubid = 1 and l.granted "
        # advisory locks belong to a database; pg_locks lists every database's
        "and l.database = (select oid from pg_database where datname = current_database())",
        (KEY & 0xFFFFFFFF,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    application, backend, started = row
    run = APPLICATION.match(application or "")
    if run:
        return run.groupdict()
    return {"command": application or "a session", "pid": f"{backend}, a Postgres backend",
            "started": started.strftime("%Y-%m-%dT%H:%M:%SZ")}


HOLDS_THE_LOCK = ("select 1 from pg_locks where locktype = 'advisory' and objid = %s and objsubid = 1 "
                  "and granted and pid = pg_backend_pid()")


class _Heartbeat(threading.Thread):
    """Checks that the lock's session still holds the lock; stops the run when it does not."""

    def __init__(self, con, backend: int, command: str):
        super().__init__(name=stop.THREAD_PREFIX + "lock-heartbeat", daemon=True)
        self.con, self.backend, self.command = con, backend, command
        self.done = threading.Event()

    def run(self) -> None:
        import psycopg2

        while not self.done.wait(HEARTBEAT_S):
            try:
                with self.con.cursor() as cur:
                    cur.execute(HOLDS_THE_LOCK, (KEY & 0xFFFFFFFF,))
                    if cur.fetchone() is not None:
                        continue
                why = "its session no longer holds it"
            except psycopg2.Error as exc:
                if self.done.is_set():
                    return
                why = f"its session (Postgres backend {self.backend}) ended: " + " ".join(str(exc).split())[:160]
            stop.request(stop.Stopped(
                f"lost the warehouse lock ({why}), so another run may start; stopped the {self.command}",
                EXIT_LOCKED, error=True))
            return

    def finish(self) -> None:
        self.done.set()
        self.join(5)
