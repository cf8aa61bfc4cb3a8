-- Bronto in the fact's shape: the bytes of each UTC day and usage type, summed over the
-- day's slices (each slice holds only its share of the day, so no byte counts twice).
with

slices as (
    select * from analytics.stg_bronto__usage_slices
),

daily as (
    select
        usage_date,
        account_id,
        usage_type,
        sum(day_bytes) as quantity
    from slices
    group by usage_date, account_id, usage_type
)

select
    usage_date,
    cast('bronto' as varchar) as provider,
    account_id,
    cast(null as varchar) as account_name,
    cast('organization' as varchar) as resource_type,
    account_id as resource_id,
    cast(null as varchar) as resource_name,
    cast(usage_type || '_bytes' as varchar) as metric,
    cast(quantity as double precision) as quantity,
    cast('bytes' as varchar) as unit
from daily
