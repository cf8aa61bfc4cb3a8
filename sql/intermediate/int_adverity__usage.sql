-- Adverity in the fact's shape: each day x workspace x datastream row becomes one row per
-- metric (`unique_rows`, `total_rows`). `account_name` is the workspace's name as the row gives
-- it, else the latest the workspace had (a row can come without one); `resource_name` the
-- datastream's name where the API gives one.
with

usage as (
    select * from analytics.stg_adverity__usage
),

workspaces as (
    select * from analytics.int_adverity__workspaces
),

named as (
    select
        usage.usage_date,
        usage.account_id,
        coalesce(usage.account_name, workspaces.account_name) as account_name,
        usage.datastream_key,
        usage.datastream_name,
        usage.unique_rows,
        usage.total_rows
    from usage
    left join workspaces
        on workspaces.account_id = usage.account_id
),

metrics as (
    select
        usage_date,
        account_id,
        account_name,
        datastream_key,
        datastream_name,
        'unique_rows' as metric,
        unique_rows as quantity
    from named
    union all
    select
        usage_date,
        account_id,
        account_name,
        datastream_key,
        datastream_name,
        'total_rows' as metric,
        total_rows as quantity
    from named
)

select
    usage_date,
    cast('adverity' as varchar) as provider,
    account_id,
    account_name,
    cast('datastream' as varchar) as resource_type,
    datastream_key as resource_id,
    cast(datastream_name as varchar) as resource_name,
    cast(metric as varchar) as metric,
    cast(quantity as double precision) as quantity,
    cast('rows' as varchar) as unit
from metrics
