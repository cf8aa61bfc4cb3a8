"""Data checks on the warehouse: the model tests plus freshness of every configured provider."""

from __future__ import annotations

import datetime as dt
from typing import List, Optional, Sequence

from pipelines import models
from pipelines.config import Destination
from sources import windows


def freshness(dest: Destination, providers: Sequence[str], day: Optional[dt.date] = None) -> List[str]:
    """Problems: a provider with no rows for `day` (default yesterday), or none at all."""
    day = day or windows.last_complete_day()
    problems = []
    with models._sql_client(dest) as client:
        if f"{models.SCHEMA}.fct_daily_usage" not in models.existing_tables(client):
            return ["analytics.fct_daily_usage does not exist yet; run `make models`"]
        rows = client.execute_sql(
            "select provider, max(usage_date), "
            f"sum(case when usage_date = {models._day(day)} then 1 else 0 end) "
            "from analytics.fct_daily_usage group by provider"
        )
    latest = {provider: (newest, count) for provider, newest, count in rows}
    for provider in providers:
        if provider not in latest:
            problems.append(f"freshness: {provider} has no usage at all in analytics.fct_daily_usage")
        elif not latest[provider][1]:
            problems.append(f"freshness: {provider} has no rows for {day.isoformat()} (newest day {latest[provider][0]})")
    return problems


def run_checks(dest: Destination, providers: Sequence[str]) -> List[str]:
    """Every failing check as one line; empty when the warehouse is healthy."""
    problems = freshness(dest, providers)
    if problems and problems[0].startswith("analytics.fct_daily_usage does not exist"):
        return problems
    return models.test_all(dest) + problems
