-- Adverity in the fact's shape: each day x workspace x datastream row becomes one row per
-- metric (`unique_rows`, `total_rows`).
with

usage as (
    select * from analytics.stg_adverity__usage
),

metrics as (
    select
        usage_date,
        account_id,
        account_name,
        datastream_key,
        'unique_rows' as metric,
        unique_rows as quantity
    from usage
    union all
    select
        usage_date,
        account_id,
        account_name,
        datastream_key,
        'total_rows' as metric,
        total_rows as quantity
    from usage
)

select
    usage_date,
    cast('adverity' as varchar) as provider,
    account_id,
    account_name,
    cast('datastream' as varchar) as resource_type,
    datastream_key as resource_id,
    cast(null as varchar) as resource_name,
    cast(metric as varchar) as metric,
    cast(quantity as double precision) as quantity,
    cast('rows' as varchar) as unit
from metrics
