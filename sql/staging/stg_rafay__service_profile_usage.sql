-- Rafay service profile usage, one row per day x profile x metric: usage_hours (the day's
-- raw_usage) and <parameter>_hours for each numeric parameter (label value x hours, or a
-- quantity parameter's raw_usage; the source computed metric and quantity per parameter).
with

usage as (
    select
        usage_date,
        instance_organization_id,
        instance_organization_name,
        profile_id,
        profile_name,
        raw_usage
    from raw_rafay.service_profile_usage
),

parameters as (
    select
        usage_date,
        instance_organization_id,
        profile_id,
        metric,
        quantity
    from raw_rafay.service_profile_usage_parameters
    where metric is not null
),

usage_hours as (
    select
        usage_date,
        instance_organization_id,
        instance_organization_name,
        profile_id,
        profile_name,
        'usage_hours' as metric,
        raw_usage as quantity
    from usage
),

parameter_hours as (
    select
        p.usage_date,
        p.instance_organization_id,
        u.instance_organization_name,
        p.profile_id,
        u.profile_name,
        p.metric,
        p.quantity
    from parameters as p
    left join usage as u
        on p.usage_date = u.usage_date and p.profile_id = u.profile_id and p.instance_organization_id = u.instance_organization_id
),

metrics as (
    select * from usage_hours
    union all
    select * from parameter_hours
)

select
    cast(usage_date as date) as usage_date,
    cast('rafay' as varchar) as provider,
    cast(instance_organization_id as varchar) as account_id,
    cast(instance_organization_name as varchar) as account_name,
    cast('service_profile' as varchar) as resource_type,
    cast(profile_id as varchar) as resource_id,
    cast(profile_name as varchar) as resource_name,
    cast(metric as varchar) as metric,
    cast(quantity as double precision) as quantity,
    -- usage_hours are hours; <parameter>_hours are parameter-hours (e.g. GPU-hours)
    cast(case when metric = 'usage_hours' then 'hours' else metric end as varchar) as unit
from metrics
