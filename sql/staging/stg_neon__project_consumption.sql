-- Neon's project consumption, one row per day x project x metric, values as Neon sends them;
-- `plan` is the plan of the billing period the day belongs to (`period_plan`).
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
        cast(value as double precision) as quantity,
        cast(period_plan as varchar) as plan
    from source
)

select * from renamed
