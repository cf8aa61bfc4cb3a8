-- Neon's legacy account-level consumption (an optional resource, off by default), one row per
-- day x metric of the org.
with

source as (
    select * from raw_neon.account_consumption
),

renamed as (
    select
        cast(usage_date as date) as usage_date,
        cast(org_id as varchar) as account_id,
        cast(metric_name as varchar) as metric,
        cast(value as double precision) as quantity
    from source
)

select * from renamed
