-- Rafay's instances with what the API says of them: name, tenant org name, project and profile
-- (each the latest day's, should one change).
with

instances as (
    select 'compute_instance' as resource_type, * from analytics.stg_rafay__compute_instance_usage
    union all
    select 'service_instance' as resource_type, * from analytics.stg_rafay__service_instance_usage
),

ranked as (
    select
        instances.*,
        row_number() over (
            partition by account_id, resource_type, resource_id order by usage_date desc
        ) as recency
    from instances
)

select
    cast('rafay' as varchar) as provider,
    cast(account_id as varchar) as account_id,
    cast(account_name as varchar) as account_name,
    cast(resource_type as varchar) as resource_type,
    cast(resource_id as varchar) as resource_id,
    cast(resource_name as varchar) as resource_name,
    cast(project_id as varchar) as project_id,
    cast(project_name as varchar) as project_name,
    cast(profile_id as varchar) as profile_id,
    cast(profile_name as varchar) as profile_name,
    cast(null as varchar) as plan
from ranked
where recency = 1
