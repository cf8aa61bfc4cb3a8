-- Daily usage drivers: for each of the last 7 complete UTC days (today excluded) and each
-- provider account and metric, the three resources with the largest quantity, the account's
-- total of that metric that day, and each resource's share of it. Quantities in the metric's
-- own unit, not costs: no price is joined here.
--
-- One metric at a time: a day's total is one metric in one unit of one provider account, summed
-- over its resources in analytics.fct_daily_usage. That table holds leaf usage only (Rafay
-- instances, never the profile rollups of analytics.rafay_profile_usage; Bronto logs), so a
-- share is of usage counted once, and the shares of all of a day's resources add up to 100
-- (before rounding).
-- Adverity's daily `unique_rows` add up over the datastreams of one day (not over days).
--
-- Columns: usage_date, provider, account_id, metric, unit, driver_rank (1 = largest),
-- resource_type, resource_id, resource_name, quantity, day_total, share_of_day_pct (percent of
-- day_total, one decimal; null when the day's total is 0).
--
-- As of another day: `current_date` is read once, in the as_of CTE below. Replace it with a
-- literal (`select date '2026-03-01' as today`) for the 7 days before that day.
-- Days are UTC: run it in a session whose time zone is UTC.
with

as_of as (
    select current_date as today
),

ranked as (
    select
        fct.usage_date,
        fct.provider,
        fct.account_id,
        fct.metric,
        fct.unit,
        fct.resource_type,
        fct.resource_id,
        fct.resource_name,
        fct.quantity,
        sum(fct.quantity) over (
            partition by fct.usage_date, fct.provider, fct.account_id, fct.metric, fct.unit
        ) as day_total,
        row_number() over (
            partition by fct.usage_date, fct.provider, fct.account_id, fct.metric, fct.unit
            order by fct.quantity desc, fct.resource_type, fct.resource_id
        ) as driver_rank
    from analytics.fct_daily_usage as fct
    inner join as_of
        on fct.usage_date between as_of.today - 7 and as_of.today - 1
)

select
    usage_date,
    provider,
    account_id,
    metric,
    unit,
    driver_rank,
    resource_type,
    resource_id,
    resource_name,
    quantity,
    day_total,
    round(cast(100 * quantity / nullif(day_total, 0) as numeric), 1) as share_of_day_pct
from ranked
where driver_rank <= 3
order by usage_date desc, provider, account_id, metric, unit, driver_rank
