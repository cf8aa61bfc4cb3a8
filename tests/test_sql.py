"""The SQL models read without a warehouse: portable beyond DuckDB and Postgres, every key
tested, unions that line up, staging that only renames and casts."""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import pytest
import sqlglot
from sqlglot import exp

from pipelines import models

MODELS: Dict[str, models.Model] = {model.name: model for model in models.discover()}
WRITTEN = sorted(name for name, model in MODELS.items() if model.path.is_file())
"""The models with a file of their own (the runner's union of the providers' usage has none:
the models it unions are each tested)."""
TARGETS = ("snowflake", "bigquery")


def parse(sql: str) -> exp.Expression:
    return sqlglot.parse_one(sql, read="duckdb", error_level=sqlglot.ErrorLevel.RAISE)


@pytest.mark.parametrize("dialect", TARGETS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_and_its_tests_transpile(name, dialect):
    model = MODELS[name]
    for label, sql in [("model", model.sql), *model.tests]:
        translated = sqlglot.transpile(sql, read="duckdb", write=dialect, error_level=sqlglot.ErrorLevel.RAISE)
        assert len(translated) == 1 and translated[0], f"{name} {label} gave no {dialect} SQL"


def key_tests(model: models.Model) -> Tuple[Optional[set], Optional[set]]:
    """(columns its tests hold unique, columns its tests hold not null) over the model itself."""
    unique = not_null = None
    for _, sql in model.tests:
        query = parse(sql)
        tables = {f"{table.db}.{table.name}" for table in query.find_all(exp.Table)}
        if tables != {model.relation}:
            continue
        group, having, where = query.args.get("group"), query.args.get("having"), query.args.get("where")
        if group is not None and having is not None and isinstance(having.this, exp.GT) \
                and isinstance(having.this.this, exp.Count) and having.this.expression.name == "1":
            unique = {column.name for column in group.expressions}
        elif where is not None and group is None:
            terms = list(where.this.flatten()) if isinstance(where.this, exp.Or) else [where.this]
            if all(isinstance(term, exp.Is) and isinstance(term.expression, exp.Null) for term in terms):
                not_null = {term.this.name for term in terms}
    return unique, not_null


@pytest.mark.parametrize("name", WRITTEN)
def test_every_model_tests_its_key_unique_and_not_null(name):
    model = MODELS[name]
    assert model.path.with_name(f"{name}.tests.sql").exists(), f"{name} has no tests file beside it"
    unique, not_null = key_tests(model)
    assert unique, f"{name}: no test returns the key values held by more than one row (group by ... having count(*) > 1)"
    assert not_null == unique, f"{name}: the not-null test checks {sorted(not_null or [])}, the key is {sorted(unique)}"


@lru_cache(maxsize=None)
def output_columns(name: str) -> Optional[Tuple[str, ...]]:
    """The model's columns in order (None where they come from a raw table's `*`)."""
    return columns(parse(MODELS[name].sql), {})


def columns(query: exp.Expression, scope: Dict[str, Optional[tuple]]) -> Optional[tuple]:
    """A query's output columns; every union in it must give the same columns on each side,
    since unions match columns by position."""
    if isinstance(query, exp.Union):
        left, right = columns(query.this, scope), columns(query.expression, scope)
        assert left is None or right is None or left == right, f"union of {left} and {right}"
        return left or right
    scope = dict(scope)
    for cte in query.ctes:
        scope[cte.alias] = columns(cte.this, scope)
    out: List[str] = []
    for projection in query.expressions:
        if not isinstance(projection, exp.Star):
            out.append(projection.alias_or_name)
            continue
        source = query.args["from_"].this
        if source.db == models.SCHEMA:
            expanded = output_columns(source.name)
        else:
            expanded = scope.get(source.name) if not source.db else None
        if expanded is None:
            return None
        out.extend(expanded)
    return tuple(out)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unions_line_up_their_columns(name):
    assert output_columns(name), f"{name}: its columns cannot be read from the SQL"


def test_marts_declare_their_grain_and_the_runner_can_build_them():
    """Every mart's `-- grain:` is the key its unique test holds (the runner makes it the
    primary key); one built by provider and day has `provider` and `usage_date`."""
    for model in MODELS.values():
        if model.kind != "table":
            continue
        columns = output_columns(model.name)
        assert model.grain and set(model.grain) <= set(columns), f"{model.name}: grain {model.grain} of {columns}"
        assert set(model.grain) == key_tests(model)[0], model.name
        if model.incremental:
            assert {"provider", "usage_date"} <= set(columns), model.name


def test_the_fact_has_the_contract_columns():
    assert output_columns("fct_daily_usage") == models.FACT_COLUMNS


def test_every_resources_model_gives_the_resource_columns():
    for name in MODELS:
        if models.PROVIDER_RESOURCES.match(name):
            assert output_columns(name) == models.RESOURCE_COLUMNS, name


@pytest.mark.parametrize("name", sorted(name for name, model in MODELS.items() if model.path.parent.name == "staging"))
def test_staging_renames_and_casts_one_raw_table(name):
    model = MODELS[name]
    query = parse(model.sql)
    assert len(set(model.raw_tables)) == 1 and not model.depends_on, f"{name} must read one raw table and no model"
    shaping = (exp.Join, exp.Group, exp.Union, exp.Window, exp.AggFunc, exp.Where)
    found = [type(node).__name__ for node in query.walk() if isinstance(node, shaping)]
    assert not found, f"{name} shapes its rows ({', '.join(found)}); that belongs in intermediate/"
    # the runner creates the view empty from these lines when its raw table does not exist yet
    declared = tuple(column for _, column in models.CAST_COLUMN.findall(model.sql))
    assert declared == output_columns(name), f"{name}: its cast lines {declared} are not its columns"
