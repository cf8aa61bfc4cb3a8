"""One lock per warehouse, shared by `nightly`, `backfill` and `models`.

DuckDB: an exclusive `flock` on `<warehouse>.lock` beside the file. Postgres: a session-level
advisory lock keyed by the database, held on a connection of its own. Either way the holder
writes who it is (command, pid, start) so a second run can name the running one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import time
import zlib
from pathlib import Path
from typing import Iterator, Optional

from pipelines.config import Destination, postgres_url

POLL_S = 0.5


class LockBusy(Exception):
    """Another run holds the warehouse; the message names it and what to do."""


def _holder(command: str) -> dict:
    return {"command": command, "pid": os.getpid(), "started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _describe(holder: Optional[dict]) -> str:
    if not holder:
        return "another run"
    return f"`{holder.get('command')}` (pid {holder.get('pid')}, started {holder.get('started')})"


@contextlib.contextmanager
def warehouse_lock(dest: Destination, command: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the warehouse for one command; wait up to `wait_s` for a running one to finish."""
    if dest.name == "duckdb":
        with _file_lock(Path(dest.location + ".lock"), command, wait_s, dest):
            _duckdb_writable(dest, wait_s)
            yield
    else:
        with _advisory_lock(command, wait_s, dest):
            yield


def _duckdb_writable(dest: Destination, wait_s: float) -> None:
    """DuckDB allows one writing process: a session left open elsewhere blocks every load."""
    import duckdb

    deadline = time.monotonic() + wait_s
    while True:
        try:
            duckdb.connect(dest.location).close()
            return
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                holder = re.search(r"PID (\d+)", str(exc))
                who = f"process {holder.group(1)}" if holder else "another process"
                raise LockBusy(
                    f"the DuckDB warehouse {dest.location} is open in {who} (an analyst's session?), and DuckDB "
                    f"allows one writer; close that session and retry, and query while loads run from a copy "
                    f"or with duckdb.connect('{dest.location}', read_only=True) outside the load window"
                ) from None
            time.sleep(POLL_S)


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
                    handle.seek(0)
                    try:
                        holder = json.loads(handle.read() or "null")
                    except ValueError:
                        holder = None
                    raise LockBusy(
                        f"the warehouse {dest.location} is busy: {_describe(holder)} is running; "
                        "wait for it to finish or pass --wait SECONDS"
                    ) from None
                time.sleep(POLL_S)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(_holder(command)))
        handle.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            handle.seek(0)
            handle.truncate()
        handle.close()  # closing releases the flock


@contextlib.contextmanager
def _advisory_lock(command: str, wait_s: float, dest: Destination) -> Iterator[None]:
    import psycopg2

    con = psycopg2.connect(postgres_url(), connect_timeout=10, application_name=f"usage-elt {command}")
    con.autocommit = True
    key = zlib.crc32(b"usage-elt warehouse lock")
    deadline = time.monotonic() + wait_s
    try:
        with con.cursor() as cur:
            while True:
                cur.execute("select pg_try_advisory_lock(%s)", (key,))
                if cur.fetchone()[0]:
                    break
                if time.monotonic() >= deadline:
                    cur.execute(
                        "select a.application_name, a.pid, a.backend_start from pg_locks l join pg_stat_activity a "
                        "on a.pid = l.pid where l.locktype = 'advisory' and l.objid = %s and l.granted",
                        (key & 0xFFFFFFFF,),
                    )
                    row = cur.fetchone()
                    holder = {"command": row[0], "pid": row[1], "started": row[2].strftime("%Y-%m-%dT%H:%M:%SZ")} if row else None
                    raise LockBusy(
                        f"the warehouse {dest.location} is busy: {_describe(holder)} is running; "
                        "wait for it to finish or pass --wait SECONDS"
                    )
                time.sleep(POLL_S)
        yield
    finally:
        con.close()  # ends the session, which releases the advisory lock
