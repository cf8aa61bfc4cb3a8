"""`usage-elt grant-readonly ROLE`: a Postgres role for analysts, that reads `analytics` and
nothing else.

The role may use the schema `analytics` and select from its tables and views, now and later
(default privileges of the loader's user, who makes every table there, also the ones a model
build swaps in); it gets no privilege on any other schema (the raw datasets `raw_*`, their
`_staging` twins, dlt's state tables `_dlt_*` in them) and none that writes. Running it again
for the same role takes away whatever else it was granted since, in this database.

Analysts on a shared Postgres warehouse read while loads run: the facts of a day are replaced
in one transaction, so a query sees a day's rows from before or from after, never half of
them. DuckDB has no roles, and its file admits one process beside a writer: not here.
"""

import re
from typing import List, Tuple

from pipelines import config
from pipelines.models import SCHEMA

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_role(dest: config.Destination, role: str) -> str:
    """The role's name, or a ConfigError naming what to change."""
    if dest.name != "postgres":
        raise config.ConfigError(
            f"grant-readonly makes a Postgres role, and the warehouse is {dest.name} ({dest.location}), which has no "
            "roles; run it with --destination postgres (DESTINATION=postgres) on the shared warehouse"
        )
    if not ROLE_NAME.match(role):
        raise config.ConfigError(
            f"{role!r} is not a role name grant-readonly makes; use lower-case letters, digits and _ (e.g. analysts)")
    return role


def grant_readonly(role: str) -> Tuple[bool, List[str]]:
    """Create `role` (LOGIN, without a password) or update it: reading `analytics` is all it
    may do in the warehouse's database. (created, the analytics relations it reads now)."""
    import psycopg2
    from psycopg2 import sql

    ident = sql.Identifier(role)
    con = psycopg2.connect(config.postgres_url(), connect_timeout=config.POSTGRES_CONNECT_TIMEOUT_S)
    try:
        with con, con.cursor() as cur:
            cur.execute("select current_user, current_database(), exists (select 1 from pg_roles where rolname = %s)", (role,))
            owner, database, exists = cur.fetchone()
            if role == owner:
                raise config.ConfigError(
                    f"{role} is the warehouse's own user (the one in {config.POSTGRES_SETTING}), which loads it; "
                    "name another role for the analysts")
            if not exists:
                cur.execute(sql.SQL("create role {} login").format(ident))
            cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(SCHEMA)))
            cur.execute("select nspname from pg_namespace where nspname not like 'pg\\_%%' and nspname <> 'information_schema'")
            for (schema,) in cur.fetchall():  # whatever it was granted since, in this database
                names = {"schema": sql.Identifier(schema), "role": ident}
                for kind in ("tables", "sequences", "functions"):
                    cur.execute(sql.SQL("revoke all on all " + kind + " in schema {schema} from {role}").format(**names))
                    cur.execute(sql.SQL("alter default privileges in schema {schema} revoke all on " + kind + " from {role}")
                                .format(**names))
                cur.execute(sql.SQL("revoke all on schema {schema} from {role}").format(**names))
            names = {"schema": sql.Identifier(SCHEMA), "role": ident, "database": sql.Identifier(database)}
            for statement in (
                "revoke all on database {database} from {role}",
                "grant connect on database {database} to {role}",
                "grant usage on schema {schema} to {role}",
                "grant select on all tables in schema {schema} to {role}",
                # tables the loader's user makes later: every model build, every new mart
                "alter default privileges in schema {schema} grant select on tables to {role}",
            ):
                cur.execute(sql.SQL(statement).format(**names))
            cur.execute("select table_name from information_schema.tables where table_schema = %s order by table_name", (SCHEMA,))
            relations = [name for (name,) in cur.fetchall()]
    finally:
        con.close()
    return not exists, relations


def lines(role: str, created: bool, relations: List[str]) -> List[str]:
    done = "created" if created else "updated"
    out = [f"{done} role {role}: it reads the {len(relations)} tables and views of {SCHEMA} and every one made later; "
           "nothing else (no raw_* dataset, no dlt state), and it cannot write"]
    if created:
        out.append(f"it has no password yet: set one with ALTER ROLE {role} PASSWORD '...', or grant {role} to the "
                   "analysts' own roles")
    return out
