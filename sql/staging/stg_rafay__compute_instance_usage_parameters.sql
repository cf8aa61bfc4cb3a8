-- Rafay's compute instance usage parameters, one row per day x instance x parameter, with the
-- metric and quantity the source derived (null metric: a parameter that is not a number).
with

source as (
    select * from raw_rafay.compute_instance_usage_parameters
),

renamed as (
    select
        cast(usage_date as date) as usage_date,
        cast(instance_organization_id as varchar) as account_id,
        cast(instance_id as varchar) as resource_id,
        cast(parameter_name as varchar) as parameter_name,
        cast(metric as varchar) as metric,
        cast(quantity as double precision) as quantity
    from source
)

select * from renamed
