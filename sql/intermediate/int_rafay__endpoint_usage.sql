-- Rafay's four usage endpoints (compute and service, instances and profiles) in the fact's
-- shape: per day and resource, `usage_hours` (the day's raw usage) and `<parameter>_hours` for
-- each numeric parameter (label value x hours, or a quantity parameter's raw usage, as the
-- source derived them). The instances are the leaves and the profiles their rollups, so the
-- two levels go their own ways: int_rafay__usage (the facts) and int_rafay__profile_usage.
with

usage as (
    select 'compute_instance' as resource_type, usage_date, account_id, account_name, resource_id, resource_name, usage_hours
    from analytics.stg_rafay__compute_instance_usage
    union all
    select 'service_instance' as resource_type, usage_date, account_id, account_name, resource_id, resource_name, usage_hours
    from analytics.stg_rafay__service_instance_usage
    union all
    select 'compute_profile' as resource_type, * from analytics.stg_rafay__compute_profile_usage
    union all
    select 'service_profile' as resource_type, * from analytics.stg_rafay__service_profile_usage
),

parameters as (
    select 'compute_instance' as resource_type, * from analytics.stg_rafay__compute_instance_usage_parameters
    union all
    select 'service_instance' as resource_type, * from analytics.stg_rafay__service_instance_usage_parameters
    union all
    select 'compute_profile' as resource_type, * from analytics.stg_rafay__compute_profile_usage_parameters
    union all
    select 'service_profile' as resource_type, * from analytics.stg_rafay__service_profile_usage_parameters
),

usage_hours as (
    select
        usage_date,
        account_id,
        account_name,
        resource_type,
        resource_id,
        resource_name,
        'usage_hours' as metric,
        usage_hours as quantity
    from usage
),

parameter_hours as (
    select
        parameters.usage_date,
        parameters.account_id,
        usage.account_name,
        parameters.resource_type,
        parameters.resource_id,
        usage.resource_name,
        parameters.metric,
        parameters.quantity
    from parameters
    left join usage
        on parameters.resource_type = usage.resource_type
        and parameters.usage_date = usage.usage_date
        and parameters.account_id = usage.account_id
        and parameters.resource_id = usage.resource_id
    where parameters.metric is not null
),

metrics as (
    select * from usage_hours
    union all
    select * from parameter_hours
)

select
    usage_date,
    cast('rafay' as varchar) as provider,
    account_id,
    account_name,
    cast(resource_type as varchar) as resource_type,
    resource_id,
    resource_name,
    cast(metric as varchar) as metric,
    quantity,
    -- usage_hours are hours; <parameter>_hours are parameter-hours (e.g. GPU-hours)
    cast(case when metric = 'usage_hours' then 'hours' else metric end as varchar) as unit
from metrics
