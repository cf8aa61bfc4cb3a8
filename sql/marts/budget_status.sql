-- build: whole
-- grain: scope, month
-- Each budget (analytics.budgets, from PRICING__BUDGETS) against the spend of its scope and month
-- in fct_daily_cost (reporting_cost, the reporting currency): spend through the warehouse's
-- latest day of cost, the month end projected at the pace so far (spend / days elapsed x days of
-- the month), percents of the budget, and whether it crosses the thresholds (80 % projected,
-- 100 % actual). pipelines.pricing.new_budget_crossings() names each crossing once.
with

budgets as (
    select scope, scope_type, scope_value, month, amount, currency from analytics.budgets
),

costs as (
    select * from analytics.fct_daily_cost
),

latest as (
    select max(usage_date) as latest_day from costs
),

periods as (
    select
        budgets.*,
        cast(cast(budgets.month + interval '1 month' as date) - 1 as date) as month_end,
        cast(budgets.month + interval '1 month' as date) - budgets.month as days_in_month,
        latest.latest_day
    from budgets
    cross join latest
),

spent as (
    select
        periods.scope,
        periods.month,
        sum(costs.reporting_cost) as spend,
        sum(case when costs.cost is null then 1 else 0 end) as unpriced_rows,
        sum(case when costs.cost is not null and costs.reporting_cost is null then 1 else 0 end) as unconverted_rows
    from periods
    join costs
        on costs.usage_date >= periods.month
        and costs.usage_date <= periods.month_end
        and (
            periods.scope_type = 'all'
            or (periods.scope_type = 'team' and costs.team = periods.scope_value)
            or (periods.scope_type = 'provider' and costs.provider = periods.scope_value)
        )
    group by periods.scope, periods.month
),

paced as (
    select
        periods.*,
        coalesce(spent.spend, 0) as spend_to_date,
        coalesce(spent.unpriced_rows, 0) as unpriced_rows,
        coalesce(spent.unconverted_rows, 0) as unconverted_rows,
        case
            when periods.latest_day is null or periods.latest_day < periods.month then null
            when periods.latest_day > periods.month_end then periods.month_end
            else periods.latest_day
        end as through_date
    from periods
    left join spent
        on spent.scope = periods.scope
        and spent.month = periods.month
),

projected as (
    select
        paced.*,
        case when through_date is null then 0 else through_date - month + 1 end as days_elapsed,
        case when through_date is null then null
            else spend_to_date / (through_date - month + 1) * days_in_month end as projected_spend
    from paced
)

select
    cast(scope as varchar) as scope,
    cast(month as date) as month,
    cast(scope_type as varchar) as scope_type,
    cast(scope_value as varchar) as scope_value,
    cast(amount as double precision) as budget,
    cast(currency as varchar) as currency,
    cast(through_date as date) as through_date,
    cast(days_elapsed as integer) as days_elapsed,
    cast(days_in_month as integer) as days_in_month,
    cast(spend_to_date as double precision) as spend_to_date,
    cast(projected_spend as double precision) as projected_spend,
    cast(100.0 * spend_to_date / amount as double precision) as percent_of_budget,
    cast(100.0 * projected_spend / amount as double precision) as projected_percent_of_budget,
    cast(coalesce(projected_spend >= 0.8 * amount, false) as boolean) as projected_over_80,
    cast(spend_to_date >= amount as boolean) as actual_over_100,
    cast(unpriced_rows as bigint) as unpriced_rows,
    cast(unconverted_rows as bigint) as unconverted_rows
from projected
