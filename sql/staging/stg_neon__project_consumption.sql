-- Neon project consumption: one row per day x project x metric, values kept as Neon sends them.
with

consumption as (
    select
        usage_date,
        org_id,
        project_id,
        metric_name,
        value
    from raw_neon.project_consumption
)

select
    cast(usage_date as date) as usage_date,
    cast('neon' as varchar) as provider,
    cast(org_id as varchar) as account_id,
    cast(null as varchar) as account_name,
    cast('project' as varchar) as resource_type,
    cast(project_id as varchar) as resource_id,
    cast(null as varchar) as resource_name,
    cast(metric_name as varchar) as metric,
    cast(value as double precision) as quantity,
    cast(
        case
            when metric_name = 'compute_unit_seconds' then 'cu_seconds'
            when metric_name in ('public_network_transfer_bytes', 'private_network_transfer_bytes') then 'bytes'
            when metric_name = 'extra_branches_month' then 'branch_months'
            when metric_name in (
                'root_branch_bytes_month',
                'child_branch_bytes_month',
                'instant_restore_bytes_month',
                'snapshot_storage_bytes_month'
            ) then 'byte_months'
            else 'unknown'
        end as varchar
    ) as unit
from consumption
