-- Rafay's compute instance usage, one row per day x instance: the instance's hours that day
-- (`raw_usage`); its parameters are in stg_rafay__compute_instance_usage_parameters.
with

source as (
    select * from raw_rafay.compute_instance_usage
),

renamed as (
    select
        cast(usage_date as date) as usage_date,
        cast(instance_organization_id as varchar) as account_id,
        cast(instance_organization_name as varchar) as account_name,
        cast(instance_id as varchar) as resource_id,
        cast(instance_name as varchar) as resource_name,
        cast(raw_usage as double precision) as usage_hours
    from source
)

select * from renamed
