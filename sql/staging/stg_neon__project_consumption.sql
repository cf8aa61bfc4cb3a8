-- Neon's project consumption, one row per day x project x metric, values as Neon sends them.
with

source as (
    select * from raw_neon.project_consumption
),

renamed as (
    select
        cast(usage_date as date) as usage_date,
        cast(org_id as varchar) as account_id,
        cast(project_id as varchar) as project_id,
        cast(metric_name as varchar) as metric,
        cast(value as double precision) as quantity
    from source
)

select * from renamed
