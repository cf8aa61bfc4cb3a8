-- Top resources over the last 7 complete UTC days (the 7 days before today, today excluded):
-- per provider, metric and unit, the ten resources with the largest total, with the days on
-- which they had usage (a quantity above 0).
--
-- One metric at a time: a total is one metric of one resource in one unit, summed over the days
-- of analytics.fct_daily_usage, which holds leaf usage only (Rafay instances, never the profile
-- rollups of analytics.rafay_profile_usage; Bronto logs), so nothing is counted twice. A resource
-- is (account_id, resource_type, resource_id): Adverity's `unattributed` of two workspaces are two
-- resources. Adverity's `unique_rows` is left out: Adverity counts unique rows per datastream per
-- month, so the sum of 7 days would count rows seen on several days more than once (month figures:
-- month_to_date_by_account.sql).
--
-- Columns: provider, metric, unit, resource_rank (1 = largest), account_id, resource_type,
-- resource_id, resource_name, quantity (the 7 days' total, in `unit`), active_days.
--
-- As of another day: `current_date` is read once, in the as_of CTE below. Replace it with a
-- literal (`select date '2026-03-01' as today`) for the 7 days before that day.
-- Days are UTC: run it in a session whose time zone is UTC.
with

as_of as (
    select current_date as today
),

totals as (
    select
        fct.provider,
        fct.metric,
        fct.unit,
        fct.account_id,
        fct.resource_type,
        fct.resource_id,
        max(fct.resource_name) as resource_name,
        sum(fct.quantity) as quantity,
        count(distinct case when fct.quantity > 0 then fct.usage_date end) as active_days
    from analytics.fct_daily_usage as fct
    inner join as_of
        on fct.usage_date between as_of.today - 7 and as_of.today - 1
    where not (fct.provider = 'adverity' and fct.metric = 'unique_rows')
    group by fct.provider, fct.metric, fct.unit, fct.account_id, fct.resource_type, fct.resource_id
),

ranked as (
    select
        provider,
        metric,
        unit,
        account_id,
        resource_type,
        resource_id,
        resource_name,
        quantity,
        active_days,
        row_number() over (
            partition by provider, metric, unit
            order by quantity desc, account_id, resource_type, resource_id
        ) as resource_rank
    from totals
)

select
    provider,
    metric,
    unit,
    resource_rank,
    account_id,
    resource_type,
    resource_id,
    resource_name,
    quantity,
    active_days
from ranked
where resource_rank <= 10
order by provider, metric, unit, resource_rank
