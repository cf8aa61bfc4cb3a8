-- Adverity daily row usage, one row per day x workspace x datastream x metric.
-- A null datastream (usage the API cannot charge to one) becomes resource_id 'unattributed'.
with

usage as (
    select
        usage_date,
        workspace_id,
        workspace_name,
        datastream_key,
        unique_rows,
        total_rows
    from raw_adverity.usage
),

unique_rows as (
    select
        usage_date,
        workspace_id,
        workspace_name,
        datastream_key,
        'unique_rows' as metric,
        unique_rows as quantity
    from usage
),

total_rows as (
    select
        usage_date,
        workspace_id,
        workspace_name,
        datastream_key,
        'total_rows' as metric,
        total_rows as quantity
    from usage
),

metrics as (
    select * from unique_rows
    union all
    select * from total_rows
)

select
    cast(usage_date as date) as usage_date,
    cast('adverity' as varchar) as provider,
    cast(workspace_id as varchar) as account_id,
    cast(workspace_name as varchar) as account_name,
    cast('datastream' as varchar) as resource_type,
    cast(datastream_key as varchar) as resource_id,
    cast(null as varchar) as resource_name,
    cast(metric as varchar) as metric,
    cast(quantity as double precision) as quantity,
    cast('rows' as varchar) as unit
from metrics
