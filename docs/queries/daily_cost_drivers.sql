-- Daily cost drivers by provider: for each of the last 7 complete UTC days, each provider and
-- metric, the three resources with the largest quantity and their share of the day's total.
with

daily as (
    select
        usage_date,
        provider,
        metric,
        unit,
        resource_type,
        resource_id,
        resource_name,
        sum(quantity) as quantity
    from analytics.fct_daily_usage
    where usage_date >= current_date - 7
      and usage_date < current_date
    group by usage_date, provider, metric, unit, resource_type, resource_id, resource_name
),

ranked as (
    select
        usage_date,
        provider,
        metric,
        unit,
        resource_type,
        resource_id,
        resource_name,
        quantity,
        sum(quantity) over (partition by usage_date, provider, metric) as day_total,
        row_number() over (
            partition by usage_date, provider, metric
            order by quantity desc, resource_type, resource_id
        ) as driver_rank
    from daily
)

select
    usage_date,
    provider,
    metric,
    unit,
    driver_rank,
    resource_type,
    resource_id,
    resource_name,
    quantity,
    round(cast(100 * quantity / nullif(day_total, 0) as numeric), 1) as share_of_day_pct
from ranked
where driver_rank <= 3
order by usage_date desc, provider, metric, driver_rank
