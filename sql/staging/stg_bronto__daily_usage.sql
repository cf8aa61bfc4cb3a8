-- Bronto's usage per usage type, UTC day and resource: a log's whole day (one slice from
-- midnight to midnight), or, on a day whose logs the API cannot list whole, the organization's
-- slices, each with its share of the day (`day_bytes`: a slice that straddles midnight is split
-- in proportion to time). A day of a usage type holds one of the two levels.
with

source as (
    select * from raw_bronto.daily_usage
),

renamed as (
    select
        cast(usage_date as date) as usage_date,
        cast(organization_id as varchar) as account_id,
        cast(usage_type as varchar) as usage_type,
        cast(resource_type as varchar) as resource_type,
        cast(resource_id as varchar) as resource_id,
        cast(resource_name as varchar) as resource_name,
        cast(slice_start as timestamp with time zone) as slice_start,
        cast(slice_end as timestamp with time zone) as slice_end,
        cast(day_bytes as double precision) as day_bytes
    from source
)

select * from renamed
