-- Bronto in the fact's shape: the bytes of each UTC day, usage type and resource, summed over
-- the resource's slices of the day (a log has one, the day; the organization's slices each hold
-- only their share of the day, so no byte counts twice). A day of a usage type is either per
-- log or, where the API could not list its logs whole, the organization's.
-- Days that only the table of earlier versions holds (`usage_slices`, the organization's slices)
-- are read from it; a day `daily_usage` holds is read from there alone.
with

daily_usage as (
    select * from analytics.stg_bronto__daily_usage
),

legacy_slices as (
    select * from analytics.stg_bronto__usage_slices
),

-- the organization's slices of the days that daily_usage does not hold, in its columns
legacy_only as (
    select
        usage_date,
        account_id,
        usage_type,
        'organization' as resource_type,
        account_id as resource_id,
        cast(null as varchar) as resource_name,
        slice_start,
        slice_end,
        day_bytes
    from legacy_slices
    where not exists (
        select 1
        from daily_usage
        where daily_usage.usage_date = legacy_slices.usage_date
            and daily_usage.account_id = legacy_slices.account_id
            and daily_usage.usage_type = legacy_slices.usage_type
    )
),

slices as (
    select * from daily_usage
    union all
    select * from legacy_only
),

daily as (
    select
        usage_date,
        account_id,
        usage_type,
        resource_type,
        resource_id,
        max(resource_name) as resource_name,
        sum(day_bytes) as quantity
    from slices
    group by usage_date, account_id, usage_type, resource_type, resource_id
)

select
    usage_date,
    cast('bronto' as varchar) as provider,
    account_id,
    cast(null as varchar) as account_name,
    cast(resource_type as varchar) as resource_type,
    resource_id,
    cast(resource_name as varchar) as resource_name,
    cast(usage_type || '_bytes' as varchar) as metric,
    cast(quantity as double precision) as quantity,
    cast('bytes' as varchar) as unit
from daily
