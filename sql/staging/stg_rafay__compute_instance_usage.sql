-- Rafay's compute instance usage, one row per day x instance: the instance's hours that day
-- (`raw_usage`), its project and profile; its parameters are in stg_rafay__compute_instance_usage_parameters.
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
        cast(instance_project_id as varchar) as project_id,
        cast(instance_project_name as varchar) as project_name,
        cast(profile_id as varchar) as profile_id,
        cast(profile_name as varchar) as profile_name,
        cast(raw_usage as double precision) as usage_hours
    from source
)

select * from renamed
