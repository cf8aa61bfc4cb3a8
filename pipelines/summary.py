"""The demo's picture of the warehouse, added up the way an analyst may add it up.

`analytics.fct_daily_usage` holds leaf usage only, so a metric's quantity adds up over days,
resources and accounts; but only one metric (in one unit) at a time, never across metrics.
Adverity's `unique_rows` is the exception: Adverity counts unique rows per datastream per
month, so its days do not add up to a month. Its month figures are Adverity's own, from
`analytics.adverity_monthly_usage`, where they add up over the datastreams and accounts of one
month, never over months. `analytics.rafay_profile_usage` holds Rafay's profile rollups of the
instances already in the fact: they are never added to it.
"""

from __future__ import annotations

from typing import List

from pipelines import warehouse
from pipelines.config import Destination

FACT = f"{warehouse.SCHEMA}.fct_daily_usage"
ADVERITY_MONTHLY = f"{warehouse.SCHEMA}.adverity_monthly_usage"
RAFAY_PROFILES = f"{warehouse.SCHEMA}.rafay_profile_usage"
NOT_ADDITIVE_OVER_DAYS = {("adverity", "unique_rows")}
"""(provider, metric) whose daily quantities do not add up over days."""

FACT_SQL = f"""
select provider, metric, unit, count(distinct usage_date), min(usage_date), max(usage_date),
       count(distinct account_id || '/' || resource_type || '/' || resource_id), sum(quantity)
from {FACT}
group by provider, metric, unit
order by provider, metric, unit
"""
MONTHLY_SQL = f"""
select usage_month, metric, unit, max(through_date),
       count(distinct account_id || '/' || resource_id), sum(quantity)
from {ADVERITY_MONTHLY}
where metric = 'unique_rows'
group by usage_month, metric, unit
order by usage_month, metric, unit
"""

FACT_HEADER = f"{'provider':<9} {'metric':<32} {'unit':<13} {'days':>5} {'from':>11} {'to':>11} {'resources':>9} {'total':>18}"
MONTH_HEADER = f"{'provider':<9} {'metric':<32} {'unit':<13} {'month':>7} {'through':>11} {'resources':>9} {'total':>18}"


def fact_summary_lines(dest: Destination) -> List[str]:
    """Per provider and metric (and unit): days, resources and the total of
    `analytics.fct_daily_usage`; Adverity's `unique_rows` per month from
    `analytics.adverity_monthly_usage` instead of a sum of days; and which tables may be summed."""
    with warehouse.sql_client(dest) as client:
        tables = warehouse.existing_tables(client)
        if FACT not in tables:
            return [f"{FACT} is not built yet"]
        facts = client.execute_sql(FACT_SQL)
        months = client.execute_sql(MONTHLY_SQL) if ADVERITY_MONTHLY in tables else None
    lines = [
        f"{FACT}: leaf usage; a metric's total adds up over days, resources and accounts, one metric "
        "(one unit) at a time, never across metrics",
        FACT_HEADER,
    ]
    for provider, metric, unit, days, first, last, resources, total in facts:
        shown = f"{total:>18,.1f}"
        if (provider, metric) in NOT_ADDITIVE_OVER_DAYS:
            shown = f"{'per month below':>18}"
        lines.append(
            f"{provider:<9} {metric:<32} {unit:<13} {days:>5} {str(first):>11} {str(last):>11} {resources:>9} {shown}"
        )
    lines.append("")
    if months is None:
        lines.append(f"{ADVERITY_MONTHLY} is not built yet: Adverity's unique_rows have no month figure here "
                     "(its days do not add up to a month)")
    else:
        lines += [
            f"{ADVERITY_MONTHLY}: Adverity's own month figures; unique_rows adds up over the datastreams "
            "and accounts of one month, never over months",
            MONTH_HEADER,
        ]
        for month, metric, unit, through, resources, total in months:
            lines.append(
                f"{'adverity':<9} {metric:<32} {unit:<13} {str(month)[:7]:>7} {str(through):>11} {resources:>9} {total:>18,.1f}"
            )
    return lines + [
        "",
        f"may be summed: {FACT} (one metric and unit at a time, over days, resources and accounts; "
        f"Adverity's unique_rows not over days), {ADVERITY_MONTHLY} (one metric at a time, over datastreams "
        "and accounts; unique_rows never over months)",
        f"never to be added to them: {RAFAY_PROFILES} (Rafay's profile rollups of the instances in the fact)",
    ]
