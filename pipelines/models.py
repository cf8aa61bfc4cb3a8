"""The model runner: finds the SQL models in `sql/`, runs them in dependency order through the
destination's own connection, then the model tests.

- `sql/staging/*.sql` are views, one per raw table: renames and casts only. Each output column
  is one `cast(<raw column> as <type>) as <name>` line, so that a view whose raw table does not
  exist yet (a provider never loaded) can be created empty with the same columns.
- `sql/intermediate/*.sql` are views that shape one provider's staging views to the fact grain.
- `sql/marts/*.sql` are tables built incrementally by provider and day range: a provider's
  rows for `[start, end]` are built aside and tested, then swapped in (delete + insert of
  exactly those rows) in one transaction, so analysts never see a half-built table, and a
  provider whose rows fail keeps its previous ones without holding back the others. Such a
  mart has `provider` and `usage_date` columns and holds the providers it reads. A mart
  marked `-- build: whole` is built whole aside on every build that changed anything, tested,
  and swapped in.
- A mart's `-- grain: <columns>` line is its primary key (its columns NOT NULL; on DuckDB only
  NOT NULL and the grain test for the marts as large as the facts: by day, or `-- size: facts`,
  as an in-memory index of their size would not fit a nightly's memory); on Postgres a mart with
  `usage_date` has an index on it. When a mart's SQL (or that of a model it reads)
  changes, the next build makes the whole table again from the raw data, aside, and swaps it
  in: `analytics.model_versions` keeps the digest each table was built with.
- Column comments come from the data dictionary (docs/data_dictionary.md).
- Analysts read while the runner works. On Postgres, a statement that drops, replaces or alters
  a table or view waits for every session holding it (a transaction that read it, until it
  ends): each runs under a `lock_timeout`, tried again a few times, and then the build fails
  naming those sessions (`warehouse.changing`); a view is replaced only when its SQL changed,
  and the incremental marts' rows are swapped with delete + insert, which waits for no reader.
- Which days need building is kept in the warehouse: `analytics.model_loads` lists the raw
  loads already modelled, so any run after a failed or interrupted build repairs it.
- `sql/**/<model>.tests.sql` hold the model tests: `-- test: <name>` then a query that returns
  the offending rows (none = pass). A view's tests run when it is built; a view that fails to
  build or to pass them fails the providers it reads, whose facts then stay as they were.
- A model depends on the models it names (`analytics.<model>`), and reads the raw datasets
  (`raw_<provider>.<table>`) that it or its dependencies name.
- `sql/checks/*.sql` hold checks across models (`-- check: <name>`, a comment saying what a
  row means, then a query returning the offending rows), run by `make check` and the nightly.
- Seeds are tables read from files, not from raw data (e.g. the rate card): every module of
  `SEED_MODULES` gives its `seeds()`, read and checked before a build touches the warehouse,
  written into `analytics.<name>` at the start of every build. A model naming a seed has the
  seed's content in its digest, so changed files remake the tables built from them.

The SQL is written once in the subset DuckDB and Postgres share.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from pipelines import stop
from pipelines.config import Destination
from pipelines.warehouse import (
    SCHEMA,
    WarehouseBusy,
    as_date as _as_date,
    change,
    changing,
    columns as table_columns,
    day as _day,
    engine as _engine,
    existing_tables,
    insert_rows,
    sql_client as _sql_client,
    text as _text,
    utc_now,
)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
DICTIONARY = Path(__file__).resolve().parent.parent / "docs" / "data_dictionary.md"
"""The data dictionary, whose column meanings become the warehouse's column comments."""
FACT_COLUMNS = (
    "usage_date", "provider", "account_id", "account_name", "resource_type",
    "resource_id", "resource_name", "metric", "quantity", "unit",
)
RESOURCE_COLUMNS = (
    "provider", "account_id", "account_name", "resource_type", "resource_id", "resource_name",
    "project_id", "project_name", "profile_id", "profile_name", "plan",
)
"""The columns of every provider's `int_<provider>__resources`, in this order (all text)."""
LAYERS = (("staging", "view"), ("intermediate", "view"), ("marts", "table"))
"""The folders under sql/, in the order they build, and what their models become."""
RAW_REF = re.compile(r"\b(raw_[a-z]+)\.([a-z_0-9]+)\b")
GRAIN = re.compile(r"^--\s*grain:\s*([A-Za-z_0-9, ]+?)\s*$", re.M)
WHOLE = re.compile(r"^--\s*build:\s*whole\s*$", re.M)
FACT_SIZED = re.compile(r"^--\s*size:\s*facts\s*$", re.M)
CAST_COLUMN = re.compile(r"^\s*cast\(.+\s+as\s+([a-z][a-z ]*[a-z](?:\(\d+(?:,\s*\d+)?\))?)\)\s+as\s+([a-z_][a-z_0-9]*),?\s*$", re.M)
"""A staging model's output column: `cast(<expression> as <type>) as <name>` on a line of its own."""


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
    providers: List[str] = field(default_factory=list)
    """The providers whose raw datasets the model reads, itself or through its dependencies."""
    digest: str = ""
    """Of its SQL and that of every model it reads: a changed digest means a table built
    before holds rows of another definition."""

    @property
    def grain(self) -> List[str]:
        """The columns of its `-- grain:` line: the table's primary key."""
        match = GRAIN.search(self.sql)
        return [column.strip() for column in match.group(1).split(",")] if match else []

    @property
    def whole(self) -> bool:
        """A mart built whole on every build (`-- build: whole`), not by provider and day."""
        return self.kind == "table" and bool(WHOLE.search(self.sql))

    @property
    def fact_sized(self) -> bool:
        """A mart with a row per fact row or so (`-- size: facts`), whatever way it is built."""
        return self.incremental or bool(FACT_SIZED.search(self.sql))

    @property
    def incremental(self) -> bool:
        return self.kind == "table" and not self.whole

    @property
    def relation(self) -> str:
        return f"{SCHEMA}.{self.name}"

    @property
    def raw_tables(self) -> List[str]:
        """The raw tables the model names itself."""
        return [f"{schema}.{table}" for schema, table in RAW_REF.findall(self.sql)]

    def empty_sql(self) -> str:
        """The model's columns with no rows, from its `cast(... as <type>) as <name>` lines."""
        columns = CAST_COLUMN.findall(self.sql)
        if not columns:
            raise ModelError(self.name, "its raw table does not exist and it has no `cast(... as <type>) as <name>` "
                                        "column lines to create it empty from")
        return "select " + ", ".join(f"cast(null as {type_}) as {name}" for type_, name in columns) + " where 1 = 0"


PROVIDER_USAGE = re.compile(r"^int_([a-z0-9_]+?)__usage$")
"""Each provider's intermediate model in the fact's shape: `int_<provider>__usage`."""
ALL_USAGE = "int_usage"
"""The union of every provider's `int_<provider>__usage`, made by the runner: the fact reads
it, so a provider is added by its own models and no mart names it."""
PROVIDER_RESOURCES = re.compile(r"^int_([a-z0-9_]+?)__resources$")
"""Each provider's resources with their attributes, in RESOURCE_COLUMNS: `int_<provider>__resources`."""
ALL_RESOURCES = "int_resources"
"""The union of every provider's `int_<provider>__resources` (empty when none has one), made by
the runner for analytics.dim_resource."""


SEED_MODULES: Tuple[str, ...] = ("pipelines.pricing",)
"""The modules whose `seeds()` give the seed tables."""


@dataclass
class Seed:
    """A table written from files ahead of every build: `analytics.<name>`."""

    name: str
    columns: Sequence[Tuple[str, str]]
    """(name, type) of each column."""
    rows: Sequence[tuple]

    @property
    def relation(self) -> str:
        return f"{SCHEMA}.{self.name}"

    @property
    def digest(self) -> str:
        return hashlib.sha256(repr((tuple(self.columns), [tuple(row) for row in self.rows])).encode()).hexdigest()[:16]


def seeds() -> List[Seed]:
    """Every seed, read and checked (a module raises ConfigError on a malformed file)."""
    return [seed for module in SEED_MODULES for seed in importlib.import_module(module).seeds()]


def _write_seeds(client, found: Sequence[Seed]) -> None:
    """Each seed's table made again with its rows, in one transaction."""

    def write() -> None:
        for seed in found:
            client.execute_sql(f"drop table if exists {seed.relation}")
            client.execute_sql(f"create table {seed.relation} ({', '.join(f'{n} {t}' for n, t in seed.columns)})")
            insert_rows(client, seed.relation, [name for name, _ in seed.columns], seed.rows)

    changing(client, [seed.relation for seed in found], write)


def sql_dirs() -> List[Path]:
    """sql/ (or `USAGE_SQL_DIR`), then the models folder of every registered provider that
    brings its own (`Provider.sql_dir`)."""
    import sources

    dirs = [Path(os.environ.get("USAGE_SQL_DIR") or SQL_DIR)]
    dirs += [Path(provider.sql_dir) for provider in sources.providers().values() if provider.sql_dir]
    return dirs


def discover(sql_dir: Optional[Path] = None, seeded: Optional[Sequence[Seed]] = None) -> List[Model]:
    """Every model under `sql_dir` (default: `sql_dirs()`), in dependency order: a model
    depends on the models it names, and its digest takes in the seeds it names (`seeded`,
    default `seeds()`)."""
    seeded = seeds() if seeded is None else seeded
    models: Dict[str, Model] = {}
    for folder_root in [Path(sql_dir)] if sql_dir is not None else sql_dirs():
        for folder, kind in LAYERS:
            for path in sorted((folder_root / folder).glob("*.sql")):
                if path.name.endswith(".tests.sql"):
                    continue
                name = path.stem
                tests_path = path.with_name(f"{name}.tests.sql")
                tests = parse_tests(tests_path.read_text()) if tests_path.exists() else []
                models[name] = Model(name, path, kind, path.read_text().strip().rstrip(";"), tests)
    usage = sorted(name for name in models if PROVIDER_USAGE.match(name))
    if usage:
        union = "\nunion all\n".join(f"select * from {SCHEMA}.{name}" for name in usage)
        models[ALL_USAGE] = Model(ALL_USAGE, Path(ALL_USAGE), "view", union)
    resources = sorted(name for name in models if PROVIDER_RESOURCES.match(name))
    wanted = any(re.search(rf"\b{SCHEMA}\.{ALL_RESOURCES}\b", model.sql) for model in models.values())
    union = "\nunion all\n".join(f"select {', '.join(RESOURCE_COLUMNS)} from {SCHEMA}.{name}" for name in resources)
    if wanted:
        models[ALL_RESOURCES] = Model(ALL_RESOURCES, Path(ALL_RESOURCES), "view", union or (
            "select " + ", ".join(f"cast(null as varchar) as {column}" for column in RESOURCE_COLUMNS) + " where 1 = 0"))
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
        model.providers = sorted(
            {table[len("raw_"):table.index(".")] for table in model.raw_tables}.union(
                *(models[dependency].providers for dependency in model.depends_on))
        )
        digest = hashlib.sha256(model.sql.encode())
        for seed in seeded:
            if re.search(rf"\b{SCHEMA}\.{seed.name}\b", model.sql):
                digest.update(seed.digest.encode())
        for dependency in sorted(model.depends_on):
            digest.update(models[dependency].digest.encode())
        model.digest = digest.hexdigest()[:16]
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
    built: Dict[str, Tuple[dt.date, dt.date]] = field(default_factory=dict)
    """Per provider, the day range whose facts were rebuilt."""
    failed: Dict[str, str] = field(default_factory=dict)
    """Per provider, why its facts were not published (its previous facts stay)."""
    failed_tables: Dict[str, str] = field(default_factory=dict)
    """Per mart built whole, why it was not published (its previous table stays)."""
    remade: List[str] = field(default_factory=list)
    """Marts made whole again because their definition changed."""
    changed: bool = False
    """Whether any provider's rows were swapped in."""

    @property
    def errors(self) -> List[str]:
        return [self.failed[provider] for provider in sorted(self.failed)] + [
            self.failed_tables[name] for name in sorted(self.failed_tables)]


MODEL_LOADS = f"{SCHEMA}.model_loads"
"""The raw load packages whose days the marts already hold, per provider: any load not in it
has days to rebuild, whatever happened to the run that loaded it."""
CREATE_MODEL_LOADS = f"""
create table if not exists {MODEL_LOADS} (
    provider varchar not null,
    load_id varchar not null,
    built_at timestamp not null
)
"""
MODEL_VERSIONS = f"{SCHEMA}.model_versions"
"""Per mart, the digest of the definition its table was built with; per view, that of the SQL
it was last created with."""
CREATE_MODEL_VERSIONS = f"""
create table if not exists {MODEL_VERSIONS} (
    model varchar not null,
    digest varchar not null,
    built_at timestamp not null
)
"""


def providers_of(models: Sequence[Model]) -> List[str]:
    """The providers whose raw datasets (`raw_<provider>`) the models read."""
    return sorted({provider for model in models for provider in model.providers})


def build(dest: Destination, start: Optional[dt.date] = None, end: Optional[dt.date] = None,
          models: Optional[Sequence[Model]] = None, providers: Optional[Sequence[str]] = None) -> BuildReport:
    """Build every model; marts only for days `start..end` (inclusive) when given, else all.

    Each provider's facts are built and tested on their own: a provider whose rows fail a test
    (or whose staging view fails) keeps its previous facts and is named in `report.failed`,
    and the others are published. A build of everything also marks every raw load as modelled.
    """
    seeded = seeds()
    models = list(models) if models is not None else discover(seeded=seeded)
    report = BuildReport(start=start, end=end)
    with _sql_client(dest) as client:
        tables = _prepare(client, models, report, seeded)
        for provider in providers if providers is not None else providers_of(models):
            stop.check()  # a stopped run starts no further provider
            if provider in report.failed:
                continue
            loads = _raw_loads(client, provider, tables) if start is None and end is None else []
            _build_provider(client, models, provider, start, end, loads, report)
        _finish(client, dest, models, report)
    return report


def build_pending(dest: Destination, models: Optional[Sequence[Model]] = None) -> BuildReport:
    """Rebuild, per provider, every day that a raw load not yet modelled touched.

    What was modelled is kept in the warehouse (`analytics.model_loads`) and marked in the
    same transaction as the facts, so a build that never committed (a signal, a full disk, a
    failing test) leaves its loads pending and any later run repairs the days.
    """
    seeded = seeds()
    models = list(models) if models is not None else discover(seeded=seeded)
    report = BuildReport()
    with _sql_client(dest) as client:
        tables = _prepare(client, models, report, seeded)
        for provider in providers_of(models):
            stop.check()  # a stopped run starts no further provider
            loads, days = pending_days(client, provider, tables)
            if provider in report.failed or not loads:
                continue
            first, last = (min(days), max(days)) if days else (None, None)
            if days:
                _build_provider(client, models, provider, first, last, loads, report)
            else:
                _mark_modelled(client, provider, loads)
        _finish(client, dest, models, report)
    if report.built:
        report.start = min(first for first, _ in report.built.values())
        report.end = max(last for _, last in report.built.values())
    return report


def _prepare(client, models: Sequence[Model], report: BuildReport, seeded: Sequence[Seed] = ()) -> set:
    """The schema and the runner's tables, the seeds, every view, and every incremental mart
    current: one whose definition changed is made again whole (aside, then swapped in)."""
    client.execute_sql(f"create schema if not exists {SCHEMA}")
    _write_seeds(client, seeded)
    client.execute_sql(CREATE_MODEL_LOADS)
    client.execute_sql(CREATE_MODEL_VERSIONS)
    tables = existing_tables(client)
    versions = _versions(client)
    _build_views(client, models, tables, versions, report)
    modelled = {provider for (provider,) in client.execute_sql(f"select distinct provider from {MODEL_LOADS}")}
    for model in models:
        if not model.incremental or versions.get(model.name) == model.digest:
            continue
        if model.relation not in tables and not modelled.intersection(model.providers):
            _create_empty(client, model)  # a new warehouse: the pending loads fill it
        else:
            _remake(client, models, model, tables, report)
    return existing_tables(client)


def _create_empty(client, model: Model) -> None:
    aside = _aside(model)
    change(client, aside, f"drop table if exists {aside}")
    _create(client, model, aside, _mart_shape(client, model))
    _swap(client, model, aside)


def _finish(client, dest: Destination, models: Sequence[Model], report: BuildReport) -> None:
    """The marts built whole, when anything changed or they are missing or out of date; then
    the column comments."""
    versions = _versions(client)
    tables = existing_tables(client)
    for model in models:
        stop.check()  # a stopped run starts no further model
        if model.whole and (report.changed or report.remade or model.relation not in tables
                            or versions.get(model.name) != model.digest):
            _build_whole(client, model, report)
    apply_comments(client, dest)


def _versions(client) -> Dict[str, str]:
    return {name: digest for name, digest in client.execute_sql(f"select model, digest from {MODEL_VERSIONS}")}


def _shape(client, model: Model, sql: str) -> List[Tuple[str, str]]:
    """The (column, type) of the rows `sql` gives, as the database types them."""
    probe = f"{SCHEMA}._shape_{model.name}"
    change(client, probe, f"drop table if exists {probe}")
    try:
        change(client, probe, f"create table {probe} as select * from ({sql}) as model_rows where 1 = 0")
        return table_columns(client, probe)
    finally:
        change(client, probe, f"drop table if exists {probe}")


def _mart_shape(client, model: Model) -> List[Tuple[str, str]]:
    """An incremental mart's columns, from one provider's rows (each reads only its own)."""
    return _shape(client, model, _for_provider(model.sql, model.providers[0]) if model.providers else model.sql)


def _create(client, model: Model, relation: str, columns: Sequence[Tuple[str, str]]) -> None:
    """`relation` with the model's columns, its grain NOT NULL and its primary key, and on
    Postgres an index on `usage_date`. Constraint names are unique to this table, so a table
    made aside can take the place of the old one.

    DuckDB keeps a primary key's index (an ART) in memory, tens of MB per million fact rows,
    beyond what a nightly may take: there the marts as large as the facts (those built by day,
    and those marked `-- size: facts`) keep NOT NULL on the grain, and its uniqueness is the
    grain test every build runs before a swap (and `make check`)."""
    grain = model.grain
    unknown = [column for column in grain if column.lower() not in {name.lower() for name, _ in columns}]
    if unknown:
        raise ModelError(model.name, f"its grain names columns it does not have: {', '.join(unknown)}")
    tag = f"{model.name}_{uuid.uuid4().hex[:8]}"
    keyed = {column.lower() for column in grain}  # Postgres folds unquoted names to lower case
    definitions = [f"{name} {type_}{' not null' if name.lower() in keyed else ''}" for name, type_ in columns]
    if grain and (not model.fact_sized or _engine(client) == "postgres"):
        definitions.append(f"constraint pk_{tag} primary key ({', '.join(grain)})")
    change(client, relation, f"create table {relation} ({', '.join(definitions)})")
    if _engine(client) == "postgres" and "usage_date" in {name for name, _ in columns}:
        change(client, relation, f"create index ix_{tag}_usage_date on {relation} (usage_date)")


def _swap(client, model: Model, aside: str) -> None:
    """The table built aside becomes the model's table, in one transaction (`changing`: an
    analyst's session holding the old table makes it wait, and fail, not hang)."""

    def swap() -> None:
        client.execute_sql(f"drop table if exists {model.relation}")
        client.execute_sql(f"alter table {aside} rename to {model.name}")
        _mark_version(client, model.name, model.digest)

    changing(client, [model.relation, aside], swap)


def _mark_version(client, name: str, digest: str) -> None:
    """In the caller's transaction: `name` is built from the definition of `digest`."""
    client.execute_sql(f"delete from {MODEL_VERSIONS} where model = {_text(name)}")
    insert_rows(client, MODEL_VERSIONS, ("model", "digest", "built_at"), [(name, digest, utc_now())])


def _aside(model: Model) -> str:
    return f"{SCHEMA}._next_{model.name}"


def _remake(client, models: Sequence[Model], model: Model, tables: set, report: BuildReport) -> None:
    """An incremental mart whose definition changed (or that was lost), made whole
    from the raw data aside, provider by provider with its tests, then swapped in. A provider
    whose rows fail keeps its rows of the old table where the old table has the same columns."""
    aside = _aside(model)
    try:
        change(client, aside, f"drop table if exists {aside}")
        columns = _mart_shape(client, model)
        _create(client, model, aside, columns)
    except WarehouseBusy:
        raise
    except Exception as exc:  # noqa: BLE001 - the database's message, on one line
        for provider in model.providers:
            report.failed.setdefault(provider, str(ModelError(model.name, " ".join(str(exc).split())[:300])))
        return
    names = [name for name, _ in columns]
    old = set()
    if model.relation in tables:
        old = {name for name, _ in table_columns(client, model.relation)}
    for provider in model.providers:
        if provider not in report.failed:
            _build_provider(client, [model], provider, None, None, [], report, target=aside)
        if provider in report.failed and set(names) <= old:
            listed = ", ".join(names)
            client.execute_sql(f"insert into {aside} ({listed}) select {listed} from {model.relation}"
                               f" where provider = {_text(provider)}")
    _swap(client, model, aside)
    report.remade.append(model.name)


def _build_whole(client, model: Model, report: BuildReport) -> None:
    """A mart built whole aside, tested, then swapped in; on failure the old table stays."""
    aside = _aside(model)
    try:
        change(client, aside, f"drop table if exists {aside}")
        columns = _shape(client, model, model.sql)
        _create(client, model, aside, columns)
        listed = ", ".join(name for name, _ in columns)
        client.execute_sql(f"insert into {aside} ({listed}) select {listed} from ({model.sql}) as model_rows")
        failures = run_tests(client, model, relation=aside)
        if failures:
            raise ModelError(model.name, "its rows fail its tests, so the previous table stays: " + "; ".join(failures))
        _swap(client, model, aside)
    except Exception as exc:  # noqa: BLE001 - the database's message, on one line
        change(client, aside, f"drop table if exists {aside}")
        if isinstance(exc, WarehouseBusy):
            raise
        error = exc if isinstance(exc, ModelError) else ModelError(model.name, " ".join(str(exc).split())[:300])
        report.failed_tables[model.name] = str(error)
        return
    if model.name not in report.models:
        report.models.append(model.name)


def _build_views(client, models: Sequence[Model], tables: set, versions: Dict[str, str], report: BuildReport) -> None:
    """Every view, then its tests; a view that fails either marks the providers it reads as
    failed."""
    present = set(tables)
    for model in models:
        if model.kind != "view":
            continue
        try:
            if _build_view(client, model, tables, present, versions, report):
                present = existing_tables(client)  # the views over it went with it
            failures = run_tests(client, model)
        except WarehouseBusy:
            raise
        except Exception as exc:  # noqa: BLE001 - the database's message, on one line
            error = str(ModelError(model.name, " ".join(str(exc).split())[:300]))
        else:
            if not failures:
                report.models.append(model.name)
                continue
            error = str(ModelError(model.name, "its rows fail its tests, so the facts over it stay as they were: " + "; ".join(failures)))
        for provider in model.providers:
            report.failed.setdefault(provider, error)


def provider_datasets(provider: str, tables: set) -> List[str]:
    """The provider's raw datasets in the warehouse: `raw_<provider>`, and one per account of
    several (`raw_<provider>_<account>`), each a dlt dataset with its `_dlt_loads` (dlt's
    staging datasets have none). A dataset of another provider whose name extends this one's
    (`raw_<provider>_x...` of a provider `<provider>_x`) is not this provider's."""
    import sources

    others = [name for name in sources.names() if name != provider and name.startswith(f"{provider}_")]
    pattern = re.compile(rf"^raw_{re.escape(provider)}(_[a-z0-9_]+)?$")
    found = set()
    for table in tables:
        dataset = table.split(".")[0]
        if table.endswith("._dlt_loads") and pattern.match(dataset) and not any(
            dataset == f"raw_{other}" or dataset.startswith(f"raw_{other}_") for other in others
        ):
            found.add(dataset)
    return sorted(found)


def dataset_tables(client, dataset: str, tables: set) -> List[str]:
    """One dataset's raw tables that hold usage days (dlt's own tables left out)."""
    if f"{dataset}._dlt_loads" not in tables:
        return []
    rows = client.execute_sql(
        "select table_name from information_schema.columns "
        f"where table_schema = {_text(dataset)} and column_name = 'usage_date' order by table_name"
    )
    return [f"{dataset}.{name}" for (name,) in rows if not name.startswith("_dlt")]


def _raw_tables(client, provider: str, tables: set) -> List[str]:
    """The provider's raw tables that hold usage days, over all its accounts' datasets."""
    return [table for dataset in provider_datasets(provider, tables) for table in dataset_tables(client, dataset, tables)]


def _raw_loads(client, provider: str, tables: set) -> List[str]:
    return [load_id for dataset in provider_datasets(provider, tables)
            for (load_id,) in client.execute_sql(f"select load_id from {dataset}._dlt_loads where status = 0")]


def pending_days(client, provider: str, tables: Optional[set] = None) -> Tuple[List[str], List[dt.date]]:
    """(raw loads of the provider, any account's, not modelled yet; the days they hold rows for)."""
    tables = tables if tables is not None else existing_tables(client)
    modelled = set()
    if MODEL_LOADS in tables:
        modelled = {load_id for (load_id,) in client.execute_sql(
            f"select load_id from {MODEL_LOADS} where provider = {_text(provider)}")}
    loads = [load_id for load_id in _raw_loads(client, provider, tables) if load_id not in modelled]
    if not loads:
        return [], []
    listed = ", ".join(_text(load_id) for load_id in loads)
    days: set = set()
    for table in _raw_tables(client, provider, tables):
        days.update(
            _as_date(day) for (day,) in client.execute_sql(f"select distinct usage_date from {table} where _dlt_load_id in ({listed})")
        )
    return loads, sorted(days)


def _mark_modelled(client, provider: str, loads: Sequence[str]) -> None:
    now = utc_now()
    insert_rows(client, MODEL_LOADS, ("provider", "load_id", "built_at"), [(provider, load_id, now) for load_id in loads])


def _build_view(client, model: Model, tables: set, present: set, versions: Dict[str, str], report: BuildReport) -> bool:
    """A view whose SQL changed (or that is missing) is replaced in place, so the views over it
    stay; one whose columns changed is dropped with the views over it (Postgres keeps no view
    over a dropped one), and those are rebuilt after it, in dependency order: returns whether
    it was. A view already created with the same SQL is left alone: replacing it would wait for
    every session reading it (on Postgres, an analyst's transaction that read it holds it until
    it ends), for nothing."""
    body = _over_accounts(model, tables)
    if body is None:
        body = model.empty_sql()
        report.empty_views.append(model.name)
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    if model.relation in present and versions.get(model.name) == digest:
        return False

    def replace() -> None:
        client.execute_sql(f"create or replace view {model.relation} as {body}")
        _mark_version(client, model.name, digest)

    def remake() -> None:
        client.execute_sql(f"drop view if exists {model.relation} cascade")
        client.execute_sql(f"create view {model.relation} as {body}")
        _mark_version(client, model.name, digest)

    try:
        changing(client, [model.relation], replace)
        return False
    except WarehouseBusy:
        raise
    except Exception:  # noqa: BLE001 - Postgres cannot replace a view's columns; the retry says why it failed
        changing(client, [model.relation], remake)
        return True


def _over_accounts(model: Model, tables: set) -> Optional[str]:
    """The model's SQL over every account of its provider: once per raw dataset that holds its
    tables (`raw_<provider>`, `raw_<provider>_<account>`), unioned; None when none does.

    A staging model reads one provider's raw tables and only renames and casts, so the same
    select over each account's dataset gives that account's rows."""
    if not model.raw_tables:
        return model.sql
    schemas = sorted({table.split(".")[0] for table in model.raw_tables})
    if len(schemas) != 1:
        return model.sql if all(table in tables for table in model.raw_tables) else None
    schema = schemas[0]
    bodies = []
    for dataset in provider_datasets(schema[len("raw_"):], tables) or [schema]:
        if all(f"{dataset}.{table.split('.', 1)[1]}" in tables for table in model.raw_tables):
            bodies.append(re.sub(rf"\b{schema}\.", f"{dataset}.", model.sql))
    if not bodies:
        return None
    return bodies[0] if len(bodies) == 1 else "\nunion all\n".join(f"select * from ({body}) as account_{i}" for i, body in enumerate(bodies))


def _for_provider(sql: str, provider: str) -> str:
    """A mart's SQL reading only the provider's own usage model: a filter on `provider` over the
    union of every provider's is not pushed into its branches, which would build all of them."""
    return re.sub(rf"\b{SCHEMA}\.{ALL_USAGE}\b", f"{SCHEMA}.int_{provider}__usage", sql)


def _candidate(model: Model, provider: str) -> str:
    return f"{SCHEMA}._candidate_{model.name}_{provider}"


BUILD_SPAN_DAYS = 10
"""Days of a provider's rows built at a time: the memory a build needs (the joins of a day's
usage with its parameters) stays that of a few days, whatever the range."""


def _where(provider: str, start: Optional[dt.date], end: Optional[dt.date]) -> str:
    bounds = [f"provider = {_text(provider)}"]
    if start is not None:
        bounds.append(f"usage_date >= {_day(start)}")
    if end is not None:
        bounds.append(f"usage_date <= {_day(end)}")
    return " where " + " and ".join(bounds)


def _spans(client, provider: str, start: Optional[dt.date], end: Optional[dt.date]) -> List[Tuple[Optional[dt.date], Optional[dt.date]]]:
    """`start..end` (an open end: the raw data's first or last day) cut into spans of
    `BUILD_SPAN_DAYS`."""
    from sources import windows

    if start is None or end is None:
        bounds = [client.execute_sql(f"select min(usage_date), max(usage_date) from {table}")[0]
                  for table in _raw_tables(client, provider, existing_tables(client))]
        firsts = [_as_date(first) for first, _ in bounds if first is not None]
        lasts = [_as_date(last) for _, last in bounds if last is not None]
        if not firsts:
            return [(start, end)]
        start = start or min(firsts)
        end = end or max(lasts)
    if start > end:
        return []
    return [(span.first, span.last) for span in windows.split(start, end, BUILD_SPAN_DAYS)]


def _build_provider(client, models: Sequence[Model], provider: str, start: Optional[dt.date], end: Optional[dt.date],
                    loads: Sequence[str], report: BuildReport, target: Optional[str] = None) -> None:
    """One provider's rows of every incremental mart it feeds for `start..end`: built aside and
    tested first, then swapped in (delete + insert of exactly those rows) in one transaction
    that also marks `loads` as modelled. On failure nothing of it is published and the provider
    is named. `target` writes them into that table (a mart made aside) instead."""
    where = _where(provider, start, end)
    marts = [model for model in models if model.incremental and provider in model.providers]
    built = []
    try:
        for model in marts:
            sql = _for_provider(model.sql, provider)
            candidate = _candidate(model, provider)
            change(client, candidate, f"drop table if exists {candidate}")
            try:
                change(client, candidate, f"create table {candidate} as select * from ({sql}) as model_rows where 1 = 0")
                for span in _spans(client, provider, start, end):
                    client.execute_sql(f"insert into {candidate} select * from ({sql}) as model_rows{_where(provider, *span)}")
            except WarehouseBusy:
                raise
            except Exception as exc:  # noqa: BLE001 - the database's message, on one line
                raise ModelError(model.name, f"{provider}: " + " ".join(str(exc).split())[:300]) from None
            built.append((model, candidate))
            failures = run_tests(client, model, relation=candidate)
            if failures:
                raise ModelError(model.name, f"{provider}'s rows fail its tests, so its previous facts stay: " + "; ".join(failures))

        def publish() -> int:
            rows = 0
            for model, candidate in built:
                relation = target or model.relation
                columns = ", ".join(name for name, _ in table_columns(client, candidate))
                client.execute_sql(f"delete from {relation}{where}")
                client.execute_sql(f"insert into {relation} ({columns}) select {columns} from {candidate}")
                (count,), = client.execute_sql(f"select count(*) from {candidate}")
                rows += int(count)
            if loads:
                _mark_modelled(client, provider, loads)
            # a run stopped meanwhile publishes nothing more: this rolls back, and the loads
            # stay pending for the next run
            stop.check()
            return rows

        report.rows += changing(client, [target or model.relation for model, _ in built] + [MODEL_LOADS], publish)
        report.changed = True
        if start is not None and end is not None and target is None:
            report.built[provider] = (start, end)
        for model in marts:
            if model.name not in report.models:
                report.models.append(model.name)
    except ModelError as exc:
        report.failed[provider] = str(exc)
    finally:
        for _, candidate in built:
            change(client, candidate, f"drop table if exists {candidate}")


def run_tests(client, model: Model, relation: Optional[str] = None) -> List[str]:
    """The model's tests (on `relation` instead of the model's table when given); each
    failure as `<test>: <n> rows, e.g. <first row>`."""
    failures = []
    for name, sql in model.tests:
        if relation is not None:
            sql = re.sub(rf"\b{SCHEMA}\.{model.name}\b", relation, sql)
        rows = client.execute_sql(sql) or []
        if rows:
            failures.append(f"test {name}: {len(rows)} offending rows, e.g. {tuple(rows[0])}")
    return failures


def test_all(dest: Destination, models: Optional[Sequence[Model]] = None) -> List[str]:
    """Run every model test against what is built, then the checks across models; the list of
    failures."""
    failures = []
    with _sql_client(dest) as client:
        tables = existing_tables(client)
        for model in models if models is not None else discover():
            if model.relation not in tables:
                continue  # never built: the build that failed said why
            failures += [f"{model.name}: {f}" for f in run_tests(client, model)]
        failures += run_checks(client, tables)
    return failures


DICTIONARY_TABLE = re.compile(r"^#{2,4}\s+`?analytics\.([a-z_0-9]+)`?\s*$")
DICTIONARY_ROW = re.compile(r"^\|\s*`([A-Za-z_0-9]+)`\s*\|.*\|\s*([^|]+?)\s*\|\s*$")


def dictionary(path: Optional[Path] = None) -> Dict[str, Dict[str, str]]:
    """table -> column -> meaning, from the data dictionary: a `### analytics.<table>` heading,
    then a `| column | type | meaning |` table whose rows start with the column in backticks."""
    path = path or DICTIONARY
    if not path.exists():
        return {}
    found: Dict[str, Dict[str, str]] = {}
    current: Optional[Dict[str, str]] = None
    for line in path.read_text().splitlines():
        heading = DICTIONARY_TABLE.match(line)
        if heading:
            current = found.setdefault(heading.group(1), {})
        elif line.startswith("#"):
            current = None
        elif current is not None:
            row = DICTIONARY_ROW.match(line)
            if row:
                current[row.group(1)] = row.group(2).replace("`", "")
    return found


def apply_comments(client, dest: Optional[Destination] = None) -> int:
    """The data dictionary's meanings as column comments on the tables of `analytics` (both
    engines show them: DuckDB's `duckdb_columns()`, Postgres' `\\d+`); only those that differ
    are written. Returns how many were."""
    meanings = dictionary()
    if not meanings:
        return 0
    if _engine(client) == "postgres":
        rows = client.execute_sql(
            "select c.relname, a.attname, col_description(c.oid, a.attnum) from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace join pg_attribute a on a.attrelid = c.oid "
            f"where n.nspname = {_text(SCHEMA)} and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped")
    else:
        rows = client.execute_sql(
            "select c.table_name, c.column_name, c.comment from duckdb_columns() c join duckdb_tables() t "
            "on t.database_name = c.database_name and t.schema_name = c.schema_name and t.table_name = c.table_name "
            f"where c.schema_name = {_text(SCHEMA)} and c.database_name = current_database()")
    written = 0
    for table, column, comment in rows:
        meaning = meanings.get(table, {}).get(column)
        if meaning and meaning != comment:
            change(client, f"{SCHEMA}.{table}", f"comment on column {SCHEMA}.{table}.{column} is {_text(meaning)}")
            written += 1
    return written


CHECKS_DIR = "checks"
"""The folder under sql/ with the checks across models."""


@dataclass
class Check:
    name: str
    meaning: str
    """What an offending row means, from the comment lines under its header."""
    sql: str


def discover_checks() -> List[Check]:
    """Every `-- check: <name>` of `sql/checks/*.sql` (and of providers' own sql folders)."""
    checks = []
    for folder in sql_dirs():
        for path in sorted((folder / CHECKS_DIR).glob("*.sql")):
            for chunk in re.split(r"^--\s*check:\s*", path.read_text(), flags=re.M)[1:]:
                name, _, body = chunk.partition("\n")
                meaning = " ".join(line.lstrip("- ").strip() for line in body.splitlines()
                                   if line.startswith("--")).strip()
                checks.append(Check(name.strip(), meaning, body.strip().rstrip(";")))
    return checks


def run_checks(client, tables: Optional[set] = None) -> List[str]:
    """Each failing check as one line: its meaning, how many rows, and the first few in full
    (`column=value`). A check over a table not built yet is skipped."""
    tables = tables if tables is not None else existing_tables(client)
    failures = []
    for check in discover_checks():
        named = re.findall(rf"\b{SCHEMA}\.([a-z_0-9]+)\b", check.sql)
        if any(f"{SCHEMA}.{name}" not in tables for name in named):
            continue
        with client.execute_query(check.sql) as cursor:
            names = [column[0] for column in cursor.description]
            rows = cursor.fetchall()
        if rows:
            shown = "; ".join(", ".join(f"{name}={value}" for name, value in zip(names, row)) for row in rows[:3])
            failures.append(f"check {check.name}: {len(rows)} rows ({check.meaning}), e.g. {shown}")
    return failures
