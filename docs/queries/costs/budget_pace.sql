-- This month's budgets: spend so far, the month end at the pace so far, and the thresholds.
-- Reads current_date once, in the as_of CTE: replace it with a day (date '2026-03-11') to run
-- the query as of that day.
with

as_of as (
    select current_date as today
)

select
    status.scope,
    status.budget,
    status.currency,
    status.through_date,
    status.spend_to_date,
    status.projected_spend,
    status.percent_of_budget,
    status.projected_percent_of_budget,
    status.projected_over_80,
    status.actual_over_100
from analytics.budget_status as status
cross join as_of
where status.month = cast(date_trunc('month', as_of.today - 1) as date)
order by status.projected_percent_of_budget desc nulls last, status.scope
