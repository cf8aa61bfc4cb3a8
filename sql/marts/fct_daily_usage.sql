-- One row per day x provider x account x resource x metric: the table analysts use.
-- Built by day range by the model runner (delete + insert of those days in one transaction).
with

neon_projects as (
    select * from analytics.stg_neon__project_consumption
),

neon_accounts as (
    select * from analytics.stg_neon__account_consumption
),

adverity as (
    select * from analytics.stg_adverity__usage
),

rafay_compute_instances as (
    select * from analytics.stg_rafay__compute_instance_usage
),

rafay_service_instances as (
    select * from analytics.stg_rafay__service_instance_usage
),

rafay_compute_profiles as (
    select * from analytics.stg_rafay__compute_profile_usage
),

rafay_service_profiles as (
    select * from analytics.stg_rafay__service_profile_usage
),

bronto as (
    select * from analytics.stg_bronto__usage_slices
),

unioned as (
    select usage_date, provider, account_id, account_name, resource_type, resource_id, resource_name, metric, quantity, unit from neon_projects
    union all
    select usage_date, provider, account_id, account_name, resource_type, resource_id, resource_name, metric, quantity, unit from neon_accounts
    union all
    select usage_date, provider, account_id, account_name, resource_type, resource_id, resource_name, metric, quantity, unit from adverity
    union all
    select usage_date, provider, account_id, account_name, resource_type, resource_id, resource_name, metric, quantity, unit from rafay_compute_instances
    union all
    select usage_date, provider, account_id, account_name, resource_type, resource_id, resource_name, metric, quantity, unit from rafay_service_instances
    union all
    select usage_date, provider, account_id, account_name, resource_type, resource_id, resource_name, metric, quantity, unit from rafay_compute_profiles
    union all
    select usage_date, provider, account_id, account_name, resource_type, resource_id, resource_name, metric, quantity, unit from rafay_service_profiles
    union all
    select usage_date, provider, account_id, account_name, resource_type, resource_id, resource_name, metric, quantity, unit from bronto
)

select
    cast(usage_date as date) as usage_date,
    cast(provider as varchar) as provider,
    cast(account_id as varchar) as account_id,
    cast(account_name as varchar) as account_name,
    cast(resource_type as varchar) as resource_type,
    cast(resource_id as varchar) as resource_id,
    cast(resource_name as varchar) as resource_name,
    cast(metric as varchar) as metric,
    cast(quantity as double precision) as quantity,
    cast(unit as varchar) as unit
from unioned
