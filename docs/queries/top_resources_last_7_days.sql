-- Top resources over the last 7 complete UTC days: per provider and metric, the ten resources
-- with the largest total, with the number of days they had usage.
with

last_7_days as (
    select
        provider,
        metric,
        unit,
        resource_type,
        resource_id,
        resource_name,
        sum(quantity) as quantity,
        count(distinct usage_date) as active_days
    from analytics.fct_daily_usage
    where usage_date >= current_date - 7
      and usage_date < current_date
    group by provider, metric, unit, resource_type, resource_id, resource_name
),

ranked as (
    select
        provider,
        metric,
        unit,
        resource_type,
        resource_id,
        resource_name,
        quantity,
        active_days,
        row_number() over (
            partition by provider, metric
            order by quantity desc, resource_type, resource_id
        ) as resource_rank
    from last_7_days
)

select
    provider,
    metric,
    unit,
    resource_rank,
    resource_type,
    resource_id,
    resource_name,
    quantity,
    active_days
from ranked
where resource_rank <= 10
order by provider, metric, resource_rank
