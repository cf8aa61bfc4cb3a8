"""Connections to the warehouse, for everything that reads or writes it with SQL.

One dlt SQL client factory per warehouse and process (dlt's own connection handling, with the
destination's credentials and dialect), instead of a throwaway pipeline per connection; and
the few helpers that write SQL literals the same way on DuckDB and Postgres.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Sequence, Tuple, TypeVar

import dlt

from pipelines.config import Destination, duckdb_settings, postgres_lock_wait
from pipelines.lock import LockBusy

log = logging.getLogger("pipelines")
T = TypeVar("T")

SCHEMA = "analytics"
_CLIENTS: Dict[Tuple[Destination, int], Any] = {}
_LOCK = threading.Lock()


def sql_client(dest: Destination):
    """A connection to the warehouse (a context manager: it connects on entering and closes on
    leaving), its default schema `analytics`.

    dlt resolves a destination's configuration whenever it makes a client (about 50 ms), so
    the client is made once per warehouse and thread, and connects again on each use.
    """
    key = (dest, threading.get_ident())
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            pipeline = dlt.pipeline(pipeline_name=f"usage_models_{dest.name}", pipelines_dir=dest.pipelines_dir,
                                    destination=dest.dlt_destination(), dataset_name=SCHEMA)
            client = _CLIENTS[key] = pipeline.sql_client()
    return client


READERS_WAIT_S = 120.0
"""How long a load waits for the DuckDB file while other processes read it (analysts'
read-only sessions): a query ends within that; a session left open longer fails the load."""
_HELD: Dict[str, List[Any]] = {}
"""Per DuckDB file: [the connection that holds it, how many are inside `held`]."""
_HOLD_LOCK = threading.Lock()


@contextlib.contextmanager
def held(dest: Destination) -> Iterator[None]:
    """The DuckDB file open in this process while inside (a load, the models, the checks), and
    let go as soon as the last one inside leaves: between them (while providers are read,
    which with real APIs is most of a night) other processes may open it read-only.

    Every thread's dlt connections join the one database instance this connection opens, so
    two threads never open the file first at the same moment (DuckDB's instance cache races:
    "already attached"). Another process reading the file holds it too: the load waits up to
    `READERS_WAIT_S` for it, then fails with the busy line. Postgres needs none of this.
    """
    if dest.name != "duckdb":
        yield
        return
    with _HOLD_LOCK:
        entry = _HELD.get(dest.location)
        if entry is None:
            entry = _HELD[dest.location] = [_open_waiting(dest), 0]
        entry[1] += 1
    try:
        yield
    finally:
        with _HOLD_LOCK:
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[dest.location]
                entry[0].close()


def _open_waiting(dest: Destination):
    from pipelines.lock import open_duckdb

    connection = open_duckdb(dest, READERS_WAIT_S, on_wait=lambda: log.info(
        "the DuckDB warehouse %s is open in another process; waiting up to %.0f s for it", dest.location, READERS_WAIT_S))
    for name, value in duckdb_settings().items():
        connection.execute(f"set {name} = ?", [value])
    return connection


def engine(client) -> str:
    """`postgres` or `duckdb`: the engine a client talks to."""
    return "postgres" if "postgres" in type(client).__module__ else "duckdb"


# -- statements that change a table or view other sessions may hold ---------------------------------
LOCK_RETRY_WAIT_S = 1.0
"""The pause before a transaction that waited too long for another session's lock is tried again."""
LOCK_NOT_AVAILABLE = "55P03"
"""Postgres' error code for a lock wait that ran out (`lock_timeout`)."""


class WarehouseBusy(LockBusy):
    """Another session holds a table or view that a statement must change; the message names
    the session and what to do."""


def changing(client, relations: Sequence[str], work: Callable[[], T]) -> T:
    """`work` (statements that change `relations`, with what must commit with them) in one
    transaction; its result.

    On Postgres a statement that drops, replaces or alters a table or view waits for every
    session holding it, and a session idle in a transaction that read it (an analyst's) holds
    it until that transaction ends. So the transaction runs under `set local lock_timeout`
    (DESTINATION__POSTGRES__LOCK_TIMEOUT), and a wait that runs out rolls it back; it is tried
    again after a short pause, DESTINATION__POSTGRES__LOCK_ATTEMPTS times in all, and then
    WarehouseBusy names the sessions holding `relations`. Nothing of it is published unless
    all of it commits: an error or a stop (`work` may end with `stop.check()`) rolls it back."""
    if engine(client) != "postgres":
        return _committed(client, work)
    timeout_s, attempts = postgres_lock_wait()
    for attempt in range(attempts):
        if attempt:
            time.sleep(LOCK_RETRY_WAIT_S)
        try:
            return _committed(client, work, f"set local lock_timeout = {max(1, round(timeout_s * 1000))}")
        except Exception as exc:  # noqa: BLE001 - only a lock wait that ran out is tried again
            if not _lock_timed_out(exc):
                raise
    raise WarehouseBusy(_held(client, relations, timeout_s, attempts))


def _committed(client, work: Callable[[], T], *settings: str) -> T:
    """`work` in one transaction, after the `settings` statements."""
    try:
        with client.begin_transaction():
            for sql in settings:
                client.execute_sql(sql)
            return work()
    except KeyboardInterrupt:  # dlt's transaction rolls back on errors only, not on a stop
        with contextlib.suppress(Exception):
            client.rollback_transaction()
        raise


def change(client, relation: str, sql: str) -> None:
    """One statement that changes `relation`: on Postgres in a transaction of its own, as
    `changing` runs it."""
    if engine(client) == "postgres":
        changing(client, [relation], lambda: client.execute_sql(sql))
    else:
        client.execute_sql(sql)


def _lock_timed_out(exc: BaseException) -> bool:
    from pipelines.load import causes

    return any(getattr(cause, "pgcode", None) == LOCK_NOT_AVAILABLE for cause in causes(exc))


def _held(client, relations: Sequence[str], timeout_s: float, attempts: int) -> str:
    """The one line for `relations` held by other sessions: who (pid, user, application, what
    it is doing since when) and the fix."""
    rows = client.execute_sql(
        "select a.pid, a.usename, a.application_name, a.state, coalesce(a.xact_start, a.backend_start), "
        "n.nspname || '.' || c.relname from pg_locks l join pg_stat_activity a on a.pid = l.pid "
        "join pg_class c on c.oid = l.relation join pg_namespace n on n.oid = c.relnamespace "
        "where l.granted and l.pid <> pg_backend_pid() "
        "and l.database = (select oid from pg_database where datname = current_database()) "
        f"and l.relation in ({', '.join(f'to_regclass({text(relation)})' for relation in relations)}) "
        "order by 1, 6")
    sessions: Dict[tuple, List[str]] = {}
    for pid, user, application, state, since, relation in rows:
        held = sessions.setdefault((pid, user, application, state, since), [])
        if relation not in held:
            held.append(relation)
    waited = f"waited {attempts} time{'s' if attempts > 1 else ''} {timeout_s:g} s"
    if not sessions:
        return (f"the warehouse is busy: another session held {', '.join(relations)}, which the models must change "
                f"({waited}), and has let go since; run again")
    who = " and ".join(
        f"pid {pid} (user {user}, application '{application or ''}', {state or 'in a transaction'} since "
        f"{since.astimezone(dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ}) holds {', '.join(named)}"
        for (pid, user, application, state, since), named in sessions.items())
    one = len(sessions) == 1
    ends = ", ".join(f"select pg_terminate_backend({pid})" for pid, *_ in sessions)
    return (f"the warehouse is busy: session{'' if one else 's'} {who}, which the models must change ({waited}); "
            f"have {'that session' if one else 'them'} commit or roll back, or end {'it' if one else 'them'} ({ends}), "
            "then run again")


def existing_tables(client) -> set:
    """`schema.table` of every table and view the connection sees."""
    rows = client.execute_sql("select table_schema, table_name from information_schema.tables")
    return {f"{schema}.{name}" for schema, name in rows}


def columns(client, relation: str) -> List[Tuple[str, str]]:
    """(name, type) of each column of `schema.table`, in order; none when it does not exist."""
    schema, table = relation.split(".", 1)
    return [(name, type_) for name, type_ in client.execute_sql(
        "select column_name, data_type from information_schema.columns "
        f"where table_schema = {text(schema)} and table_name = {text(table)} order by ordinal_position")]


def text(value: object) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def day(value: dt.date) -> str:
    """A SQL date literal."""
    return f"date '{value.isoformat()}'"


def literal(value: object) -> str:
    """Any value as a SQL literal both engines read the same: null, a boolean, a number, a
    date, a timestamp or a string."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"timestamp '{value.replace(tzinfo=None).isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return day(value)
    return text(value)


INSERT_BATCH = 500
"""Rows per insert statement: one statement per batch is fast on both engines, where one per
row costs a round trip each."""


def insert_rows(client, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Rows as multi-row inserts of literals."""
    rows = list(rows)
    for start in range(0, len(rows), INSERT_BATCH):
        values = ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows[start:start + INSERT_BATCH])
        client.execute_sql(f"insert into {table} ({', '.join(columns)}) values {values}")


def utc_now() -> dt.datetime:
    """Now in UTC as the warehouse stores it (a naive timestamp)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def as_date(value) -> dt.date:
    """A date as the driver returned it (DuckDB and psycopg2 agree, a timestamp does not)."""
    return value.date() if isinstance(value, dt.datetime) else value
