-- Bronto's organization slices as versions before per-log loading stored them (the raw table
-- `usage_slices`, no longer written; empty in a warehouse that never had it): one row per
-- organization x usage type x slice, each with its share of its UTC day (`day_bytes`).
with

source as (
    select * from raw_bronto.usage_slices
),

renamed as (
    select
        cast(usage_date as date) as usage_date,
        cast(organization_id as varchar) as account_id,
        cast(usage_type as varchar) as usage_type,
        cast(slice_start as timestamp with time zone) as slice_start,
        cast(slice_end as timestamp with time zone) as slice_end,
        cast(day_bytes as double precision) as day_bytes
    from source
)

select * from renamed
