-- build: whole
-- grain: usage_month, account_id, resource_id, metric
-- Adverity's own figures per month x workspace x datastream: `unique_rows` is counted over the
-- month, so it is not the sum of the month's days in fct_daily_usage; `total_rows` is (and is
-- here too, so that one table answers both). `through_date` is the last day a figure covers:
-- before the month ends, the month to date.
with

months as (
    select * from analytics.stg_adverity__monthly_usage
),

metrics as (
    select usage_month, account_id, account_name, datastream_key, 'unique_rows' as metric,
           unique_rows as quantity, through_date
    from months
    union all
    select usage_month, account_id, account_name, datastream_key, 'total_rows' as metric,
           total_rows as quantity, through_date
    from months
)

select
    cast(usage_month as date) as usage_month,
    cast('adverity' as varchar) as provider,
    cast(account_id as varchar) as account_id,
    cast(account_name as varchar) as account_name,
    cast('datastream' as varchar) as resource_type,
    cast(datastream_key as varchar) as resource_id,
    cast(null as varchar) as resource_name,
    cast(metric as varchar) as metric,
    cast(quantity as double precision) as quantity,
    cast('rows' as varchar) as unit,
    cast(through_date as date) as through_date
from metrics
