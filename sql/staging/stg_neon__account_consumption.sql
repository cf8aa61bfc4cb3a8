-- Neon's legacy account-level consumption (optional resource, off by default).
-- resource_id is the org id, or 'personal' for a personal account.
with

consumption as (
    select
        usage_date,
        org_id,
        metric_name,
        value
    from raw_neon.account_consumption
)

select
    cast(usage_date as date) as usage_date,
    cast('neon' as varchar) as provider,
    cast(org_id as varchar) as account_id,
    cast(null as varchar) as account_name,
    cast('account' as varchar) as resource_type,
    cast(org_id as varchar) as resource_id,
    cast(null as varchar) as resource_name,
    cast(metric_name as varchar) as metric,
    cast(value as double precision) as quantity,
    cast(
        case
            when metric_name in ('active_time_seconds', 'compute_time_seconds') then 'seconds'
            when metric_name in ('written_data_bytes', 'synthetic_storage_size_bytes') then 'bytes'
            when metric_name = 'data_storage_bytes_hour' then 'byte_hours'
            else 'unknown'
        end as varchar
    ) as unit
from consumption
