-- Bronto bytes per day and usage type. Each slice row already carries its share of the day
-- (`day_bytes`: a slice that straddles UTC midnight is split in proportion to time), and a
-- day re-fetched by a later run replaced the earlier slices, so summing never double counts.
with

slices as (
    select
        usage_date,
        organization_id,
        usage_type,
        day_bytes
    from raw_bronto.usage_slices
),

daily as (
    select
        usage_date,
        organization_id,
        usage_type,
        sum(day_bytes) as quantity
    from slices
    group by usage_date, organization_id, usage_type
)

select
    cast(usage_date as date) as usage_date,
    cast('bronto' as varchar) as provider,
    cast(organization_id as varchar) as account_id,
    cast(null as varchar) as account_name,
    cast('organization' as varchar) as resource_type,
    cast(organization_id as varchar) as resource_id,
    cast(null as varchar) as resource_name,
    cast(usage_type || '_bytes' as varchar) as metric,
    cast(quantity as double precision) as quantity,
    cast('bytes' as varchar) as unit
from daily
