"""A fifth provider, added from test code: one dlt source, one simulator, its own models.

Nothing in `pipelines/` names a provider; registering a `Provider` is all it takes for the
nightly, a backfill, the models, the completeness check and `status` to handle it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import dlt
import pyarrow as pa
import pytest

import sources
from pipelines import config
from pipelines.__main__ import main
from simulators.base import Request, Response, Simulator
from sources import windows
from sources.http import ProviderClient
from sources.provider import Provider
from tests.conftest import query, yesterday

TOY = "toy"
GADGETS = ("g-1", "g-2", "g-3")


class ToySimulator(Simulator):
    """`GET /v1/usage?from=YYYY-MM-DD&to=YYYY-MM-DD` (inclusive), header `Toy-Key`: one row
    per gadget and day, `{"rows": [{"day", "gadget", "widgets"}]}`."""

    provider = TOY

    def __init__(self, api_key: str, seed: int = 0, **kwargs: Any):
        super().__init__(api_key, seed=seed, **kwargs)
        self.routes["/v1/usage"] = self.usage

    def authorized(self, headers: Dict[str, str]) -> Optional[Response]:
        return None if headers.get("toy-key") == self.api_key else Response(401, {"error": "bad key"})

    def widgets(self, day: dt.date, gadget: str) -> int:
        return self.rand(day.isoformat(), gadget) % 1000

    def usage(self, request: Request) -> Response:
        first, last = dt.date.fromisoformat(request.one("from")), dt.date.fromisoformat(request.one("to"))
        last = min(last, self.today() - dt.timedelta(days=1))
        rows = [{"day": day.isoformat(), "gadget": g, "widgets": self.widgets(day, g)}
                for day in windows.days(first, last) for g in GADGETS]
        return Response(200, {"rows": rows})

    def truth(self, first: dt.date, last: dt.date) -> List[Dict[str, Any]]:
        return [{"usage_date": day, "account_id": "toy-co", "resource_type": "gadget", "resource_id": g,
                 "metric": "widgets", "quantity": float(self.widgets(day, g))}
                for day in windows.days(first, last) for g in GADGETS]


SCHEMA = pa.schema([pa.field("usage_date", pa.date32()), pa.field("gadget", pa.string()), pa.field("widgets", pa.int64())])


@dlt.source(name=TOY, section=TOY, max_table_nesting=0)
def toy_source(api_key: str = dlt.secrets.value, base_url: str = dlt.config.value, start_date: Any = None,
               end_date: Any = None, lookback_days: int = 2) -> Any:
    """Toy usage, by UTC day."""
    client = ProviderClient(TOY, base_url, headers={"Toy-Key": api_key}, key_setting="SOURCES__TOY__API_KEY")
    first = windows.parse_day(start_date) if start_date is not None else windows.default_start_date()
    last = windows.parse_day(end_date) if end_date is not None else None

    @dlt.resource(name="usage", write_disposition={"disposition": "merge", "strategy": "delete-insert"},
                  merge_key="usage_date")
    def usage(usage_date=windows.day_cursor(first, last, lookback_days)) -> Iterator[pa.Table]:
        window = windows.range_to_load(usage_date)
        if window is None:
            return
        body = client.get_json("/v1/usage", {"from": window.first.isoformat(), "to": window.last.isoformat()}, window)
        rows = [{"usage_date": dt.date.fromisoformat(r["day"]), "gadget": r["gadget"], "widgets": r["widgets"]}
                for r in body["rows"]]
        if rows:
            yield pa.Table.from_pylist(rows, schema=SCHEMA)

    return usage


STAGING = """
with

source as (
    select * from raw_toy.usage
),

renamed as (
    select
        cast(usage_date as date) as usage_date,
        cast(gadget as varchar) as gadget_id,
        cast(widgets as double precision) as widgets
    from source
)

select * from renamed
"""
INTERMEDIATE = """
select
    usage_date,
    cast('toy' as varchar) as provider,
    cast('toy-co' as varchar) as account_id,
    cast(null as varchar) as account_name,
    cast('gadget' as varchar) as resource_type,
    gadget_id as resource_id,
    cast(null as varchar) as resource_name,
    cast('widgets' as varchar) as metric,
    widgets as quantity,
    cast('widgets' as varchar) as unit
from analytics.stg_toy__usage
"""


@pytest.fixture
def toy(tmp_path: Path, monkeypatch, api_key):
    sql = tmp_path / "toy_sql"
    (sql / "staging").mkdir(parents=True)
    (sql / "intermediate").mkdir()
    (sql / "staging" / "stg_toy__usage.sql").write_text(STAGING)
    (sql / "intermediate" / "int_toy__usage.sql").write_text(INTERMEDIATE)
    sources.register(Provider(
        name=TOY, source=toy_source, limits=windows.ApiLimits(history_days=30, max_window_days=10),
        required_settings=("api_key", "base_url"), simulator=f"{__name__}:ToySimulator", sql_dir=str(sql),
    ))
    sim = ToySimulator(api_key=api_key, seed=3).start()
    monkeypatch.setenv("SOURCES__TOY__API_KEY", api_key)
    monkeypatch.setenv("SOURCES__TOY__BASE_URL", sim.base_url)
    try:
        yield sim
    finally:
        sim.stop()
        sources.unregister(TOY)


def toy_facts(destination: str = "duckdb") -> Dict[tuple, float]:
    rows = query(destination, "select usage_date, account_id, resource_type, resource_id, metric, quantity "
                              "from analytics.fct_daily_usage where provider = 'toy'")
    return {tuple(row[:5]): float(row[5]) for row in rows}


def truth(sim: ToySimulator, first: dt.date, last: dt.date) -> Dict[tuple, float]:
    return {(r["usage_date"], r["account_id"], r["resource_type"], r["resource_id"], r["metric"]): r["quantity"]
            for r in sim.truth(first, last)}


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_a_fifth_provider_runs_nightly_backfill_and_models_without_touching_pipelines(toy, destination, request,
                                                                                      monkeypatch, capsys):
    if destination == "postgres":
        request.getfixturevalue("postgres_url")
    start = yesterday() - dt.timedelta(days=4)
    monkeypatch.setenv("SOURCES__TOY__START_DATE", start.isoformat())
    assert TOY in config.provider_names()

    assert main(["nightly", "--providers", "toy", "--destination", destination]) == config.EXIT_OK
    assert toy_facts(destination) == truth(toy, start, yesterday())

    first = start - dt.timedelta(days=12)  # two of the toy API's 10-day windows
    assert main(["backfill", "--provider", "toy", "--start", first.isoformat(),
                 "--end", (start - dt.timedelta(days=1)).isoformat(), "--destination", destination]) == config.EXIT_OK
    windows_asked = [(r.one("from"), r.one("to")) for r in toy.requests][-2:]
    assert windows_asked == [(first.isoformat(), (first + dt.timedelta(days=9)).isoformat()),
                             ((first + dt.timedelta(days=10)).isoformat(), (start - dt.timedelta(days=1)).isoformat())]
    assert main(["models", "--destination", destination]) == config.EXIT_OK
    assert toy_facts(destination) == truth(toy, first, yesterday())
    assert main(["check", "--destination", destination]) == config.EXIT_OK
    statuses = query(destination, "select distinct status from analytics.usage_completeness where provider = 'toy'")
    assert statuses == [("loaded",)]
    # a range its API cannot serve is refused by the toy's own limits
    capsys.readouterr()
    too_old = (yesterday() - dt.timedelta(days=40)).isoformat()
    assert main(["backfill", "--provider", "toy", "--start", too_old, "--end", too_old]) == config.EXIT_CONFIG
    assert "toy keeps daily data for 30 days" in capsys.readouterr().err
