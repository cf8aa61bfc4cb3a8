-- Rafay compute instance usage, one row per day x instance x metric: usage_hours (the day's
-- raw_usage) and <parameter>_hours for each numeric parameter (label value x hours, or a
-- quantity parameter's raw_usage; the source computed metric and quantity per parameter).
with

usage as (
    select
        usage_date,
        instance_organization_id,
        instance_organization_name,
        instance_id,
        instance_name,
        raw_usage
    from raw_rafay.compute_instance_usage
),

parameters as (
    select
        usage_date,
        instance_organization_id,
        instance_id,
        metric,
        quantity
    from raw_rafay.compute_instance_usage_parameters
    where metric is not null
),

usage_hours as (
    select
        usage_date,
        instance_organization_id,
        instance_organization_name,
        instance_id,
        instance_name,
        'usage_hours' as metric,
        raw_usage as quantity
    from usage
),

parameter_hours as (
    select
        p.usage_date,
        p.instance_organization_id,
        u.instance_organization_name,
        p.instance_id,
        u.instance_name,
        p.metric,
        p.quantity
    from parameters as p
    left join usage as u
        on p.usage_date = u.usage_date and p.instance_id = u.instance_id
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
    cast('compute_instance' as varchar) as resource_type,
    cast(instance_id as varchar) as resource_id,
    cast(instance_name as varchar) as resource_name,
    cast(metric as varchar) as metric,
    cast(quantity as double precision) as quantity,
    -- usage_hours are hours; <parameter>_hours are parameter-hours (e.g. GPU-hours)
    cast(case when metric = 'usage_hours' then 'hours' else metric end as varchar) as unit
from metrics
