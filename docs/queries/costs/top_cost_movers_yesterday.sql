-- The resources whose cost changed most from the day before yesterday to yesterday, in the
-- reporting currency (top 20 by absolute change). Reads current_date once, in the as_of CTE:
-- replace it with a day (date '2026-03-11') to run the query as of that day.
with

as_of as (
    select current_date as today
),

days as (
    select
        costs.provider,
        costs.account_id,
        costs.resource_type,
        costs.resource_id,
        sum(case when costs.usage_date = as_of.today - 1 then costs.reporting_cost else 0 end) as yesterday,
        sum(case when costs.usage_date = as_of.today - 2 then costs.reporting_cost else 0 end) as day_before
    from analytics.fct_daily_cost as costs
    cross join as_of
    where costs.usage_date in (as_of.today - 1, as_of.today - 2)
      and costs.reporting_cost is not null
    group by costs.provider, costs.account_id, costs.resource_type, costs.resource_id
)

select
    provider,
    account_id,
    resource_type,
    resource_id,
    day_before,
    yesterday,
    yesterday - day_before as change
from days
order by abs(yesterday - day_before) desc, provider, account_id, resource_type, resource_id
limit 20
