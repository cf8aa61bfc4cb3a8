-- Neon in the fact's shape: one row per day x resource x metric. Projects come from the
-- project consumption; the legacy account-level figures (when enabled) are their own
-- resource, the org (or 'personal' for a personal account).
with

projects as (
    select * from analytics.stg_neon__project_consumption
),

accounts as (
    select * from analytics.stg_neon__account_consumption
),

resources as (
    select
        usage_date,
        account_id,
        'project' as resource_type,
        project_id as resource_id,
        metric,
        quantity
    from projects
    union all
    select
        usage_date,
        account_id,
        'account' as resource_type,
        account_id as resource_id,
        metric,
        quantity
    from accounts
)

select
    usage_date,
    cast('neon' as varchar) as provider,
    account_id,
    cast(null as varchar) as account_name,
    cast(resource_type as varchar) as resource_type,
    resource_id,
    cast(null as varchar) as resource_name,
    metric,
    quantity,
    cast(
        case
            when metric = 'compute_unit_seconds' then 'cu_seconds'
            when metric in ('active_time_seconds', 'compute_time_seconds') then 'seconds'
            when metric in (
                'public_network_transfer_bytes',
                'private_network_transfer_bytes',
                'written_data_bytes',
                'synthetic_storage_size_bytes'
            ) then 'bytes'
            when metric = 'extra_branches_month' then 'branch_months'
            when metric in (
                'root_branch_bytes_month',
                'child_branch_bytes_month',
                'instant_restore_bytes_month',
                'snapshot_storage_bytes_month'
            ) then 'byte_months'
            when metric = 'data_storage_bytes_hour' then 'byte_hours'
            else 'unknown'
        end as varchar
    ) as unit
from resources
