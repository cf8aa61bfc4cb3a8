-- Cost by team and provider, this month so far (through yesterday), in the reporting currency.
-- Reads current_date once, in the as_of CTE: replace it with a day (date '2026-03-11') to run
-- the query as of that day.
with

as_of as (
    select current_date as today
)

select
    costs.team,
    costs.provider,
    costs.reporting_currency,
    sum(costs.reporting_cost) as reporting_cost,
    count(*) - count(costs.cost) as unpriced_rows
from analytics.fct_daily_cost as costs
cross join as_of
where costs.usage_date >= cast(date_trunc('month', as_of.today - 1) as date)
  and costs.usage_date < as_of.today
group by costs.team, costs.provider, costs.reporting_currency
order by reporting_cost desc nulls last, costs.team, costs.provider
