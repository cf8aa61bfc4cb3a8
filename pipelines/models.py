"""The model runner: finds the SQL models in `sql/`, runs them in dependency order through the
destination's own connection, then the model tests.

- `sql/staging/*.sql` are views, one per raw table, already in the fact's shape. When a
  provider's raw table does not exist yet (never loaded), its view is created empty.
- `sql/marts/*.sql` are tables built incrementally by day range: rebuilding `[start, end]`
  deletes and inserts exactly those days, in one transaction with the model tests, so analysts
  never see a half-built table and a failing build or test leaves the previous table intact.
- `sql/**/<model>.tests.sql` hold the model tests: `-- test: <name>` then a query that returns
  the offending rows (none = pass).

The SQL is written once in the subset DuckDB and Postgres share.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import dlt

from pipelines.config import Destination

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
SCHEMA = "analytics"
FACT_COLUMNS = (
    "usage_date", "provider", "account_id", "account_name", "resource_type",
    "resource_id", "resource_name", "metric", "quantity", "unit",
)
EMPTY_FACTS = (
    "select cast(null as date) as usage_date, cast(null as varchar) as provider, "
    "cast(null as varchar) as account_id, cast(null as varchar) as account_name, "
    "cast(null as varchar) as resource_type, cast(null as varchar) as resource_id, "
    "cast(null as varchar) as resource_name, cast(null as varchar) as metric, "
    "cast(null as double precision) as quantity, cast(null as varchar) as unit where 1 = 0"
)
RAW_REF = re.compile(r"\b(raw_[a-z]+)\.([a-z_0-9]+)\b")


class ModelError(Exception):
    """A model that failed to build or test; names the model."""

    def __init__(self, model: str, message: str):
        self.model = model
        super().__init__(f"model {model} failed: {message}")


@dataclass
class Model:
    name: str
    path: Path
    kind: str  # view | table
    sql: str
    tests: List[Tuple[str, str]] = field(default_factory=list)
    depends_on: List[str] = field(default_factory=list)

    @property
    def relation(self) -> str:
        return f"{SCHEMA}.{self.name}"


def discover(sql_dir: Optional[Path] = None) -> List[Model]:
    """Every model under sql/ (or `USAGE_SQL_DIR`), in dependency order: a model depends on
    the models it names."""
    sql_dir = Path(sql_dir or os.environ.get("USAGE_SQL_DIR") or SQL_DIR)
    models: Dict[str, Model] = {}
    for folder, kind in (("staging", "view"), ("marts", "table")):
        for path in sorted((sql_dir / folder).glob("*.sql")):
            if path.name.endswith(".tests.sql"):
                continue
            name = path.stem
            tests_path = path.with_name(f"{name}.tests.sql")
            tests = parse_tests(tests_path.read_text()) if tests_path.exists() else []
            models[name] = Model(name, path, kind, path.read_text().strip().rstrip(";"), tests)
    for model in models.values():
        model.depends_on = [other for other in models if other != model.name and re.search(rf"\b{SCHEMA}\.{other}\b", model.sql)]
    ordered: List[Model] = []
    visiting: set = set()

    def visit(model: Model) -> None:
        if model in ordered:
            return
        if model.name in visiting:
            raise ModelError(model.name, "circular reference")
        visiting.add(model.name)
        for dependency in model.depends_on:
            visit(models[dependency])
        ordered.append(model)

    for model in models.values():
        visit(model)
    return ordered


def parse_tests(text: str) -> List[Tuple[str, str]]:
    """`-- test: name` headers each followed by one query."""
    tests = []
    for chunk in re.split(r"^--\s*test:\s*", text, flags=re.M)[1:]:
        name, _, body = chunk.partition("\n")
        tests.append((name.strip(), body.strip().rstrip(";")))
    return tests


@dataclass
class BuildReport:
    models: List[str] = field(default_factory=list)
    empty_views: List[str] = field(default_factory=list)
    rows: int = 0
    start: Optional[dt.date] = None
    end: Optional[dt.date] = None


def _sql_client(dest: Destination):
    pipeline = dlt.pipeline(pipeline_name=f"usage_models_{dest.name}", destination=dest.dlt_destination(), dataset_name=SCHEMA)
    return pipeline.sql_client()


def _day(value: dt.date) -> str:
    return f"date '{value.isoformat()}'"


def existing_tables(client) -> set:
    rows = client.execute_sql("select table_schema, table_name from information_schema.tables")
    return {f"{schema}.{name}" for schema, name in rows}


def build(dest: Destination, start: Optional[dt.date] = None, end: Optional[dt.date] = None,
          models: Optional[Sequence[Model]] = None) -> BuildReport:
    """Build every model; marts only for days `start..end` (inclusive) when given, else all."""
    models = list(models) if models is not None else discover()
    report = BuildReport(start=start, end=end)
    with _sql_client(dest) as client:
        client.execute_sql(f"create schema if not exists {SCHEMA}")
        tables = existing_tables(client)
        for model in models:
            try:
                if model.kind == "view":
                    _build_view(client, model, tables, report)
                else:
                    report.rows += _build_table(client, model, start, end)
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database's message, on one line
                raise ModelError(model.name, " ".join(str(exc).split())[:300]) from None
            report.models.append(model.name)
    return report


def _build_view(client, model: Model, tables: set, report: BuildReport) -> None:
    missing = [f"{schema}.{table}" for schema, table in RAW_REF.findall(model.sql) if f"{schema}.{table}" not in tables]
    body = EMPTY_FACTS if missing else model.sql
    if missing:
        report.empty_views.append(model.name)
    with client.begin_transaction():
        client.execute_sql(f"drop view if exists {model.relation}")
        client.execute_sql(f"create view {model.relation} as {body}")


def _build_table(client, model: Model, start: Optional[dt.date], end: Optional[dt.date]) -> int:
    columns = ", ".join(FACT_COLUMNS)
    selected = f"select {columns} from ({model.sql}) as model_rows"
    where = ""
    if start is not None or end is not None:
        bounds = []
        if start is not None:
            bounds.append(f"usage_date >= {_day(start)}")
        if end is not None:
            bounds.append(f"usage_date <= {_day(end)}")
        where = " where " + " and ".join(bounds)
    client.execute_sql(f"create table if not exists {model.relation} as {selected} where 1 = 0")
    with client.begin_transaction():
        client.execute_sql(f"delete from {model.relation}{where}")
        client.execute_sql(f"insert into {model.relation} ({columns}) {selected}{where}")
        (rows,), = client.execute_sql(f"select count(*) from {model.relation}{where}")
        failures = run_tests(client, model)
        if failures:
            raise ModelError(model.name, "; ".join(failures))
    return int(rows)


def run_tests(client, model: Model) -> List[str]:
    """The model's tests; each failure as `<test>: <n> rows, e.g. <first row>`."""
    failures = []
    for name, sql in model.tests:
        rows = client.execute_sql(sql) or []
        if rows:
            failures.append(f"test {name}: {len(rows)} offending rows, e.g. {tuple(rows[0])}")
    return failures


def test_all(dest: Destination, models: Optional[Sequence[Model]] = None) -> List[str]:
    """Run every model test against what is built; the list of failures."""
    failures = []
    with _sql_client(dest) as client:
        for model in models if models is not None else discover():
            failures += [f"{model.name}: {f}" for f in run_tests(client, model)]
    return failures
